"""Times `qkcat label` run N times in a row (each its own process) on a catalog; prints one JSON record.

first_ms and last_ms are the medians of the first and the last ten commands; ratio is last / first.
"""
import json
import statistics
import subprocess
import sys
import time

qkcat, db, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for n in range(count):
    start = time.perf_counter()
    subprocess.run([qkcat, "label", str(1 + n * 3), f"checked by hand {n}", "--db", db], check=True,
                   stdout=subprocess.DEVNULL)
    times.append((time.perf_counter() - start) * 1e3)
first, last = statistics.median(times[:10]), statistics.median(times[-10:])
print(json.dumps({"step": "label-sequence-cli", "count": count, "first_ms": first, "last_ms": last,
                  "ratio": last / first, "median_ms": statistics.median(times)}))
