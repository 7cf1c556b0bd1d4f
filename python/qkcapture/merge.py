"""Join the shards of a data-parallel capture into one capture: `merge`.

Each worker captures its part of the prompts into a capture of its own (`capture_hf(...,
shard=(rank, world_size))`, or any capture of the same model over other prompts). `merge`
checks that the shards fit together, then builds one capture whose `prompts.jsonl` is the shards'
prompts one shard after another and whose `tensor_files` are the shards' tensor files,
hard-linked into sub-folders `shard-00000/`, `shard-00001/`, …: no tensor is copied. Each
`layers.{L}.q` / `.k` is then stored in pieces, one per shard, whose rows follow each other in
`tensor_files` order, as the capture format allows. All or nothing: a refused shard set or a
failure leaves nothing at the target.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, List, Sequence

from .errors import CaptureError
from .reader import Capture, read_capture
from .writer import _make_work_dir, _remove_tree, check_target, publish_directory

_SHARD_KEY = "shard"  # dataset["shard"] = {"rank": r, "world_size": w}, written by write_capture(shard=...)
_AGREE = (("model", "model"), ("positional", "positional"), ("layers", "layers"), ("features", "features"))


def _describe(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _check_shards(paths: List[str], shards: List[Capture]) -> List[int]:
    """Refuse shards that do not make one capture; returns the order to join them in."""
    first = shards[0].header
    for path, shard in zip(paths[1:], shards[1:]):
        header = shard.header
        for key, what in _AGREE:
            if header.get(key) != first.get(key):
                raise CaptureError(f"{path}: capture.json: {key}", f"{_describe(header.get(key))} differs from "
                                   f"{paths[0]}'s {_describe(first.get(key))}; shards must share the {what}")
    for name in shards[0].tensors:
        for path, shard in zip(paths[1:], shards[1:]):
            if shard.tensors.dtype(name) != shards[0].tensors.dtype(name):
                raise CaptureError(f"{path}: tensor {name!r}", f"is {shard.tensors.dtype(name)} where {paths[0]} has "
                                   f"{shards[0].tensors.dtype(name)}; shards must be written with one dtype")
    owner: Dict[str, str] = {}
    for path, shard in zip(paths, shards):
        for prompt in shard.prompts:
            if prompt["id"] in owner:
                where = "twice in" if owner[prompt["id"]] == path else f"in {owner[prompt['id']]} and in"
                raise CaptureError(f"{path}: prompts.jsonl", f"prompt id {prompt['id']!r} is {where} {path}; "
                                   "a prompt belongs to one shard")
            owner[prompt["id"]] = path
    datasets = [dict(s.header.get("dataset") or {}) for s in shards]
    ranks = [d.pop(_SHARD_KEY, None) for d in datasets]
    for path, dataset in zip(paths[1:], datasets[1:]):
        if dataset != datasets[0]:
            raise CaptureError(f"{path}: capture.json: dataset", f"{_describe(dataset)} differs from {paths[0]}'s "
                               f"{_describe(datasets[0])} (the shard numbers aside)")
    if all(r is None for r in ranks):
        return list(range(len(shards)))  # shards the caller cut: joined in the order given
    if any(r is None for r in ranks):
        plain = paths[ranks.index(None)]
        raise CaptureError(f"{plain}: capture.json: dataset.shard", "is missing while other shards have one; merge "
                           "the shards of one sharded capture")
    world_sizes = {r.get("world_size") for r in ranks}
    if len(world_sizes) != 1:
        raise CaptureError("shards", f"come from captures of different world sizes {sorted(map(str, world_sizes))}")
    world_size = world_sizes.pop()
    by_rank: Dict[Any, str] = {}
    for path, r in zip(paths, ranks):
        if r.get("rank") in by_rank:
            raise CaptureError(f"{path}: capture.json: dataset.shard", f"rank {r.get('rank')} of {world_size} is also "
                               f"{by_rank[r.get('rank')]}")
        by_rank[r.get("rank")] = path
    missing = [rank for rank in range(world_size) if rank not in by_rank]
    if missing:
        raise CaptureError("shards", f"rank(s) {missing} of world size {world_size} are missing; got "
                           f"{len(shards)} shard(s)")
    return sorted(range(len(shards)), key=lambda i: ranks[i]["rank"])


def merge(shard_paths: Sequence["os.PathLike[str] | str"], path: "os.PathLike[str] | str", *,
          overwrite: bool = False) -> str:
    """Join the captures at `shard_paths` (shards of one model and checkpoint) into one capture at `path`.

    Shards must agree on the model (name, checkpoint, shapes, attention scale), `positional`,
    layers, features, dataset (its `shard` entry aside) and tensor dtype, and no prompt id may
    repeat. Shards written with `shard=(rank, world_size)` are joined in rank order and must
    cover every rank once; others in the order given. Tensor files are hard-linked, never copied,
    so `path` must be on the same filesystem as the shards (they may be deleted afterwards).
    Returns the merged capture's path; on any error nothing is left at `path`.
    """
    if isinstance(shard_paths, (str, bytes, os.PathLike)):
        raise CaptureError("shard_paths", "must be a list of capture folders, got one path")
    paths = [os.fspath(p) for p in shard_paths]
    if not paths:
        raise CaptureError("shard_paths", "names no shard")
    target = os.path.abspath(os.fspath(path))
    for p in paths:
        if os.path.abspath(p) == target:
            raise CaptureError("path", f"{path} is one of the shards; write the merged capture elsewhere")
    check_target(target, overwrite)
    shards = []
    for p in paths:
        try:
            shards.append(read_capture(p))
        except CaptureError as error:
            raise CaptureError(f"{p}: {error.field}", error.message, error.prompt) from None
    order = _check_shards(paths, shards)

    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    work = _make_work_dir(parent, os.path.basename(target))
    try:
        tensor_files: List[str] = []
        with open(os.path.join(work, "prompts.jsonl"), "wb") as out:
            for n, i in enumerate(order):
                with open(os.path.join(paths[i], "prompts.jsonl"), "rb") as source:
                    shutil.copyfileobj(source, out)
                    if source.tell() and not _ends_with_newline(source):
                        out.write(b"\n")
                folder = f"shard-{n:05d}"
                for name in shards[i].header["tensor_files"]:
                    linked = f"{folder}/{name}"
                    os.makedirs(os.path.dirname(os.path.join(work, linked)), exist_ok=True)
                    _link(os.path.join(paths[i], name), os.path.join(work, linked), paths[i], target)
                    tensor_files.append(linked)
        header = dict(shards[order[0]].header)
        header["tensor_files"] = tensor_files
        dataset = dict(header.get("dataset") or {})
        dataset.pop(_SHARD_KEY, None)
        dataset["merged_shards"] = len(shards)
        header["dataset"] = dataset
        with open(os.path.join(work, "capture.json"), "w", encoding="utf-8") as f:
            json.dump(header, f, indent=2, ensure_ascii=False)
            f.write("\n")
        read_capture(work)  # the merged capture reads back whole before it is published
        check_target(target, overwrite)
        publish_directory(work, target)
    except BaseException:
        _remove_tree(work)
        raise
    return target


def _ends_with_newline(handle) -> bool:
    handle.seek(-1, os.SEEK_END)
    return handle.read(1) == b"\n"


def _link(source: str, destination: str, shard: str, target: str) -> None:
    try:
        os.link(source, destination)
    except OSError as error:
        raise CaptureError("path", f"cannot hard-link {source} into {target} ({error.strerror}); merge writes no copy "
                           f"of the tensors, so the merged capture must be on the filesystem of its shards "
                           f"({shard})") from None
