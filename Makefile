# qkcat — two commands on a fresh machine: `make demo` and `make test`.
SWIFT ?= swift
RELEASE_BIN := .build/release/qkcat
PYTHON ?= python3
VENV := .venv

.PHONY: all build release demo test test-swift test-python bench deps clean

all: build

# The one system dependency: SQLite's headers and library (Debian libsqlite3-dev).
deps:
	@if ! pkg-config --exists sqlite3 2>/dev/null && [ ! -f /usr/include/sqlite3.h ]; then \
		echo "Installing libsqlite3-dev"; \
		(apt-get update -qq && apt-get install -y -qq libsqlite3-dev pkg-config) >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product qkcat

test: deps test-swift

test-swift:
	$(SWIFT) test --parallel

bench: deps
	$(SWIFT) build -c release --product qkbench
	.build/release/qkbench

clean:
	rm -rf .build $(VENV)
