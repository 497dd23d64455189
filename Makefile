# lockstep — two commands work on a fresh machine: `make demo` and `make test`.
# One cargo profile (release) serves tests, demo and benches, so RocksDB is built once;
# the target directory persists under ~/.cache between runs.

CARGO_TARGET_DIR ?= $(HOME)/.cache/lockstep-target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/lockstep
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO := target/demo

.PHONY: deps build test demo bench lint

# The rocksdb crate generates its bindings with libclang.
deps:
	@ldconfig -p | grep -q libclang || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libclang-dev; }

build: deps
	cargo build --release --locked

test: deps
	cargo test --release --locked

demo: build
	@mkdir -p $(DEMO)
	$(BIN) simulate --seed 7 --accounts 40 --out $(DEMO)/events.jsonl
	$(BIN) replay --config config/lockstep.toml --input $(DEMO)/events.jsonl --alerts $(DEMO)/alerts.ndjson --print
	@echo "alerts as canonical JSON lines: $(DEMO)/alerts.ndjson"

bench: deps
	cargo bench --locked

lint: deps
	cargo fmt --check
	cargo clippy --release --locked --all-targets -- -D warnings
