#!/usr/bin/env python3
"""Train a small Llama from scratch on the paper's two tasks and capture its checkpoints.

Checkpoints are saved on a schedule like Pythia's and each is captured on held-out prompts.

    pip install ./python "torch==2.13.*" "transformers==5.24.*" tokenizers
    python Examples/trajectory/train.py            # regenerates Examples/trajectory/step*/

The model is transformers' LlamaForCausalLM built from a LlamaConfig (3 layers, d_model 64, rotary
position embeddings, grouped-query attention: 4 query heads of 16 dimensions share 2 key/value
heads) over a word-level tokenizer of the tasks' vocabulary (122 tokens). Every step trains on one
batch of each stream of TRAIN_MIX, all from `qkcapture.tasks`:

- filter lists: "Here is a list: - car - canada - axe - drum What are the vehicles in the list?
  Answer:" -> "car" (four items of four of the eight categories, one asked);
- box binding: "The key is in Box C, the bowl is in Box H, and the book is in Box E. Which box is
  the book in? Box" -> "E" (three objects in three of nine boxes, and a stream with two), each
  context asked about every one of its objects within the batch.

The loss is the cross-entropy of the answer token at the last position only. Training is
deterministic: one thread, `torch.use_deterministic_algorithms`, seeded initialization and data.
Checkpoints (`save_pretrained`, with the tokenizer) go to `--work` at steps 0, 1, 2, 4, ..., 512,
then every 512 steps to 4096; each is captured with `qkcapture.capture_hf` (all layers, F16) on 150 held-out prompts of each task
into `--out/step<N>`, with the checkpoint's accuracy on each task (the answer is the top next
token) in the capture's `dataset` provenance. Held-out prompts come from other seeds and none of
their texts is ever trained on. `--stop-after N` stops early on the same schedule (the test runs
the first steps and compares the captures with the committed ones).
"""
from __future__ import annotations

import argparse
import string
import time
from pathlib import Path
from typing import Dict, List, Sequence

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import qkcapture
from qkcapture import tasks

HERE = Path(__file__).resolve().parent
MODEL_NAME = "qkcat/trajectory-llama"

# The tasks as trained and captured.
FILTER_OPTIONS = dict(n_items=4, items_per_category=1)
BINDING_OPTIONS = dict(n_pairs=3)
HELD_OUT_SEEDS = (1000, 1001)
HELD_OUT = 150                # prompts per task in every capture

# Training.
STEPS = 4096
# Like Pythia's: log-spaced at first (0, 1, 2, 4, ..., 512), then evenly spaced (1024, 1536, ..., 4096), so
# that both the first steps and the slow second half, where binding is learned, are seen.
SCHEDULE = [0] + [2 ** i for i in range(10)] + list(range(1024, STEPS + 1, 512))
# Every step trains on one batch of each stream: (task, options, batch size, seed). The two-box stream is
# there as the easier form of the held-out three-box setting.
TRAIN_MIX = (("filter", FILTER_OPTIONS, 32, 1),
             ("binding", dict(n_pairs=2), 32, 2),
             ("binding", BINDING_OPTIONS, 32, 3))
LEARNING_RATE = 1e-3
WARMUP = 32
DECAY = 0.25                  # the last quarter of the steps decays the learning rate linearly to 0
WEIGHT_DECAY = 0.01
SEED = 0


def model_config(vocab_size: int, bos: int, pad: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=192, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
        rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        # 1/sqrt(hidden_size): with transformers' default 0.02, q·k starts near zero in so narrow a model and
        # attention learns several times more slowly.
        initializer_range=0.125,
        bos_token_id=bos, eos_token_id=bos, pad_token_id=pad, attn_implementation="eager",
    )


