"""The embedder's thread use: questions on one torch thread, documents on torch's own default."""

from __future__ import annotations

import numpy as np
import torch

import rag.embed
from rag.embed import Embedder


def test_question_on_one_thread_then_documents_back_on_the_default(embedder: Embedder) -> None:
    embedder.encode_documents(["The ferry left Skye at dawn."])
    default = torch.get_num_threads()
    assert default == rag.embed._default_threads
    query = embedder.encode_query("When did the ferry leave?")
    assert torch.get_num_threads() == 1
    # another instance, loaded after a question set the count to one, still encodes documents on the default
    other = Embedder(embedder.model_name, embedder.batch_size)
    docs = other.encode_documents(["The ferry left Skye at dawn.", "Rain closed the harbour."])
    assert torch.get_num_threads() == default
    # the thread count changes speed, never the vectors
    np.testing.assert_allclose(other.encode_query("When did the ferry leave?"), query, atol=1e-5)
    assert docs.shape == (2, embedder.dimension) and np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-5)
