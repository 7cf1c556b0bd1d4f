#!/usr/bin/env python3
"""The numpy baseline for `make bench`: the same contrast as qkcat's engine, written the way a
researcher would write it with plain vectorized numpy (float64, like the engine).

    python3 numpy_contrast.py CAPTURE_DIR [--top 20] [--energy 0.99] [--per-value]

Per layer: decode q and k, sum each prompt's keys with their pair weights (1/N+ or -1/N-),
one batched matmul per layer for every head, batched SVD, rank by energy, sign convention, and
the top/bottom keys and queries of every kept component with per-token aggregates. With
`--per-value`, each feature is also contrasted per query value (only the prompts whose query holds
that value, weights over their pairs), as `qkcat ingest --per-value` does.
Prints one JSON line: wall seconds, GB/s of capture read, peak RSS.
"""
import json
import os
import resource
import struct
import sys
import time

import numpy as np

DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}


def read_tensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = (info["dtype"], raw[8 + n + start: 8 + n + end].view(DTYPES[info["dtype"]]).reshape(info["shape"]))
    return out


def to_f64(dtype, array):
    if dtype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return array.astype(np.float64)


def main(argv):
    capture = argv[0]
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 20
    energy = float(argv[argv.index("--energy") + 1]) if "--energy" in argv else 0.99
    per_value = "--per-value" in argv
    start = time.perf_counter()
    header = json.load(open(os.path.join(capture, "capture.json")))
    prompts = [json.loads(line) for line in open(os.path.join(capture, "prompts.jsonl")) if line.strip()]
    tensors = {}
    for name in header["tensor_files"]:
        tensors.update(read_tensors(os.path.join(capture, name)))
    model = header["model"]
    H, Hkv = model["n_heads"], model["n_kv_heads"]
    kvmap = np.arange(H) // (H // Hkv)
    counts = np.array([len(p["keys"]) for p in prompts])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    vocab = {}
    key_tokens = np.array([vocab.setdefault(p["tokens"][k["position"]], len(vocab)) for p in prompts for k in p["keys"]])
    query_tokens = np.array([vocab.setdefault(p["tokens"][p["query"]["position"]], len(vocab)) for p in prompts])
    key_counts = np.bincount(key_tokens, minlength=len(vocab))
    query_counts = np.bincount(query_tokens, minlength=len(vocab))

    # Pair weights per feature: +1/N+ for keys sharing the query's value, -1/N- otherwise.
    # Per value: only the pairs of prompts whose query holds that value.
    weights = {}
    for feature in sorted(header["features"]):
        query_values = [p["query"].get("labels", {}).get(feature) for p in prompts]
        targets = [None] + (sorted({v for v in query_values if v is not None}, key=str) if per_value else [])
        for target in targets:
            w = []
            for p, qv in zip(prompts, query_values):
                for k in p["keys"]:
                    kv = k.get("labels", {}).get(feature)
                    skip = qv is None or kv is None or (target is not None and qv != target)
                    w.append(0 if skip else (1 if kv == qv else -1))
            w = np.array(w, dtype=np.float64)
            npos, nneg = (w > 0).sum(), (w < 0).sum()
            if npos and nneg:
                weights[(feature, target)] = np.where(w > 0, 1 / npos, np.where(w < 0, -1 / nneg, 0.0))

    n_components = 0
    for layer in header["layers"]:
        Q = to_f64(*tensors[f"layers.{layer}.q"])          # [P, H, d]
        K = to_f64(*tensors[f"layers.{layer}.k"])          # [K, Hkv, d]
        mean_q = Q.mean(axis=0)                             # [H, d]
        # Each head's queries and each kv head's keys contiguous once, for the per-component scores.
        Q_heads = np.ascontiguousarray(Q.transpose(1, 0, 2))   # [H, P, d]
        K_heads = np.ascontiguousarray(K.transpose(1, 0, 2))   # [Hkv, K, d]
        for feature, w in weights.items():
            W = np.add.reduceat(K * w[:, None, None], starts, axis=0)           # [P, Hkv, d]
            dC = np.matmul(Q.transpose(1, 2, 0), W[:, kvmap, :].transpose(1, 0, 2))  # [H, d, d]
            U, S, Vt = np.linalg.svd(dC)
            for h in range(H):
                s2 = S[h] ** 2
                r = int(np.searchsorted(np.cumsum(s2), energy * s2.sum()) + 1)
                u, v = U[h][:, :r], Vt[h][:r].T
                sign = np.where(mean_q[h] @ u < 0, -1.0, 1.0)
                u, v = u * sign, v * sign
                for rows, tokens, n in ((K_heads[kvmap[h]] @ v, key_tokens, key_counts), (Q_heads[h] @ u, query_tokens, query_counts)):
                    for i in range(r):
                        s = rows[:, i]
                        hi = np.argpartition(-s, top)[:top]
                        lo = np.argpartition(s, top)[:top]
                        hi, lo = hi[np.argsort(-s[hi])], lo[np.argsort(s[lo])]
                        sums = np.bincount(tokens, weights=s, minlength=len(vocab))
                        means = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
                        order = np.argsort(-np.nan_to_num(means, nan=-np.inf))[:top]
                n_components += r
    seconds = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(capture, f)) for f in os.listdir(capture))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"step": "numpy", "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "bytes": size, "gb_per_s": size / seconds / 1e9,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "components": n_components, "per_value": per_value}))


if __name__ == "__main__":
    main(sys.argv[1:])