# ---------------------------------------------------------------------------------- tokenizer
def word_level_tokenizer() -> PreTrainedTokenizerFast:
    """One token per word or punctuation mark of the tasks' texts; `<bos>` first."""
    pre = pre_tokenizers.Whitespace()
    literals = [tasks.BINDING_PAIR_TEMPLATE.capitalize(), ", and "]   # "The" starts a binding text
    for template in [tasks.FILTER_TEMPLATE, tasks.FILTER_ITEM_TEMPLATE, tasks.BINDING_TEMPLATE,
                     tasks.BINDING_PAIR_TEMPLATE]:
        literals += [literal for literal, _, _, _ in string.Formatter().parse(template)]
    words = {piece for text in literals for piece, _ in pre.pre_tokenize_str(text)}
    for plural, items in tasks.VOCABULARY.values():
        words.update([plural, *items])
    words.update(tasks.OBJECTS)
    words.update(tasks.LETTERS)
    specials = ["<pad>", "<unk>", "<bos>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", unk_token="<unk>", pad_token="<pad>")


# --------------------------------------------------------------------------------------- data
def held_out() -> Dict[str, List[dict]]:
    return {"filter": tasks.filter_lists(HELD_OUT, seed=HELD_OUT_SEEDS[0], **FILTER_OPTIONS),
            "binding": tasks.box_binding(HELD_OUT, seed=HELD_OUT_SEEDS[1], **BINDING_OPTIONS)}


class Batches:
    """Training batches of one task: token ids [B, T] and answer ids [B], never a held-out text."""

    def __init__(self, task: str, options: dict, tokenizer, seed: int, excluded: set):
        self.task, self.options, self.tokenizer, self.excluded = task, options, tokenizer, excluded
        self.seed, self.block, self.buffer = seed, 0, []

    def _refill(self) -> None:
        seed = self.seed * 1_000_003 + self.block
        self.block += 1
        build = tasks.filter_lists if self.task == "filter" else tasks.box_binding
        examples = build(4096, seed=seed, id_prefix="train", **self.options)
        if self.task == "binding":
            examples = [variant for e in examples for variant in every_question(e)]
        self.buffer.extend(e for e in examples if e["text"] not in self.excluded)

    def next(self, size: int):
        while len(self.buffer) < size:
            self._refill()
        chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return encode(self.tokenizer, chunk)


QUESTION = "Which box is the "


def every_question(example: dict) -> List[dict]:
    """The example asked about each of its objects in turn: one context, every answer, side by side
    in a batch, so that what changes the answer is the question alone."""
    text = example["text"]
    context = text[:text.rindex(QUESTION) + len(QUESTION)]
    variants = []
    for key in example["keys"]:
        obj = key["labels"]["object"]
        new = context + obj + text[text.rindex(" in? Box"):]
        variants.append({"id": example["id"], "text": new, "keys": example["keys"],
                         "query": {"char_span": [len(new) - 1, len(new)], "labels": dict(key["labels"])}})
    return variants


def encode(tokenizer, examples: Sequence[dict]):
    """Token ids (every text of a task has the same length) and the answer's token id."""
    ids = tokenizer([e["text"] for e in examples])["input_ids"]
    if len({len(x) for x in ids}) != 1:
        raise AssertionError("texts of one task must tokenize to one length")
    answers = []
    for e in examples:
        words = tasks.answers(e)
        answers.append(tokenizer.convert_tokens_to_ids(words[0]))
    return torch.tensor(ids), torch.tensor(answers)


# ------------------------------------------------------------------------------------ training
def last_logits(model, ids: torch.Tensor) -> torch.Tensor:
    hidden = model.model(input_ids=ids).last_hidden_state[:, -1]
    return model.lm_head(hidden)


@torch.no_grad()
def accuracy(model, tokenizer, examples: Sequence[dict]) -> float:
    model.eval()
    ids, answers = encode(tokenizer, examples)
    correct = (last_logits(model, ids).argmax(-1) == answers).sum().item()
    model.train()
    return correct / len(examples)


def learning_rate(step: int) -> float:
    """Linear warm-up, constant, then a linear decay to zero at STEPS (so late checkpoints settle)."""
    if step < WARMUP:
        return LEARNING_RATE * (step + 1) / WARMUP
    decay_start = STEPS * (1 - DECAY)
    if step < decay_start:
        return LEARNING_RATE
    return LEARNING_RATE * max(0.0, (STEPS - step) / (STEPS - decay_start))


