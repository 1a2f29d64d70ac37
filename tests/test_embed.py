"""The encoders: torch's thread use, and the ONNX question encoder giving torch's retrieval without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import rag.embed.sentence
from bench.query_encoder import HARBOUR_QUESTIONS, agreement, sentences_of
from rag.config import PROJECT_ROOT, Settings
from rag.embed import Embedder, OnnxQueryEncoder, encoder_for
from rag.errors import SettingsError
from tests.conftest import BUNDLED, DEV_QUESTIONS, make_settings


def test_question_on_one_thread_then_documents_back_on_the_default(embedder: Embedder) -> None:
    embedder.encode_documents(["The ferry left Skye at dawn."])
    default = torch.get_num_threads()
    assert default == rag.embed.sentence._default_threads
    query = embedder.encode_query("When did the ferry leave?")
    assert torch.get_num_threads() == 1
    # another instance, loaded after a question set the count to one, still encodes documents on the default
    other = Embedder(embedder.model_name, embedder.batch_size)
    docs = other.encode_documents(["The ferry left Skye at dawn.", "Rain closed the harbour."])
    assert torch.get_num_threads() == default
    # the thread count changes speed, never the vectors
    np.testing.assert_allclose(other.encode_query("When did the ferry leave?"), query, atol=1e-5)
    assert docs.shape == (2, embedder.dimension) and np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-5)


@pytest.fixture(scope="module")
def onnx_encoder(embedder: Embedder) -> OnnxQueryEncoder:
    return OnnxQueryEncoder(embedder)


@pytest.mark.parametrize("corpus", ["bundled", "harbour"])
def test_onnx_questions_retrieve_what_torch_questions_retrieve(embedder: Embedder, onnx_encoder: OnnxQueryEncoder,
                                                               corpus: str) -> None:
    """recall@10 of the ONNX question vectors' exact top 10 sentences against torch's, over torch's sentence vectors."""
    if corpus == "bundled":
        folder = BUNDLED
        questions = [json.loads(line)["question"] for line in DEV_QUESTIONS.read_text().splitlines() if line.strip()]
    else:
        folder, questions = PROJECT_ROOT / "tests" / "data" / "harbour", list(HARBOUR_QUESTIONS)
    documents = embedder.encode_documents(sentences_of(folder))
    torch_vectors = np.stack([embedder.encode_query(q) for q in questions])
    onnx_vectors = np.stack([onnx_encoder.encode_query(q) for q in questions])
    found = agreement(documents, torch_vectors, onnx_vectors)
    assert found["recall_at_10"] >= 0.99, found
    assert found["cosine_min"] >= 0.999, found
    assert onnx_vectors.dtype == np.float32 and np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1, atol=1e-5)


def test_onnx_encoder_is_named_for_the_index_model_and_leaves_documents_to_torch(
        embedder: Embedder, onnx_encoder: OnnxQueryEncoder) -> None:
    assert onnx_encoder.name == embedder.name and onnx_encoder.dimension == embedder.dimension
    texts = ["The ferry left Skye at dawn.", "Rain closed the harbour."]
    np.testing.assert_array_equal(onnx_encoder.encode_documents(texts), embedder.encode_documents(texts))
    # a long question is truncated as sentence-transformers truncates it, not rejected
    long = onnx_encoder.encode_query("harbour " * 2000)
    np.testing.assert_allclose(long, embedder.encode_query("harbour " * 2000), atol=1e-4)
    assert onnx_encoder.export.max_abs_diff < 1e-4


def test_query_encoder_setting_picks_the_encoder(tmp_path) -> None:  # noqa: ANN001
    settings = make_settings(tmp_path / "a", tmp_path / "i")
    assert settings.query_encoder == "onnx" and isinstance(encoder_for(settings), OnnxQueryEncoder)
    assert isinstance(encoder_for(settings.replace(query_encoder="torch")), Embedder)
    with pytest.raises(SettingsError, match="query_encoder must be one of onnx, torch, got 'tf'"):
        Settings(query_encoder="tf")


def test_a_question_imports_neither_torch_nor_transformers(bundled_settings: Settings) -> None:
    """A fresh process opens the index, loads spaCy and the encoder and answers: torch is never imported."""
    code = (
        "import sys\n"
        "from rag.config import load_settings\n"
        "from rag.pipeline import Assistant\n"
        f"settings = load_settings(config_file=None, environ={{}}, articles_dir={str(bundled_settings.articles_dir)!r}, "
        f"index_dir={str(bundled_settings.index_dir)!r}, auto_build=False, answer_mode='extractive')\n"
        "answer = Assistant.from_settings(settings).ask('Who is the leader of North Korea?')\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(repr(answer.text), heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("[]"), out.stdout
    assert "Kim Jong" in out.stdout


def test_spacy_fast_load_tokenizes_and_tags_as_the_stored_pipeline() -> None:
    """The fast load (tokenizer from the language's rules, not re-read from disk) is the stored pipeline's."""
    from rag.embed.heavy import SPACY_EXCLUDE, import_spacy_model, load_spacy_pipeline

    fast, stored = load_spacy_pipeline(), import_spacy_model().load(exclude=list(SPACY_EXCLUDE))
    assert fast.pipe_names == stored.pipe_names == ["tok2vec", "tagger", "attribute_ruler", "ner"]
    assert fast.tokenizer.to_bytes() == stored.tokenizer.to_bytes()
    text = "Maj Gen Pat Ryder said approximately 30 soldiers, incl. U.S.-trained units, reached Kursk at 5 a.m."
    a, b = fast(text), stored(text)
    assert [(t.text, t.pos_) for t in a] == [(t.text, t.pos_) for t in b]
    assert [(e.text, e.label_) for e in a.ents] == [(e.text, e.label_) for e in b.ents]
