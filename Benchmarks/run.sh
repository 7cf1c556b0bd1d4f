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

# Per-value ingest (issue 7): the shape users ask about, 8 layers x 16 heads, 4 kv heads, d_head 64,
# 4000 prompts x 8 keys, BF16, two features of 8 values; `qkcat ingest` end to end (store included),
# the engine alone (with its GFLOP/s) and numpy, pooled and per value, interleaved run by run; then
# the machine's float32 GEMM rate as numpy achieves it.
dir=$OUT/capture-pervalue
[ -f "$dir/capture.json" ] || "$BENCH" generate "$dir" --layers 8 --heads 16 --kv-heads 4 --d 64 --prompts 4000 --keys 8 --values 8 | record
for i in $(seq "$REPEAT"); do
  for mode in pooled per-value; do
    flag=$([ "$mode" = per-value ] && echo --per-value || true)
    python3 Benchmarks/time_command.py --fresh "$OUT/ingest.sqlite" "ingest-$mode" 1 \
      .build/release/qkcat ingest "$dir" --db "$OUT/ingest.sqlite" $flag -q | record
    "$BENCH" engine "$dir" $flag | sed "s/}$/,\"mode\":\"$mode\"}/" | record
    python3 Benchmarks/numpy_contrast.py "$dir" $flag | sed "s/}$/,\"mode\":\"$mode\"}/" | record
  done
done
python3 Benchmarks/gemm_numpy.py | record
if [ "${1:-}" = ingest ]; then   # `Benchmarks/run.sh ingest`: this section alone
  python3 Benchmarks/summarize.py "$RESULTS"
  exit 0
fi

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
"$BENCH" label-sequence "$OUT/search.sqlite" --count 1000 | record
# 600 `qkcat label` commands in a row on the MiniLM catalog: the first and the last ones' costs.
rm -f "$OUT/minilm.sqlite" "$OUT/minilm.sqlite-wal" "$OUT/minilm.sqlite-shm"
.build/release/qkcat ingest Examples/minilm/capture --db "$OUT/minilm.sqlite" --per-value -q
python3 Benchmarks/label_sequence.py .build/release/qkcat "$OUT/minilm.sqlite" 600 | record
"$BENCH" ingest-store "$OUT/capture-2000" | record
"$BENCH" ingest-store "$OUT/capture-2000" --per-value | record

# Comparing checkpoints (issue 4): --match over 2 x 32 x 32 heads, similar over 1M components.
"$BENCH" compare-match "$OUT/compare" | record
"$BENCH" similar "$OUT/compare" | record

# Attribution over every prompt and head of the 2000-prompt capture (issue 5).
"$BENCH" attribute "$OUT/capture-2000" --db "$OUT/attribute.sqlite" --repeat "$REPEAT" | record

# The HTML report of a 3 × 32 × 32 catalog (98,304 components): the whole `qkcat report`, pages and sizes.
"$BENCH" report "$OUT/report" | record

# The Python capture writer (issue 6): MB/s and peak memory at two prompt counts (a text table).
PYTHONPATH=python python3 Benchmarks/capture_writer_bench.py --prompts 500,2000 --repeats "$REPEAT" | tee "$OUT/capture_writer.txt"

# capture_hf against the bare forward passes (torch and transformers from the .venv of `make test`).
.venv/bin/python Benchmarks/hf_capture_bench.py --prompts 64,256 --repeats "$REPEAT" | tee "$OUT/hf_capture.txt"

python3 Benchmarks/summarize.py "$RESULTS"