def capture(model, tokenizer, step: int, evaluation: Dict[str, List[dict]], out: Path, accuracies: Dict[str, float]):
    examples = evaluation["filter"] + evaluation["binding"]
    dataset = {
        "name": "qkcat-trajectory",
        "description": (f"Held-out prompts of qkcapture.tasks: filter lists (query at the last token of "
                        f"'... What are the <plural> in the list? Answer:', keys at the {FILTER_OPTIONS['n_items']} "
                        f"items, labelled category and order) and box binding (query at the final 'Box', keys at "
                        f"the {BINDING_OPTIONS['n_pairs']} box letters, labelled order and object), run through a "
                        f"{model.config.num_hidden_layers}-layer Llama trained from scratch on both tasks by "
                        f"Examples/trajectory/train.py; accuracy: the answer is the top next token."),
        "generator": "Examples/trajectory/train.py",
        "architecture": {"class": "LlamaForCausalLM", "layers": model.config.num_hidden_layers,
                         "d_model": model.config.hidden_size, "heads": model.config.num_attention_heads,
                         "kv_heads": model.config.num_key_value_heads, "d_head": model.config.head_dim,
                         "vocabulary": model.config.vocab_size, "tokenizer": "word-level"},
        "step": step,
        "accuracy": {task: round(value, 4) for task, value in accuracies.items()},
        "held_out": {"filter": {"n": HELD_OUT, "seed": HELD_OUT_SEEDS[0], **FILTER_OPTIONS},
                     "binding": {"n": HELD_OUT, "seed": HELD_OUT_SEEDS[1], **BINDING_OPTIONS}},
        "training": {"binding_batches": "each context with every question", "steps": STEPS, "decay": DECAY,
                     "learning_rate": LEARNING_RATE, "warmup": WARMUP,
                     "weight_decay": WEIGHT_DECAY, "seed": SEED,
                     "mix": [{"task": t, **o, "batch": b, "seed": sd} for t, o, b, sd in TRAIN_MIX]},
    }
    model.eval()
    qkcapture.capture_hf(model, tokenizer, examples, out / f"step{step}", model_name=MODEL_NAME,
                         checkpoint=f"step{step}", features=tasks.FEATURES, dtype="f16", overwrite=True,
                         batch_size=64, progress=False, dataset=dataset)
    model.train()


def train(out: Path, work: Path, stop_after: int = STEPS, log=print) -> Dict[int, Dict[str, float]]:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tokenizer = word_level_tokenizer()
    config = model_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.train()
    evaluation = held_out()
    excluded = {e["text"] for group in evaluation.values() for e in group}
    streams = [(Batches(task, options, tokenizer, seed, excluded), size) for task, options, size, seed in TRAIN_MIX]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=LEARNING_RATE, betas=(0.9, 0.98))
    results = {}
    started = time.time()
    for step in range(stop_after + 1):
        if step in SCHEDULE:
            accuracies = {task: accuracy(model, tokenizer, group) for task, group in evaluation.items()}
            results[step] = accuracies
            model.save_pretrained(work / f"step{step}")
            tokenizer.save_pretrained(work / f"step{step}")
            capture(model, tokenizer, step, evaluation, out, accuracies)
            log(f"step {step:5d}  filter {accuracies['filter']:.3f}  binding {accuracies['binding']:.3f}  "
                f"{time.time() - started:6.1f} s", flush=True)
        if step == stop_after:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        loss = 0.0
        for stream, size in streams:
            ids, answers = stream.next(size)
            loss = loss + torch.nn.functional.cross_entropy(last_logits(model, ids), answers)
        optimizer.zero_grad(set_to_none=True)
        (loss / len(streams)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where the step<N> captures go (default: this folder)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the model checkpoints go (default: a 'checkpoints' folder inside --out)")
    parser.add_argument("--stop-after", type=int, default=STEPS,
                        help="stop after this step (same schedule; the test runs the first steps only)")
    args = parser.parse_args(argv)
    if not 0 <= args.stop_after <= STEPS:
        parser.error(f"--stop-after must be between 0 and {STEPS}, not {args.stop_after}")
    transformers.utils.logging.disable_progress_bar()   # a bar per saved checkpoint would bury the log
    train(args.out, args.work or args.out / "checkpoints", args.stop_after)


if __name__ == "__main__":
    main()
