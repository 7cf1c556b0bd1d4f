#!/usr/bin/env python3
"""Benchmark of qkcapture.CaptureWriter: write throughput and peak memory against prompt count.

    python Benchmarks/capture_writer_bench.py [--prompts 500,2000] [--repeats 3]

Shape of a Llama-3-8B-like capture: 32 layers x 32 query heads, 8 key/value heads
(grouped-query attention), d_head 128, 10 keys per prompt, stored as BF16; the inputs are
float32 arrays as a forward pass hands them over. Each run is a fresh child process that
makes a pool of 16 prompts' inputs first (not timed) and then writes the capture, cycling
through the pool, so the only memory that could grow with the prompt count is the writer's.
Throughput = tensor bytes written / wall time of the whole `with` block (conversion,
validation, spooling, assembling the safetensors file, renaming). Peak RSS is the child's
ru_maxrss; the baseline is its RSS just before writing (numpy + the input pool).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

N_LAYERS, N_HEADS, N_KV_HEADS, D_HEAD, N_KEYS, POOL = 32, 32, 8, 128, 10, 16


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(n_prompts: int, directory: str) -> dict:
    import numpy as np

    import qkcapture

    rng = np.random.default_rng(0)
    layers = list(range(N_LAYERS))
    pool = []
    for _ in range(POOL):
        q = {L: rng.standard_normal((N_HEADS, D_HEAD), dtype=np.float32) for L in layers}
        k = {L: rng.standard_normal((N_KEYS, N_KV_HEADS, D_HEAD), dtype=np.float32) for L in layers}
        pool.append((q, k))
    tokens = [f"tok{i}" for i in range(40)]
    keys = [{"position": 2 + 3 * i, "labels": {"category": ("a", "b")[i % 2], "order": str(i)}} for i in range(N_KEYS)]
    baseline = rss_kib()
    target = os.path.join(directory, "capture")
    start = time.perf_counter()
    with qkcapture.CaptureWriter(
        target, model="bench/llama-like", checkpoint="main", n_layers=N_LAYERS, n_heads=N_HEADS,
        n_kv_heads=N_KV_HEADS, d_head=D_HEAD, layers=layers,
        features={"category": {"kind": "semantic"}, "order": {"kind": "binding"}},
        positional="post-rope", dtype="bf16",
    ) as w:
        for i in range(n_prompts):
            q, k = pool[i % POOL]
            w.add_prompt(f"p{i}", tokens=tokens, query_position=39, query_labels={"category": "a"}, keys=keys, q=q, k=k)
        appended = time.perf_counter()
    elapsed = time.perf_counter() - start
    tensor_bytes = n_prompts * N_LAYERS * (N_HEADS + N_KEYS * N_KV_HEADS) * D_HEAD * 2
    file_bytes = os.path.getsize(os.path.join(target, "activations.safetensors"))
    return {
        "prompts": n_prompts,
        "tensor_bytes": tensor_bytes,
        "file_bytes": file_bytes,
        "seconds": elapsed,
        "append_seconds": appended - start,
        "assemble_seconds": elapsed - (appended - start),
        "baseline_rss_kib": baseline,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def run_one(n_prompts: int) -> dict:
    directory = tempfile.mkdtemp(prefix="qkcapture-bench-")
    try:
        out = subprocess.run([sys.executable, __file__, "--child", str(n_prompts), directory],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default="500,2000", help="comma-separated prompt counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return

    import numpy

    import qkcapture

    print(f"qkcapture {qkcapture.__version__}, numpy {numpy.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"shape: {N_LAYERS} layers x {N_HEADS} heads ({N_KV_HEADS} kv heads) x d_head {D_HEAD}, "
          f"{N_KEYS} keys/prompt, BF16; median of {args.repeats} runs each")
    print(f"{'prompts':>8} {'tensor MB':>10} {'seconds':>8} {'MB/s':>7} {'append s':>9} {'assemble s':>10} "
          f"{'base RSS MB':>11} {'peak RSS MB':>11} {'peak-base MB':>12}")
    for n in [int(x) for x in args.prompts.split(",")]:
        runs = [run_one(n) for _ in range(args.repeats)]
        med = lambda key: statistics.median(r[key] for r in runs)
        assert all(r["file_bytes"] >= r["tensor_bytes"] for r in runs)
        mb = runs[0]["tensor_bytes"] / 1e6
        print(f"{n:>8} {mb:>10.1f} {med('seconds'):>8.2f} {mb / med('seconds'):>7.0f} {med('append_seconds'):>9.2f} "
              f"{med('assemble_seconds'):>10.2f} {med('baseline_rss_kib') / 1024:>11.1f} {med('peak_rss_kib') / 1024:>11.1f} "
              f"{(med('peak_rss_kib') - med('baseline_rss_kib')) / 1024:>12.1f}")


if __name__ == "__main__":
    main()
