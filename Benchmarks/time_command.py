#!/usr/bin/env python3
"""Time a whole command, process start included: `time_command.py [--fresh PATH]... STEP N CMD...`
runs CMD N times (after one warm-up) and prints one JSON line with the median and p90 wall seconds,
every run's seconds, the CPU seconds per run (warm-up included in the mean), and the command's peak
RSS (the largest of its runs). `--fresh PATH` deletes
PATH (and its SQLite -wal and -shm files) before every run, e.g. the catalog of an ingest."""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

arguments = sys.argv[1:]
fresh = []
while arguments[0] == "--fresh":
    fresh.append(arguments[1])
    arguments = arguments[2:]
step, runs, command = arguments[0], int(arguments[1]), arguments[2:]


def run():
    for path in fresh:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


run()
times = sorted(run() for _ in range(runs))
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"step": step, "runs": runs, "median_seconds": statistics.median(times),
                  "cpu_seconds_per_run": (usage.ru_utime + usage.ru_stime) / (runs + 1),
                  "p90_seconds": times[int(0.9 * (runs - 1))], "seconds": times,
                  "peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                  "command": " ".join(command)}))
