"""Every bad input to capture_hf gets a CaptureError naming the example and field, and nothing is left at
the target path (no capture, no hidden working directory)."""
import copy
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import qkcapture  # noqa: E402
from qkcapture import CaptureError  # noqa: E402
from tiny_models import random_examples, tiny_model, word_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def tokenizer():
    return word_tokenizer()


def assert_nothing_written(tmp_path):
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "examples.jsonl") == []


def good():
    # "here is a list : apple , dog , ... which are the fruit ?"
    return random_examples(4, seed=7)


def change(index, edit):
    def apply(examples):
        edit(examples[index])
        return examples
    return apply


def set_query(value):
    return lambda e: e.__setitem__("query", value)


def set_key(j, value):
    return lambda e: e["keys"].__setitem__(j, value)


CASES = [
    # (case, edit of the examples, field, message text, example id)
    ("span over whitespace", change(1, set_key(0, {"char_span": [4, 5]})), "examples[1].keys[0].char_span",
     "[4, 5] (' ') overlaps no token", "ex1"),
    ("position past the prompt", change(2, set_key(1, {"position": 90})), "examples[2].keys[1].position",
     "90 is past the prompt's", "ex2"),
    ("negative position past the start", change(2, set_query({"position": -200})), "examples[2].query.position",
     "-200 is past the prompt's", "ex2"),
    ("span past the text", change(0, set_key(0, {"char_span": [0, 999]})), "examples[0].keys[0].char_span",
     "runs past the end of the text", "ex0"),
    ("span reversed", change(0, set_key(0, {"char_span": [5, 2]})), "examples[0].keys[0].char_span",
     "0 <= start < end", "ex0"),
    ("span not two numbers", change(0, set_key(0, {"char_span": [1]})), "examples[0].keys[0].char_span",
     "[start, end] with two integers", "ex0"),
    ("span and position", change(0, set_key(0, {"char_span": [0, 4], "position": 1})), "examples[0].keys[0]",
     "exactly one of 'char_span'", "ex0"),
    ("neither span nor position", change(3, set_query({"labels": {"category": "fruit"}})), "examples[3].query",
     "exactly one of 'char_span'", "ex3"),
    ("misspelt labels", change(0, set_key(2, {"position": 3, "label": {"category": "fruit"}})), "examples[0].keys[2]",
     "unknown field(s) ['label']", "ex0"),
    ("label not a string", change(0, set_key(2, {"position": 3, "labels": {"order": 2}})),
     "examples[0].keys[2].labels['order']", "label values must be strings, got 2", "ex0"),
    ("token neither first nor last", change(0, set_key(2, {"position": 3, "token": "middle"})),
     "examples[0].keys[2].token", "'last' or 'first'", "ex0"),
    ("no query", change(1, lambda e: e.pop("query")), "examples[1].query", "is missing", "ex1"),
    ("text not a string", change(1, lambda e: e.__setitem__("text", 3)), "examples[1].text", "must be a string", "ex1"),
    ("no id", change(1, lambda e: e.pop("id")), "examples[1].id", "non-empty string", None),
    ("keys not a list", change(1, lambda e: e.__setitem__("keys", {"position": 1})), "examples[1].keys",
     "must be a list", "ex1"),
    ("unknown example field", change(1, lambda e: e.__setitem__("prompt", "x")), "examples[1]",
     "unknown field(s) ['prompt']", "ex1"),
    ("duplicate id", change(3, lambda e: e.__setitem__("id", "ex0")), "examples[3].id",
     "'ex0' is also the id of example 0", "ex0"),
]


@pytest.mark.parametrize("case, edit, field, text, example_id", CASES, ids=[c[0] for c in CASES])
def test_bad_examples_are_refused_by_name(tmp_path, llama, tokenizer, case, edit, field, text, example_id):
    examples = edit(copy.deepcopy(good()))
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, examples, tmp_path / "cap", model_name="m")
    assert info.value.field == field, str(info.value)
    assert text in info.value.message, str(info.value)
    assert info.value.prompt == example_id, str(info.value)
    assert_nothing_written(tmp_path)


def test_jsonl_errors_name_the_file_and_line(tmp_path, llama, tokenizer):
    examples = good()
    examples[2]["keys"][0] = {"char_span": [4, 5]}
    path = tmp_path / "examples.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in examples[:2]) + "\n\n" + "\n".join(json.dumps(e) for e in examples[2:]))
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, path, tmp_path / "cap", model_name="m")
    assert info.value.field == f"{path}:4: keys[0].char_span"  # line 3 is blank
    assert "overlaps no token" in info.value.message
    path.write_text(json.dumps(examples[0]) + "\n{not json\n")
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, path, tmp_path / "cap", model_name="m")
    assert info.value.field == f"{path}:2" and "not valid JSON" in info.value.message
    assert_nothing_written(tmp_path)


