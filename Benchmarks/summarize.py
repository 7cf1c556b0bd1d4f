#!/usr/bin/env python3
"""Turn Benchmarks/out/results.jsonl (written by run.sh) into the markdown tables of
Benchmarks/README.md: medians over repeated runs, and ratios against the numpy baselines."""
import json
import statistics
import sys
from collections import defaultdict


def mb(n):
    return f"{n / 1e6:,.0f} MB"


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    by_step = defaultdict(list)
    for row in rows:
        by_step[(row.get("step"), row.get("prompts"))].append(row)

    print("### Decomposition engine vs numpy (32 layers x 32 heads, 8 kv heads, d_head 128, 10 keys/prompt, BF16)\n")
    print("| prompts | capture | qkcat engine | numpy | speed-up | engine GB/s | numpy GB/s | engine peak RSS | numpy peak RSS | RSS ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for prompts in sorted({p for (_, p) in by_step if p}):
        engine, numpy = by_step.get(("engine", prompts)), by_step.get(("numpy", prompts))
        if not engine or not numpy:
            continue
        e = statistics.median(r["seconds"] for r in engine)
        n = statistics.median(r["seconds"] for r in numpy)
        e_rss = statistics.median(r["peak_rss"] for r in engine)
        n_rss = statistics.median(r["peak_rss"] for r in numpy)
        size = engine[0]["bytes"]
        print(f"| {prompts} | {mb(size)} | {e:.2f} s | {n:.2f} s | {n / e:.1f}x | {size / e / 1e9:.2f} | "
              f"{size / n / 1e9:.2f} | {mb(e_rss)} | {mb(n_rss)} | {e_rss / n_rss:.2f} |")
    print(f"\n(medians of {len(by_step.get(('engine', 2000), []))} runs each)\n")

    print("### Ingest vs numpy (8 layers x 16 heads, 4 kv heads, d_head 64, 4000 prompts x 8 keys, BF16)\n")
    print("| mode | qkcat ingest | engine alone | numpy | ingest speed-up | ingest peak RSS | numpy peak RSS | RSS ratio | engine GFLOP/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in ("pooled", "per-value"):
        ingest = by_step.get((f"ingest-{mode}", None), [])
        engine = [r for r in rows if r.get("step") == "engine" and r.get("mode") == mode]
        numpy = [r for r in rows if r.get("step") == "numpy" and r.get("mode") == mode]
        if not ingest or not engine or not numpy:
            continue
        i = statistics.median(r["median_seconds"] for r in ingest)
        e = statistics.median(r["seconds"] for r in engine)
        n = statistics.median(r["seconds"] for r in numpy)
        i_rss = statistics.median(r["peak_rss"] for r in ingest)
        n_rss = statistics.median(r["peak_rss"] for r in numpy)
        rate = statistics.median(r["gflop_per_s"] for r in engine)
        print(f"| {mode} | {i:.2f} s | {e:.2f} s | {n:.2f} s | {n / i:.1f}x | {mb(i_rss)} | {mb(n_rss)} | "
              f"{i_rss / n_rss:.2f} | {rate:.1f} ({engine[0]['gflop']:.1f} GFLOP) |")
        i_cpu = [r["cpu_seconds_per_run"] for r in ingest if "cpu_seconds_per_run" in r]
        n_cpu = [r["cpu_seconds"] for r in numpy if "cpu_seconds" in r]
        if i_cpu and n_cpu:
            ic, nc = statistics.median(i_cpu), statistics.median(n_cpu)
            print(f"|   CPU seconds (user + sys) | {ic:.2f} s | | {nc:.2f} s | {nc / ic:.1f}x | | | | |")
    gemm = by_step.get(("gemm_numpy", None), [])
    if gemm:
        print(f"\nnumpy float32 GEMM ({gemm[-1]['size']}^2): {gemm[-1]['gflop_per_s']:.0f} GFLOP/s\n")

    svd = by_step.get(("svd", None), [])
    svd_numpy = by_step.get(("svd_numpy", None), [])
    if svd and svd_numpy:
        swift = svd[-1]["median_ms"]
        numpy = {str(r["size"]): r["median_ms"] for r in svd_numpy[-1]["results"]}
        print("### One SVD, median of 50\n")
        print("| size | qkcat (pure Swift) | numpy.linalg.svd | ratio |")
        print("| ---: | ---: | ---: | ---: |")
        for size in sorted(swift, key=int):
            if size in numpy:
                print(f"| {size} x {size} | {swift[size]:.3f} ms | {numpy[size]:.3f} ms | {swift[size] / numpy[size]:.2f} |")
        print()

    for step, title in (("attribute", "Attribution, `qkcat attribute --all`"), ("search", "Catalog search"),
                        ("ingest-store", "Ingest store phase"), ("compare", "Compare"), ("similar", "Similar")):
        for row in by_step.get((step, None), []):
            print(f"### {title}\n")
            print("```")
            print(json.dumps(row, indent=1, sort_keys=True))
            print("```\n")


if __name__ == "__main__":
    main(sys.argv[1])
