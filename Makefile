# `make chat` installs everything and starts the assistant on the bundled articles; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= app,dev,llm

.PHONY: install chat test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The CPU build of torch first: a plain `torch` requirement would pull several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

chat: install
	$(BIN)/rag chat

test: install
	$(BIN)/ruff check rag app tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check rag app tests

clean:
	rm -rf $(VENV) index
