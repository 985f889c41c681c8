# The two commands the README gives: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STORE  ?= sqlite:///var/demo.db
HOST   ?= 127.0.0.1
PORT   ?= 8443

.PHONY: run test lint demo-data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	test -f certs/dev/pki.json || $(BIN)/npo-adapter certs init
	$(BIN)/npo-adapter ingest demo-data --store $(STORE)
	$(BIN)/npo-adapter serve --store $(STORE) --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(BIN)/ruff check adapter tests
	$(BIN)/python -m pytest

demo-data: $(VENV)/.installed
	$(BIN)/npo-adapter demo generate

clean:
	rm -rf $(VENV) var .pytest_cache
