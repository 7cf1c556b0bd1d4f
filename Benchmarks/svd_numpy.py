#!/usr/bin/env python3
"""Median wall time of numpy.linalg.svd on random square matrices, printed as JSON.

The counterpart of qkbench's svdBenchmark (Benchmarks/qkbench/SVDBenchmark.swift): same sizes, one
warm-up call, then `repetitions` different matrices each timed separately; full U and V computed.
"""
import argparse
import json
import statistics
import time

import numpy as np


def svd_medians(sizes, repetitions):
    rng = np.random.default_rng(0x5EED)
    results = []
    for size in sizes:
        inputs = [rng.uniform(-1.0, 1.0, (size, size)) for _ in range(max(repetitions, 1))]
        np.linalg.svd(inputs[0])
        times = []
        for matrix in inputs:
            start = time.perf_counter()
            np.linalg.svd(matrix)
            times.append((time.perf_counter() - start) * 1e3)
        results.append({"size": size, "median_ms": statistics.median(times)})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32,64,128,256", help="comma-separated matrix sizes")
    parser.add_argument("--repetitions", type=int, default=50, help="matrices timed per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(json.dumps({"numpy": np.__version__, "results": svd_medians(sizes, args.repetitions)}))


if __name__ == "__main__":
    main()
