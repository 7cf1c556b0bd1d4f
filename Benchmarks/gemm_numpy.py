#!/usr/bin/env python3
"""The machine's float32 matrix-product rate, as numpy (OpenBLAS) achieves it on every core: the
yardstick for the engine's GFLOP/s. Prints one JSON line: the median of 7 products of 2048 x 2048."""
import json
import statistics
import time

import numpy as np

n = 2048
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
times = []
for _ in range(7):
    start = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - start)
seconds = statistics.median(times)
print(json.dumps({"step": "gemm_numpy", "size": n, "median_seconds": seconds, "gflop_per_s": 2 * n**3 / seconds / 1e9}))
