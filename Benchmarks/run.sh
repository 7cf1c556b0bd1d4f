#!/usr/bin/env bash
# `make bench`: every speed target of the issues, measured on this machine, each step in its own
# process so that peak RSS is that step's alone. Results: Benchmarks/out/results.jsonl and a
# markdown table on stdout (copied into Benchmarks/README.md by hand, with machine and date).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=Benchmarks/out
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
REPEAT=${REPEAT:-3}

swift build -c release --product qkbench
swift build -c release --product qkcat
BENCH=.build/release/qkbench

record() { tee -a "$RESULTS"; }

# Engine vs numpy on a capture shaped like a real model: 32 layers x 32 heads, 8 kv heads,
# d_head 128, 10 keys per prompt, BF16; two prompt counts show memory does not grow with prompts.
for prompts in 1000 2000; do
  dir=$OUT/capture-$prompts
  [ -f "$dir/capture.json" ] || "$BENCH" generate "$dir" --prompts "$prompts" | record
  for i in $(seq "$REPEAT"); do
    "$BENCH" engine "$dir" | sed "s/}$/,\"prompts\":$prompts}/" | record
    python3 Benchmarks/numpy_contrast.py "$dir" | sed "s/}$/,\"prompts\":$prompts}/" | record
  done
done

# One SVD per size, Swift and numpy, back to back.
"$BENCH" svd | record
python3 Benchmarks/svd_numpy.py | sed 's/^{/{"step": "svd_numpy", /' | record

# The catalog (issue 3): search over 1M components in-process, `qkcat search` end to end, and the
# store phase of ingest against the engine.
"$BENCH" search "$OUT/search.sqlite" | record
for query in "mango violin river" "mango violin river gold"; do
  "$BENCH" search-query "$OUT/search.sqlite" "$query" | record
done
python3 Benchmarks/time_command.py qkcat-search 30 .build/release/qkcat search mango --layer 5 --head 3 --db "$OUT/search.sqlite" | record
python3 Benchmarks/time_command.py qkcat-search 30 .build/release/qkcat search "apple tiger" --db "$OUT/search.sqlite" | record
"$BENCH" ingest-store "$OUT/capture-2000" | record
"$BENCH" ingest-store "$OUT/capture-2000" --per-value | record

# Comparing checkpoints (issue 4): --match over 2 x 32 x 32 heads, similar over 1M components.
"$BENCH" compare-match "$OUT/compare" | record
"$BENCH" similar "$OUT/compare" | record

# Attribution over every prompt and head of the 2000-prompt capture (issue 5).
"$BENCH" attribute "$OUT/capture-2000" --db "$OUT/attribute.sqlite" --repeat "$REPEAT" | record

# The Python capture writer (issue 6): MB/s and peak memory at two prompt counts (a text table).
PYTHONPATH=python python3 Benchmarks/capture_writer_bench.py --prompts 500,2000 --repeats "$REPEAT" | tee "$OUT/capture_writer.txt"

# capture_hf against the bare forward passes (torch and transformers from the .venv of `make test`).
.venv/bin/python Benchmarks/hf_capture_bench.py --prompts 64,256 --repeats "$REPEAT" | tee "$OUT/hf_capture.txt"

python3 Benchmarks/summarize.py "$RESULTS"
