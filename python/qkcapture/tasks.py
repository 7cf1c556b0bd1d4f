"""The paper's two settings as ready-made examples for any tokenizer.

Each builder returns a list of examples, the input of `capture_hf` and of
`python -m qkcapture hf`:

    {"id": "filter-0000",
     "text": "Here is a list:\\n- apple\\n- dog\\n...What are the fruits in the list? Answer:",
     "query": {"char_span": [71, 72], "labels": {"category": "fruit"}},
     "keys": [{"char_span": [18, 23], "labels": {"category": "fruit", "order": "0"}}, ...]}

Positions are character spans into `text`, never token indices, so one example serves every
tokenizer: a capture maps a span to the last token it overlaps. Every span covers exactly the
word it labels (`text[start:end] == word`); the query span is the last character of the text,
the position whose next-token prediction is the answer. `answers(example)` gives the words a
correct model says next, read from the labels (for filter lists, every item of the asked category
in list order; for box binding, the answer box's letter).

The same `seed` and options give the same examples on any machine (Python's `random.Random`).
Bad options raise `TaskOptionError` naming the option.
"""
from __future__ import annotations

import random
import string
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "TaskOptionError",
    "VOCABULARY",
    "OBJECTS",
    "LETTERS",
    "FILTER_TEMPLATE",
    "BINDING_TEMPLATE",
    "BINDING_PAIR_TEMPLATE",
    "FILTER_ITEM_TEMPLATE",
    "FEATURES",
    "filter_lists",
    "box_binding",
    "answers",
]

ChatTemplate = Union[str, Callable[[str], str], None]


class TaskOptionError(ValueError):
    """A task builder option that cannot be used; `option` names it, `message` says why."""

    def __init__(self, option: str, message: str):
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")

    def __reduce__(self):
        return (type(self), (self.option, self.message))


# Category -> (the plural a question names it by, its items). Every item is one lower-case word;
# no word belongs to two categories.
VOCABULARY: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "fruit": ("fruits", ("apple", "banana", "mango", "pear", "grape", "lemon", "cherry", "peach")),
    "animal": ("animals", ("dog", "cat", "horse", "cow", "lion", "tiger", "rabbit", "sheep")),
    "color": ("colors", ("red", "blue", "green", "yellow", "purple", "pink", "brown", "white")),
    "tool": ("tools", ("hammer", "drill", "shovel", "axe", "knife", "rake", "saw", "wrench")),
    "country": ("countries", ("france", "germany", "japan", "china", "italy", "spain", "brazil", "canada")),
    "vehicle": ("vehicles", ("car", "bus", "truck", "train", "bicycle", "boat", "plane", "taxi")),
    "instrument": ("instruments", ("piano", "guitar", "violin", "drum", "flute", "trumpet", "harp", "cello")),
    "drink": ("drinks", ("coffee", "tea", "milk", "juice", "beer", "wine", "water", "soda")),
}

# Objects of the box-binding task (single lower-case words, disjoint from VOCABULARY's items).
OBJECTS: Tuple[str, ...] = ("egg", "fan", "cup", "key", "pen", "hat", "map", "bell", "coin", "ring",
                            "book", "lamp", "sock", "shoe", "bowl", "doll")
LETTERS: str = "ABCDEFGHI"

FILTER_TEMPLATE = "Here is a list:\n{list}\nWhat are the {category} in the list? Answer:"
FILTER_ITEM_TEMPLATE = "- {item}"
BINDING_TEMPLATE = "{pairs}. Which box is the {object} in? Box"
BINDING_PAIR_TEMPLATE = "the {object} is in Box {box}"

# The `features` of a capture made from these examples (the labels each builder writes).
FEATURES: Dict[str, Dict[str, str]] = {
    "category": {"kind": "semantic",
                 "description": "category of a list item; a query's is the category the question asks for"},
    "order": {"kind": "binding",
              "description": "0-based position of an item or object in the list; a binding query's is the "
                             "queried object's position"},
    "object": {"kind": "binding",
               "description": "the object a box holds; a binding query's is the object asked about"},
}


