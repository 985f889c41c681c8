# The two commands the README gives: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# The store: every command's default (NPO_STORE_URL, else sqlite:///var/npo-adapter.db); STORE=URL for another.
STORE  ?=
HOST   ?= 127.0.0.1
PORT   ?= 8443
# METRICS_PORT=9464: also serve /metrics and /health/* there (plain HTTP, loopback)
METRICS_PORT ?=

.PHONY: run test demo-data bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	test -f certs/dev/pki.json || $(BIN)/npo-adapter certs init
	$(BIN)/npo-adapter demo generate
	$(BIN)/npo-adapter ingest demo-data $(if $(STORE),--store '$(STORE)')
	$(BIN)/npo-adapter serve $(if $(STORE),--store '$(STORE)') --host $(HOST) --port $(PORT) \
	  $(if $(METRICS_PORT),--metrics-port $(METRICS_PORT))

# The tests' OpenID provider (oidc-provider from npm, exactly as locked in package-lock.json).
OIDC := tests/oidc
$(OIDC)/node_modules/.installed: $(OIDC)/package.json $(OIDC)/package-lock.json
	npm ci --prefix $(OIDC) --no-audit --no-fund --loglevel=error
	touch $@

test: $(VENV)/.installed $(OIDC)/node_modules/.installed
	$(BIN)/ruff check adapter tests bench
	$(BIN)/mypy adapter/rivta adapter/mapping adapter/store
	$(BIN)/python -m pytest

# Benchmarks: figures and ratios against baselines measured in the same run (bench/README.md); exits
# non-zero when a target is missed; each writes bench/results/<name>.json and its chart <name>.png
# (`python -m bench.charts` redraws the charts from the JSON). NPO_BENCH_SCALE=0.1 for a quick run.
bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	status=0; for b in producer_throughput large_answers ingest_rate fanout intake; do \
	  $(BIN)/python -m bench.$$b || status=1; done; exit $$status

# The official suite's load profiles at full length (10 threads 180 s, 5 threads 30 min, ramp 10-100).
soak: $(VENV)/.installed
	$(BIN)/python -m bench.soak all

demo-data: $(VENV)/.installed
	$(BIN)/npo-adapter demo generate

clean:
	rm -rf $(VENV) var .pytest_cache $(OIDC)/node_modules
