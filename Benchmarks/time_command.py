#!/usr/bin/env python3
"""Time a whole command, process start included: `time_command.py STEP N CMD...` runs CMD N times
(after one warm-up) and prints one JSON line with the median and p90 wall seconds."""
import json
import statistics
import subprocess
import sys
import time

step, runs, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
times = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - start)
times.sort()
print(json.dumps({"step": step, "runs": runs, "median_seconds": statistics.median(times),
                  "p90_seconds": times[int(0.9 * (runs - 1))], "command": " ".join(command)}))