# ------------------------------------------------------------------------------------ helpers
def _check_count(option: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TaskOptionError(option, f"must be an integer, got {value!r}")
    if value < minimum:
        raise TaskOptionError(option, f"must be at least {minimum}, got {value}")
    return value


def _check_word(option: str, word) -> str:
    if not isinstance(word, str) or not word or any(c.isspace() for c in word) or "{" in word or "}" in word:
        raise TaskOptionError(option, f"every entry must be a non-empty word without spaces or braces, got {word!r}")
    return word


def _fill(option: str, template: str, fields: Sequence[str], values: Mapping[str, str],
          spans: Mapping[str, Sequence[Tuple[int, int]]] = None) -> Tuple[str, Dict[str, List[Tuple[int, int]]]]:
    """Format `template` whose replacement fields are exactly `fields`, each used once.

    Returns the text and, per field, the character span where its value landed; `spans` may give,
    per field, spans inside the value, which are shifted to the text.
    """
    if not isinstance(template, str):
        raise TaskOptionError(option, f"must be a string, got {type(template).__name__}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise TaskOptionError(option, f"is not a valid template ({error}): {template!r}") from None
    used = [name for _, name, _, _ in parsed if name is not None]
    for _, name, spec, conversion in parsed:
        if name is not None and (spec or conversion):
            raise TaskOptionError(option, f"field {{{name}}} may not carry a format spec or conversion: {template!r}")
    if sorted(used) != sorted(fields):
        wanted = ", ".join("{" + f + "}" for f in fields)
        raise TaskOptionError(option, f"must use each of {wanted} exactly once and no other field, "
                                      f"got {template!r}")
    text, where = [], {}
    offset = 0
    for literal, name, _, _ in parsed:
        text.append(literal)
        offset += len(literal)
        if name is not None:
            value = values[name]
            where[name] = [(offset, offset + len(value))]
            if spans and name in spans:
                where[name] = [(offset + a, offset + b) for a, b in spans[name]]
            text.append(value)
            offset += len(value)
    return "".join(text), where


def _apply_chat_template(chat_template: ChatTemplate, prompt: str) -> Tuple[str, int]:
    """The final text and the offset of `prompt` inside it."""
    if chat_template is None:
        return prompt, 0
    if isinstance(chat_template, str):
        text, where = _fill("chat_template", chat_template, ["prompt"], {"prompt": prompt})
        return text, where["prompt"][0][0]
    if callable(chat_template):
        text = chat_template(prompt)
        if not isinstance(text, str):
            raise TaskOptionError("chat_template", f"must return a string, got {type(text).__name__}")
        at = text.find(prompt)
        if at < 0:
            raise TaskOptionError("chat_template", "must return a text that contains the prompt unchanged")
        return text, at
    raise TaskOptionError("chat_template", f"must be a string with {{prompt}}, a function or None, "
                                           f"got {type(chat_template).__name__}")


def _finish(example_id: str, prompt: str, chat_template: ChatTemplate, query_labels: Dict[str, str],
            keys: List[Tuple[Tuple[int, int], Dict[str, str]]]) -> dict:
    text, shift = _apply_chat_template(chat_template, prompt)
    if not text or text[-1].isspace():
        # A trailing space or newline has no token of its own in many tokenizers.
        raise TaskOptionError("chat_template", f"the text must not end with white space, got ...{text[-20:]!r}")
    return {
        "id": example_id,
        "text": text,
        "query": {"char_span": [len(text) - 1, len(text)], "labels": query_labels},
        "keys": [{"char_span": [a + shift, b + shift], "labels": labels} for (a, b), labels in keys],
    }


def answers(example: Mapping) -> List[str]:
    """The words that answer a `filter_lists` or `box_binding` example, in list order.

    The keys whose labels agree with the query's on every feature the query carries (`category`
    for filter lists; `order` and `object` for box binding): the asked category's items, or the
    box holding the asked object.
    """
    wanted = example["query"]["labels"]
    text = example["text"]
    return [text[key["char_span"][0]:key["char_span"][1]] for key in example["keys"]
            if wanted and all(key.get("labels", {}).get(name) == value for name, value in wanted.items())]


# ------------------------------------------------------------------------------- filter lists
def filter_lists(n: int, *, seed: int = 0, vocabulary: Optional[Mapping[str, Tuple[str, Sequence[str]]]] = None,
                 categories: Optional[Sequence[str]] = None, n_items: int = 8, items_per_category: int = 1,
                 template: str = FILTER_TEMPLATE, item_template: str = FILTER_ITEM_TEMPLATE,
                 item_separator: str = "\n", chat_template: ChatTemplate = None,
                 id_prefix: str = "filter") -> List[dict]:
    """Filter lists: categorical semantic features ("What are the fruits in the list?").

    Each example lists `n_items` distinct words: `items_per_category` from each of
    `n_items / items_per_category` categories drawn at random, in random order, and asks for one
    of them (every category in turn is asked about equally often over `n` examples, then shuffled
    into the list). The query is the last character of the text (the `Answer:` colon by default),
    labelled `category=<asked>`; the keys are the items, labelled `category` and `order` (0-based
    position in the list). The answer is the asked category's items in list order.

    - `vocabulary`: `{category: (plural, items)}`; default `VOCABULARY` (8 categories × 8 words).
    - `categories`: the categories to use (default all of `vocabulary`).
    - `template`: must hold `{list}` and `{category}` (the plural) once each;
      `item_template` must hold `{item}`; items are joined by `item_separator`.
    - `chat_template`: `None`, a string with `{prompt}` once, or a function from the prompt to
      the final text that contains the prompt unchanged (e.g. a tokenizer's
      `apply_chat_template(..., tokenize=False, add_generation_prompt=True)`). The query stays
      at the text's last character, as in the paper.
    """
    _check_count("n", n, 1)
    vocab = _check_vocabulary(VOCABULARY if vocabulary is None else vocabulary)
    names = list(vocab) if categories is None else list(categories)
    if not names:
        raise TaskOptionError("categories", "must name at least one category")
    for name in names:
        if name not in vocab:
            raise TaskOptionError("categories", f"unknown category {name!r} (known: {', '.join(vocab)})")
    if len(set(names)) != len(names):
        raise TaskOptionError("categories", f"names a category twice: {names}")
    _check_count("n_items", n_items, 2)
    _check_count("items_per_category", items_per_category, 1)
    if n_items % items_per_category:
        raise TaskOptionError("n_items", f"must be a multiple of items_per_category ({items_per_category}), "
                                         f"got {n_items}")
    per_list = n_items // items_per_category
    if per_list < 2:
        raise TaskOptionError("n_items", f"must hold at least two categories ({items_per_category} items each), "
                                         f"got {n_items}")
    if per_list > len(names):
        raise TaskOptionError("n_items", f"{n_items} items at {items_per_category} per category need {per_list} "
                                         f"categories, only {len(names)} available")
    for name in names:
        if len(vocab[name][1]) < items_per_category:
            raise TaskOptionError("items_per_category", f"category {name!r} has only {len(vocab[name][1])} items, "
                                                        f"fewer than {items_per_category}")
    if not isinstance(item_separator, str):
        raise TaskOptionError("item_separator", f"must be a string, got {type(item_separator).__name__}")
    _fill("template", template, ["list", "category"], {"list": "", "category": ""})
    _fill("item_template", item_template, ["item"], {"item": ""})
    _check_id_prefix(id_prefix)

    rng = random.Random(seed)
    asked_order = [names[i % len(names)] for i in range(n)]
    rng.shuffle(asked_order)
    examples = []
    for index, asked in enumerate(asked_order):
        others = rng.sample([c for c in names if c != asked], per_list - 1)
        cats = [c for c in [asked, *others] for _ in range(items_per_category)]
        words = {c: rng.sample(list(vocab[c][1]), items_per_category) for c in [asked, *others]}
        rng.shuffle(cats)
        items = [words[c].pop() for c in cats]
        # The list text, with each item's span inside it.
        parts, item_spans, offset = [], [], 0
        for i, item in enumerate(items):
            if i:
                parts.append(item_separator)
                offset += len(item_separator)
            line, where = _fill("item_template", item_template, ["item"], {"item": item})
            a, b = where["item"][0]
            item_spans.append((offset + a, offset + b))
            parts.append(line)
            offset += len(line)
        prompt, where = _fill("template", template, ["list", "category"],
                              {"list": "".join(parts), "category": vocab[asked][0]}, spans={"list": item_spans})
        keys = [(span, {"category": cat, "order": str(i)}) for i, (span, cat) in enumerate(zip(where["list"], cats))]
        examples.append(_finish(f"{id_prefix}-{index:04d}", prompt, chat_template, {"category": asked}, keys))
    return examples


def _check_vocabulary(vocabulary) -> Dict[str, Tuple[str, Tuple[str, ...]]]:
    if not isinstance(vocabulary, Mapping) or not vocabulary:
        raise TaskOptionError("vocabulary", "must be a non-empty mapping {category: (plural, items)}")
    seen: Dict[str, str] = {}
    checked = {}
    for name, entry in vocabulary.items():
        if not isinstance(name, str) or not name:
            raise TaskOptionError("vocabulary", f"category names must be non-empty strings, got {name!r}")
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], (tuple, list))):
            raise TaskOptionError("vocabulary", f"category {name!r}: must map to (plural, [items]), got {entry!r}")
        plural, items = entry
        if not isinstance(plural, str) or not plural.strip() or "{" in plural or "}" in plural:
            raise TaskOptionError("vocabulary", f"category {name!r}: the plural must be a non-empty string "
                                                f"without braces, got {plural!r}")
        for item in items:
            _check_word(f"vocabulary[{name!r}]", item)
            if item in seen:
                raise TaskOptionError("vocabulary", f"item {item!r} is in both {seen[item]!r} and {name!r}")
            seen[item] = name
        checked[name] = (plural, tuple(items))
    return checked


