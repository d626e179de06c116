# One command to run the gateway, one to run the tests; both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test generate check

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Switchyard needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/switchyard serve

test: $(STAMP)
	$(BIN)/python -m pytest

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

# What CI checks besides the tests: generated/ matches protos/, and buf lint is clean.
check: $(STAMP)
	$(BIN)/python scripts/generate.py --check
	npx --yes @bufbuild/buf lint