def test_truncation_is_named(tmp_path, llama, tokenizer):
    examples = good()
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, examples, tmp_path / "cap", model_name="m", max_length=6)
    # The first example's last item key lies after the sixth token.
    assert info.value.prompt == "ex0"
    assert "truncated to max_length=6" in info.value.message, str(info.value)
    examples = [dict(good()[0], query={"position": 9}, keys=[])]
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, examples, tmp_path / "cap", model_name="m", max_length=6)
    assert info.value.field == "examples[0].query.position"
    assert info.value.message == "9 is past the prompt's 6 tokens after truncation to max_length=6"
    assert_nothing_written(tmp_path)


class SlowWordTokenizer:
    """Built on transformers' Python tokenizer backend, which gives no offsets."""

    def __new__(cls):
        from transformers import PythonBackend

        class Tokenizer(PythonBackend):
            def __init__(self):
                from tiny_models import WORDS
                self.vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "[CLS]", "[SEP]", "<s>", *WORDS])}
                self.ids = {i: w for w, i in self.vocab.items()}
                super().__init__(unk_token="[UNK]", pad_token="[PAD]")

            def get_vocab(self):
                return dict(self.vocab)

            @property
            def vocab_size(self):
                return len(self.vocab)

            def _tokenize(self, text):
                return text.split()

            def _convert_token_to_id(self, token):
                return self.vocab.get(token, 0)

            def _convert_id_to_token(self, index):
                return self.ids.get(index, "[UNK]")

        return Tokenizer()


def test_a_slow_tokenizer_is_refused_for_spans_and_accepted_for_positions(tmp_path, llama):
    slow = SlowWordTokenizer()
    assert not slow.is_fast
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, slow, good(), tmp_path / "cap", model_name="m")
    assert info.value.field == "examples[0].query.char_span" and info.value.prompt == "ex0"
    assert "slow tokenizer" in info.value.message and "no character offsets" in info.value.message
    assert_nothing_written(tmp_path)
    by_position = [{"id": "p0", "text": "apple , dog , pear", "query": {"position": -1, "labels": {"category": "fruit"}},
                    "keys": [{"position": 0, "labels": {"category": "fruit"}}, {"position": 2}]}]
    cap = qkcapture.read_capture(qkcapture.capture_hf(llama, slow, by_position, tmp_path / "cap", model_name="m"))
    assert cap.prompts[0]["query"]["position"] == 4 and cap.prompts[0]["tokens"][0] == "apple"


def test_an_unsupported_model_is_refused_with_the_supported_list(tmp_path, tokenizer):
    from transformers import OPTConfig, OPTForCausalLM

    model = OPTForCausalLM(OPTConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, ffn_dim=16,
                                     num_attention_heads=2, word_embed_proj_dim=16, max_position_embeddings=32))
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(model, tokenizer, good(), tmp_path / "cap", model_name="m")
    assert info.value.field == "model"
    assert info.value.message.startswith("OPTForCausalLM (model_type 'opt') is not supported by capture_hf; "
                                         "supported model types: bert, gemma2, gemma3_text, gpt2, gpt_neox, llama")
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(object(), tokenizer, good(), tmp_path / "cap", model_name="m")
    assert "must be a transformers PreTrainedModel, got object" in str(info.value)
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("layers, text", [([2], "layer 2 is outside 0..1"), ([0, 0], "listed twice"), ([], "at least one"),
                                          (["1"], "must be integers")])
def test_bad_layers(tmp_path, llama, tokenizer, layers, text):
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, good(), tmp_path / "cap", model_name="m", layers=layers)
    assert info.value.field == "layers" and text in info.value.message
    assert_nothing_written(tmp_path)


def test_a_model_built_from_a_config_needs_a_name(tmp_path, llama, tokenizer):
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, good(), tmp_path / "cap")
    assert info.value.field == "model_name" and "pass model_name=" in info.value.message
    assert_nothing_written(tmp_path)


def test_an_error_midway_through_an_iterator_leaves_nothing(tmp_path, llama, tokenizer):
    examples = random_examples(20, seed=8)
    examples[17]["keys"][0] = {"char_span": [4, 5]}
    stream = (e for e in examples)  # an iterator: checked as it is consumed, after batches were written
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, stream, tmp_path / "cap", model_name="m", batch_size=4,
                             features={"category": "semantic", "order": "binding"})
    assert info.value.prompt == "ex17" and info.value.field == "examples[17].keys[0].char_span"
    assert_nothing_written(tmp_path)


def test_an_existing_capture_is_kept_unless_overwrite(tmp_path, llama, tokenizer):
    path = qkcapture.capture_hf(llama, tokenizer, good(), tmp_path / "cap", model_name="m")
    before = (tmp_path / "cap" / "capture.json").read_bytes()
    with pytest.raises(CaptureError) as info:
        qkcapture.capture_hf(llama, tokenizer, good()[:2], path, model_name="m")
    assert "pass overwrite=True" in str(info.value)
    assert (tmp_path / "cap" / "capture.json").read_bytes() == before
    qkcapture.capture_hf(llama, tokenizer, good()[:2], path, model_name="m", overwrite=True)
    assert len(qkcapture.read_capture(path).prompts) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cap"]