def _check_id_prefix(id_prefix) -> None:
    if not isinstance(id_prefix, str) or not id_prefix:
        raise TaskOptionError("id_prefix", f"must be a non-empty string, got {id_prefix!r}")


# -------------------------------------------------------------------------------- box binding
def box_binding(n: int, *, seed: int = 0, n_pairs: int = 5, objects: Optional[Sequence[str]] = None,
                letters: Union[str, Sequence[str]] = LETTERS, template: str = BINDING_TEMPLATE,
                pair_template: str = BINDING_PAIR_TEMPLATE, pair_separator: str = ", ",
                last_separator: str = ", and ", capitalize: bool = True, chat_template: ChatTemplate = None,
                id_prefix: str = "binding") -> List[dict]:
    """Box binding: binding features ("The egg is in Box A, ... Which box is the fan in? Box").

    Each example places `n_pairs` distinct objects in `n_pairs` distinct boxes (objects and
    letters drawn at random, letters in random order, so a letter says nothing about a position)
    and asks for the box of one of them (every position in turn is asked about equally often over
    `n` examples, then shuffled). The query is the last character of the text (the final `Box`),
    labelled `order=<queried object's position>` and `object=<queried object>`; the keys are the
    box letters, labelled `order` (their pair's 0-based position) and `object` (what the box
    holds), so both features are positive exactly at the answer box, the answer.

    - `objects`: the object words (default `OBJECTS`); `letters`: the box names (default A–I).
    - `pair_template` must hold `{object}` and `{box}`; pairs are joined by `pair_separator`,
      the last one by `last_separator`; `capitalize` upper-cases the text's first letter.
    - `template` must hold `{pairs}` and `{object}` once each; `chat_template` as in `filter_lists`.
    """
    _check_count("n", n, 1)
    _check_count("n_pairs", n_pairs, 2)
    object_words = list(OBJECTS if objects is None else objects)
    for word in object_words:
        _check_word("objects", word)
    if len(set(object_words)) != len(object_words):
        raise TaskOptionError("objects", "names an object twice")
    letter_words = list(letters)
    for letter in letter_words:
        _check_word("letters", letter)
    if len(set(letter_words)) != len(letter_words):
        raise TaskOptionError("letters", "names a box twice")
    if n_pairs > len(object_words):
        raise TaskOptionError("n_pairs", f"{n_pairs} pairs need {n_pairs} objects, only {len(object_words)} given")
    if n_pairs > len(letter_words):
        raise TaskOptionError("n_pairs", f"{n_pairs} pairs need {n_pairs} boxes, only {len(letter_words)} letters given")
    for option, value in (("pair_separator", pair_separator), ("last_separator", last_separator)):
        if not isinstance(value, str):
            raise TaskOptionError(option, f"must be a string, got {type(value).__name__}")
    _fill("template", template, ["pairs", "object"], {"pairs": "", "object": ""})
    _fill("pair_template", pair_template, ["object", "box"], {"object": "", "box": ""})
    _check_id_prefix(id_prefix)

    rng = random.Random(seed)
    asked_order = [i % n_pairs for i in range(n)]
    rng.shuffle(asked_order)
    examples = []
    for index, asked in enumerate(asked_order):
        chosen = rng.sample(object_words, n_pairs)
        boxes = rng.sample(letter_words, n_pairs)
        parts, box_spans, offset = [], [], 0
        for i, (obj, box) in enumerate(zip(chosen, boxes)):
            if i:
                separator = last_separator if i == n_pairs - 1 else pair_separator
                parts.append(separator)
                offset += len(separator)
            pair, where = _fill("pair_template", pair_template, ["object", "box"], {"object": obj, "box": box})
            a, b = where["box"][0]
            box_spans.append((offset + a, offset + b))
            parts.append(pair)
            offset += len(pair)
        pairs = "".join(parts)
        prompt, where = _fill("template", template, ["pairs", "object"], {"pairs": pairs, "object": chosen[asked]},
                              spans={"pairs": box_spans})
        if capitalize:
            prompt = prompt[:1].upper() + prompt[1:]
        keys = [(span, {"order": str(i), "object": obj}) for i, (span, obj) in enumerate(zip(where["pairs"], chosen))]
        examples.append(_finish(f"{id_prefix}-{index:04d}", prompt, chat_template,
                                {"order": str(asked), "object": chosen[asked]}, keys))
    return examples
