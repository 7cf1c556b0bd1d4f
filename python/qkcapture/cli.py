"""`qkcapture` (or `python -m qkcapture`): captures from a shell, no Python needed.

Help and errors in qkcat's layout (swift-argument-parser's): `OVERVIEW:`, `USAGE:`, `ARGUMENTS:`,
`OPTIONS:`; errors on stderr as `Error: …`; exit 0 on success, 1 on a failure, 64 on a usage
error (which also prints the usage). A subcommand is a `Command` in `COMMANDS`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, TextIO

from .errors import CaptureError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 64
WIDTH, COLUMN = 80, 26
PROGRAM = "qkcapture"


class UsageError(Exception):
    """A command line that cannot be run as written (exit 64, usage printed)."""


@dataclass(frozen=True)
class Argument:
    name: str  # "model", or "--examples"
    help: str
    metavar: Optional[str] = None
    short: Optional[str] = None
    required: bool = False
    flag: bool = False
    default: Optional[str] = None
    choices: Optional[Sequence[str]] = None
    many: bool = False  # a positional taking one value or more

    @property
    def positional(self) -> bool:
        return not self.name.startswith("-")

    @property
    def label(self) -> str:
        if self.positional:
            return f"<{self.name}> ..." if self.many else f"<{self.name}>"
        return self.name if self.flag else f"{self.name} <{self.metavar or self.name.lstrip('-')}>"


@dataclass(frozen=True)
class Command:
    name: str
    abstract: str
    arguments: Sequence[Argument]
    run: Callable[[argparse.Namespace, TextIO, TextIO], int]
    discussion: str = ""


# ------------------------------------------------------------------------------------- help
def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(p, width, break_long_words=False, break_on_hyphens=False) if p else ""
                     for p in text.split("\n"))


def _table(rows: Sequence[tuple]) -> str:
    lines = []
    for label, description in rows:
        start = "  " + label
        wrapped = _wrap(description, WIDTH - COLUMN).split("\n")
        if len(start) + 2 <= COLUMN:
            lines.append((start.ljust(COLUMN) + wrapped[0]).rstrip())
        else:
            lines.append(start)
            lines.append(" " * COLUMN + wrapped[0])
        lines.extend((" " * COLUMN + w) if w else "" for w in wrapped[1:])
    return "\n".join(lines)


def _usage(command: Optional[Command], prefix: str) -> str:
    head = prefix + PROGRAM + (f" {command.name}" if command else "")
    parts = ["<subcommand>"] if command is None else [
        a.label if a.positional or a.required else f"[{a.label}]" for a in command.arguments]
    indent = " " * (len(head) + 1)
    lines, line = [], head
    for part in parts:
        if len(line) + 1 + len(part) > WIDTH and line.strip() != head.strip() and line != indent:
            lines.append(line)
            line = indent + part
        else:
            line += ("" if line == indent else " ") + part
    lines.append(line)
    return "\n".join(lines)


def _notes(argument: Argument) -> str:
    parts = []
    if argument.choices:
        parts.append("values: " + ", ".join(argument.choices))
    if argument.default is not None:
        parts.append("default: " + argument.default)
    return f" ({'; '.join(parts)})" if parts else ""


def help_text(command: Optional[Command] = None) -> str:
    if command is None:
        sections = [_wrap("OVERVIEW: Write QK captures for qkcat from real models.", WIDTH),
                    _usage(None, "USAGE: "),
                    "OPTIONS:\n" + _table([("--version", "Show the version."), ("-h, --help", "Show help information.")]),
                    "SUBCOMMANDS:\n" + _table([(c.name, c.abstract) for c in COMMANDS.values()]
                                              + [("help", "Show subcommand help information.")])
                    + f"\n\n  See '{PROGRAM} help <subcommand>' for detailed help."]
        return "\n\n".join(sections) + "\n"
    overview = _wrap("OVERVIEW: " + command.abstract, WIDTH)
    if command.discussion:
        overview += "\n\n" + _wrap(command.discussion, WIDTH)
    sections = [overview, _usage(command, "USAGE: ")]
    positionals = [(a.label, a.help) for a in command.arguments if a.positional]
    if positionals:
        sections.append("ARGUMENTS:\n" + _table(positionals))
    options = [((f"{a.short}, " if a.short else "") + a.label, a.help + _notes(a))
               for a in command.arguments if not a.positional]
    options.append(("-h, --help", "Show help information."))
    sections.append("OPTIONS:\n" + _table(options))
    return "\n\n".join(sections) + "\n"


# ----------------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit 2
        raise UsageError(message)


def _parser(command: Command) -> _Parser:
    parser = _Parser(prog=f"{PROGRAM} {command.name}", add_help=False, allow_abbrev=False)
    for argument in command.arguments:
        if argument.positional:
            parser.add_argument(argument.name, nargs="+" if argument.many else None)
        elif argument.flag:
            names = [argument.name] + ([argument.short] if argument.short else [])
            parser.add_argument(*names, action="store_true", dest=argument.name.lstrip("-").replace("-", "_"))
        else:
            names = [argument.name] + ([argument.short] if argument.short else [])
            parser.add_argument(*names, dest=argument.name.lstrip("-").replace("-", "_"), default=None)
    return parser


def parse_layers(text: str) -> List[int]:
    """`0,4-7` → [0, 4, 5, 6, 7]."""
    layers: List[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                low, high = part.split("-", 1)
                start, end = int(low), int(high)
                if start > end:
                    raise ValueError
                layers.extend(range(start, end + 1))
            else:
                layers.append(int(part))
        except ValueError:
            raise UsageError(f"--layers: {part!r} is not a layer number or a range such as 4-7 (in {text!r})") from None
    if any(layer < 0 for layer in layers):
        raise UsageError(f"--layers: layer numbers are 0 or more, got {text!r}")
    return layers


def _positive(value: Optional[str], name: str, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise UsageError(f"{name}: expected a positive integer, got {value!r}")
    return number


def _features(value: Optional[str]) -> Optional[Dict[str, Dict[str, str]]]:
    if value is None:
        return None
    features = {}
    for part in value.split(","):
        name, sep, kind = part.partition("=")
        if not sep or not name.strip() or not kind.strip():
            raise UsageError(f"--features: expected name=kind pairs such as order=binding, got {part!r}")
        features[name.strip()] = {"kind": kind.strip()}
    return features


# ----------------------------------------------------------------------------------- hf
DTYPES = ("bf16", "f16", "f32", "f64")
MODEL_DTYPES = ("float32", "bfloat16", "float16", "auto")


def _run_hf(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    layers = parse_layers(args.layers) if args.layers is not None else None
    batch_size = _positive(args.batch_size, "--batch-size", 8)
    max_length = _positive(args.max_length, "--max-length", 0) if args.max_length is not None else None
    features = _features(args.features)
    dtype = (args.dtype or "bf16").lower()
    if dtype not in DTYPES:
        raise UsageError(f"--dtype: expected one of {', '.join(DTYPES)}, got {args.dtype!r}")
    model_dtype = args.model_dtype or "float32"
    if model_dtype not in MODEL_DTYPES:
        raise UsageError(f"--model-dtype: expected one of {', '.join(MODEL_DTYPES)}, got {args.model_dtype!r}")
    token = args.token or "last"
    if token not in ("last", "first"):
        raise UsageError(f"--token: expected last or first, got {args.token!r}")
    if not os.path.isfile(args.examples):
        raise CaptureError("--examples", f"{args.examples} is not a file")
    out = os.path.abspath(args.out)
    if os.path.isdir(out) and os.listdir(out) and not args.overwrite:
        raise CaptureError("--out", f"{args.out} exists and is not empty; pass --overwrite to replace it")
    if os.path.exists(out) and not os.path.isdir(out):
        raise CaptureError("--out", f"{args.out} exists and is not a directory")

    try:
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer
    except ImportError:
        raise CaptureError("hf", "needs torch and transformers: pip install 'qkcapture[hf]' "
                                 "(and torch from the CPU wheel index if you have no GPU)") from None
    from .hf import SUPPORTED, capture_hf, supported_names

    started = time.monotonic()
    revision = args.revision
    load = {"revision": revision} if revision else {}
    try:
        config = AutoConfig.from_pretrained(args.model, **load)
    except (OSError, ValueError) as error:
        raise CaptureError("model", f"cannot load a configuration from {args.model}: {error}") from None
    if config.model_type not in SUPPORTED:
        raise CaptureError("model", f"{args.model}: model type {config.model_type!r} is not supported; "
                                    f"supported: {supported_names()}")
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model, **load)
        dtype_arg = "auto" if model_dtype == "auto" else getattr(torch, model_dtype)
        # The base model only: the attention is all a capture reads, and a language-model head can
        # weigh gigabytes. Its weights in the checkpoint are then reported as unexpected; say nothing.
        hf_logging.set_verbosity_error()
        model = AutoModel.from_pretrained(args.model, dtype=dtype_arg, **load)
    except (OSError, ValueError) as error:
        raise CaptureError("model", f"cannot load {args.model}: {error}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    device = args.device or "cpu"
    try:
        model.to(torch.device(device))
    except (RuntimeError, AssertionError) as error:
        raise CaptureError("--device", f"cannot use {device!r}: {error}") from None
    checkpoint = args.checkpoint or revision
    path = capture_hf(model, tokenizer, args.examples, out, layers=layers, model_name=args.model_name,
                      checkpoint=checkpoint, features=features, dtype=dtype, batch_size=batch_size,
                      overwrite=bool(args.overwrite), token=token, max_length=max_length,
                      progress=False if args.quiet else None)
    if not args.quiet:
        from .reader import read_capture

        capture = read_capture(path)
        shape = capture.header["model"]
        size = sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path))
        stdout.write(f"Wrote {args.out}: {shape['name']} @ {shape['checkpoint']}, {len(capture.prompts)} prompts, "
                     f"{len(capture.header['layers'])} layers × {shape['n_heads']} heads ({shape['n_kv_heads']} kv), "
                     f"d_head {shape['d_head']}, {size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s\n")
    return EXIT_OK


HF = Command(
    name="hf",
    abstract="Capture a Hugging Face transformers model's queries and keys.",
    discussion=("Runs every example of the JSONL file through the model (anything from_pretrained loads: a "
                "folder or a hub name) and writes the capture: for every layer and head, the query at each "
                "example's query and the keys at its keys, exactly as the model's attention scores them "
                "(post-RoPE, after q/k norms, keys per kv head). One example a line: {\"id\": \"p0\", "
                "\"text\": \"...\", \"query\": {\"char_span\": [start, end] | \"position\": n, \"labels\": "
                "{...}}, \"keys\": [{\"char_span\": [start, end], \"labels\": {...}}, ...]}. Then: qkcat ingest "
                "CAPTURE."),
    arguments=(
        Argument("model", "A model folder or hub name, as from_pretrained takes it."),
        Argument("--examples", "The examples, one JSON object a line.", metavar="file", required=True),
        Argument("--out", "The capture folder to write.", metavar="dir", required=True),
        Argument("--layers", "Layers to capture, such as 0,4-7.", metavar="list", default="all"),
        Argument("--revision", "The model revision to load; also the capture's checkpoint.", metavar="rev"),
        Argument("--checkpoint", "The checkpoint name stored in the capture.", metavar="name",
                 default="the revision, else main"),
        Argument("--model-name", "The model name stored in the capture.", metavar="name", default="<model>"),
        Argument("--features", "Feature kinds, such as order=binding,category=semantic; other label names "
                 "are semantic.", metavar="name=kind,..."),
        Argument("--dtype", "The capture's storage type.", metavar="dtype", default="bf16", choices=DTYPES),
        Argument("--model-dtype", "The dtype the model runs in.", metavar="dtype", default="float32",
                 choices=MODEL_DTYPES),
        Argument("--batch-size", "Prompts per forward pass.", metavar="n", default="8"),
        Argument("--max-length", "Truncate prompts to this many tokens.", metavar="n",
                 default="the tokenizer's limit"),
        Argument("--token", "Which token of a char_span: last or first.", metavar="which", default="last",
                 choices=("last", "first")),
        Argument("--device", "The torch device to run on.", metavar="device", default="cpu"),
        Argument("--overwrite", "Replace an existing capture at --out.", flag=True),
        Argument("--quiet", "No progress bar and no summary.", short="-q", flag=True),
    ),
    run=_run_hf,
)


# ---------------------------------------------------------------------------------- merge
def _run_merge(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .merge import merge
    from .reader import read_capture

    path = merge(args.shard, args.out, overwrite=bool(args.overwrite))
    if not args.quiet:
        capture = read_capture(path)
        shape = capture.header["model"]
        stdout.write(f"Merged {len(args.shard)} shards into {args.out}: {shape['name']} @ {shape['checkpoint']}, "
                     f"{len(capture.prompts)} prompts, {len(capture.header['layers'])} layers (tensors hard-linked, "
                     "not copied)\n")
    return EXIT_OK


MERGE = Command(
    name="merge",
    abstract="Join the shards of a data-parallel capture into one capture.",
    discussion=("Each shard is a capture of the same model, checkpoint, layers and features over other prompts "
                "(a worker's capture_hf(..., shard=(rank, world_size))). The merged capture lists the shards' "
                "prompts one shard after another and hard-links their tensor files into sub-folders, so no tensor "
                "is copied: --out must be on the shards' filesystem. Shards that disagree, repeat a prompt id or "
                "miss a rank are refused and nothing is written. Then: qkcat ingest OUT."),
    arguments=(
        Argument("shard", "A shard's capture folder.", many=True),
        Argument("--out", "The merged capture folder to write.", metavar="dir", required=True),
        Argument("--overwrite", "Replace an existing capture at --out.", flag=True),
        Argument("--quiet", "No summary.", short="-q", flag=True),
    ),
    run=_run_merge,
)


# ----------------------------------------------------------------------------------- task
def _run_task(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from . import tasks

    if args.task not in TASKS:
        raise UsageError(f"<task>: expected one of {', '.join(TASKS)}, got {args.task!r}")
    n = _positive(args.n, "--n", 2000)
    try:
        seed = int(args.seed) if args.seed is not None else 0
    except ValueError:
        raise UsageError(f"--seed: expected an integer, got {args.seed!r}") from None
    options: Dict[str, object] = {}
    if args.task == "filter":
        if args.n_pairs is not None or args.objects is not None or args.letters is not None:
            raise UsageError("--n-pairs, --objects and --letters belong to the binding task")
        if args.n_items is not None:
            options["n_items"] = _positive(args.n_items, "--n-items", 8)
        if args.items_per_category is not None:
            options["items_per_category"] = _positive(args.items_per_category, "--items-per-category", 1)
        if args.categories is not None:
            options["categories"] = [c.strip() for c in args.categories.split(",")]
        build = tasks.filter_lists
    else:
        if args.n_items is not None or args.items_per_category is not None or args.categories is not None:
            raise UsageError("--n-items, --items-per-category and --categories belong to the filter task")
        if args.n_pairs is not None:
            options["n_pairs"] = _positive(args.n_pairs, "--n-pairs", 5)
        if args.objects is not None:
            options["objects"] = [o.strip() for o in args.objects.split(",")]
        if args.letters is not None:
            options["letters"] = [letter.strip() for letter in args.letters.split(",")]
        build = tasks.box_binding
    if args.chat_template is not None:
        options["chat_template"] = args.chat_template.replace("\\n", "\n")
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not args.overwrite:
        raise CaptureError("--out", f"{args.out} exists; pass --overwrite to replace it")
    if os.path.isdir(out):
        raise CaptureError("--out", f"{args.out} is a directory")
    try:
        examples = build(n, seed=seed, **options)
    except tasks.TaskOptionError as error:
        raise UsageError(f"--{error.option.replace('_', '-')}: {error.message}") from None
    directory = os.path.dirname(out)
    if not os.path.isdir(directory):
        raise CaptureError("--out", f"{directory} is not a directory")
    # All or nothing: a temporary file next to the target, renamed into place once complete.
    temporary = os.path.join(directory, f".{os.path.basename(out)}.partial-{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            for example in examples:
                handle.write(json.dumps(example, ensure_ascii=False) + "\n")
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    if not args.quiet:
        keys = sum(len(e["keys"]) for e in examples)
        stdout.write(f"Wrote {args.out}: {len(examples)} {args.task} examples (seed {seed}), {keys} keys; "
                     f"labels: {', '.join(sorted({n for e in examples for k in e['keys'] for n in k['labels']}))}\n")
    return EXIT_OK


TASKS = ("filter", "binding")

TASK = Command(
    name="task",
    abstract="Write the paper's filter-list or box-binding examples for any tokenizer.",
    discussion=("filter: 'Here is a list:\\n- apple\\n- dog\\n... What are the fruits in the list? Answer:', "
                "query at the last character, keys at the items labelled category and order. binding: 'The egg "
                "is in Box A, the fan is in Box B, ... Which box is the fan in? Box', keys at the box letters "
                "labelled order and object. Positions are character spans, so the file feeds "
                "'qkcapture hf MODEL --examples FILE' for any tokenizer. The same seed and options give the "
                "same file (see qkcapture.tasks for every option)."),
    arguments=(
        Argument("task", "filter or binding.", choices=TASKS),
        Argument("--out", "The JSONL file to write.", metavar="file", required=True),
        Argument("--n", "Number of examples.", metavar="n", default="2000"),
        Argument("--seed", "Random seed.", metavar="n", default="0"),
        Argument("--n-items", "filter: items in each list.", metavar="n", default="8"),
        Argument("--items-per-category", "filter: items of each category in a list.", metavar="n", default="1"),
        Argument("--categories", "filter: the categories to use, such as fruit,animal,color.", metavar="list",
                 default="all 8"),
        Argument("--n-pairs", "binding: object-box pairs in each prompt.", metavar="n", default="5"),
        Argument("--objects", "binding: the object words, comma-separated.", metavar="list"),
        Argument("--letters", "binding: the box names, comma-separated.", metavar="list", default="A-I"),
        Argument("--chat-template", "A text with {prompt} once (\\n for a newline) to wrap every prompt in.",
                 metavar="text"),
        Argument("--overwrite", "Replace an existing file at --out.", flag=True),
        Argument("--quiet", "No summary.", short="-q", flag=True),
    ),
    run=_run_task,
)

COMMANDS: Dict[str, Command] = {HF.name: HF, TASK.name: TASK, MERGE.name: MERGE}


# ------------------------------------------------------------------------------------- main
def _usage_error(message: str, command: Optional[Command], stderr: TextIO) -> int:
    see = f"{PROGRAM} {command.name} --help" if command else f"{PROGRAM} --help"
    stderr.write(f"Error: {message}\n{_usage(command, 'Usage: ')}\nSee '{see}'.\n")
    return EXIT_USAGE


def main(argv: Optional[Sequence[str]] = None, stdout: TextIO = None, stderr: TextIO = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        stdout.write(help_text())
        return EXIT_OK
    if args[0] == "--version":
        from . import __version__

        stdout.write(f"{__version__}\n")
        return EXIT_OK
    if args[0] == "help":
        if len(args) == 1:
            stdout.write(help_text())
            return EXIT_OK
        if args[1] not in COMMANDS:
            return _usage_error(f"unknown subcommand '{args[1]}'", None, stderr)
        stdout.write(help_text(COMMANDS[args[1]]))
        return EXIT_OK
    command = COMMANDS.get(args[0])
    if command is None:
        return _usage_error(f"unknown subcommand '{args[0]}'", None, stderr)
    rest = args[1:]
    options = rest[:rest.index("--")] if "--" in rest else rest
    if any(a in ("-h", "--help") for a in options):
        stdout.write(help_text(command))
        return EXIT_OK
    try:
        parsed = _parser(command).parse_args(rest)
        missing = [a.name for a in command.arguments if a.required and getattr(parsed, a.name.lstrip("-").replace("-", "_")) is None]
        if missing:
            raise UsageError(f"missing {', '.join(missing)}")
        return command.run(parsed, stdout, stderr)
    except UsageError as error:
        return _usage_error(str(error), command, stderr)
    except CaptureError as error:
        stderr.write(f"Error: {error}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        stderr.write("Error: interrupted; nothing was written\n")
        return 130
    except (OSError, RuntimeError) as error:
        stderr.write(f"Error: {error}\n")
        return EXIT_FAILURE


def entry_point() -> None:  # pragma: no cover - the console script
    sys.exit(main())
