"""Examples with text spans: span → token mapping through the tokenizer's offsets, first/last token,
positions, the dataclass form, and reading JSONL files."""
import json

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from qkcapture import CaptureError, Example, Target, read_examples, tokenize_example  # noqa: E402
from qkcapture.examples import as_example  # noqa: E402
from tiny_models import word_tokenizer  # noqa: E402

TEXT = "here is a list : apple , dog , pear . which are the fruit ?"
#       0    5  8 10   15 17    23 25  29 31   36 38    44  48  52    58


def span(word, start=0):
    i = TEXT.index(word, start)
    return [i, i + len(word)]


def test_spans_map_to_the_overlapping_tokens():
    tokenizer = word_tokenizer()
    example = as_example({"id": "p", "text": TEXT, "query": {"char_span": span("fruit"), "labels": {"c": "fruit"}},
                          "keys": [{"char_span": span("apple")},
                                   {"char_span": [span("apple")[0], span("dog")[1]]},               # apple , dog
                                   {"char_span": [span("apple")[0], span("dog")[1]], "token": "first"},
                                   {"char_span": [span("dog")[0] + 1, span("dog")[0] + 2]},         # inside "dog"
                                   {"position": 0}, {"position": -1, "labels": {"c": "end"}}]})
    prompt = tokenize_example(tokenizer, example)
    tokens = tokenizer.convert_ids_to_tokens(list(prompt.input_ids))
    assert tokens[0] == "<s>" and tokens[prompt.query_position] == "fruit"
    assert [tokens[k["position"]] for k in prompt.keys] == ["apple", "dog", "apple", "dog", "<s>", "?"]
    assert prompt.keys[-1]["labels"] == {"c": "end"} and "labels" not in prompt.keys[0]
    assert prompt.query_labels == {"c": "fruit"}
    first = tokenize_example(tokenizer, example, token="first")
    assert [tokens[k["position"]] for k in first.keys][:3] == ["apple", "apple", "apple"]
    with pytest.raises(CaptureError, match="must be 'last' or 'first'"):
        tokenize_example(tokenizer, example, token="middle")


def test_special_tokens_never_match_a_span():
    """[CLS] and [SEP] have empty offsets (0, 0): a span at the start maps to the first word."""
    tokenizer = word_tokenizer(encoder=True)
    example = as_example({"id": "p", "text": TEXT, "query": {"char_span": [0, 4]}, "keys": [{"position": -1}]})
    prompt = tokenize_example(tokenizer, example)
    tokens = tokenizer.convert_ids_to_tokens(list(prompt.input_ids))
    assert tokens[prompt.query_position] == "here" and tokens[prompt.keys[0]["position"]] == "[SEP]"


def test_the_dataclass_form_is_the_dict_form():
    tokenizer = word_tokenizer()
    as_dict = {"id": "p", "text": TEXT, "query": {"char_span": span("fruit"), "labels": {"c": "fruit"}},
               "keys": [{"char_span": span("pear"), "labels": {"c": "fruit"}}, {"position": 1}]}
    as_class = Example(id="p", text=TEXT, query=Target(char_span=tuple(span("fruit")), labels={"c": "fruit"}),
                       keys=(Target(char_span=tuple(span("pear")), labels={"c": "fruit"}), Target(position=1)))
    assert tokenize_example(tokenizer, as_example(as_dict)) == tokenize_example(tokenizer, as_example(as_class))


def test_reading_a_jsonl_file(tmp_path):
    path = tmp_path / "e.jsonl"
    rows = [{"id": f"p{i}", "text": TEXT, "query": {"position": -1}, "keys": []} for i in range(3)]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n" + json.dumps(rows[2]))
    examples = list(read_examples(path))
    assert [e.id for e in examples] == ["p0", "p1", "p2"]
    assert [e.location for e in examples] == [f"{path}:1", f"{path}:3", f"{path}:4"]
    with pytest.raises(CaptureError) as info:
        list(read_examples(tmp_path / "missing.jsonl"))
    assert info.value.field == "examples" and "cannot read" in info.value.message
