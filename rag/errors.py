"""The errors the library raises. The CLI and the app turn them into one-line messages at the edge."""


class RagError(Exception):
    """Base of every error a user can cause or fix; its message is meant to be shown as it is."""


class SettingsError(RagError):
    """A setting has a bad value; the message names the setting and the value."""


class IngestError(RagError):
    """The articles folder or file cannot be read at all (a single bad file is skipped, not raised)."""


class IndexMissingError(RagError):
    """There is no index where one was expected."""


class IndexMismatchError(RagError):
    """The index on disk was built by another model, chunking or format version."""


class IndexCorruptError(RagError):
    """The index on disk cannot be read."""


class EmbeddingModelError(RagError):
    """The embedding model cannot be loaded."""


class QuestionError(RagError):
    """The question cannot be answered as asked (empty, too long, control characters...)."""


class EvalError(RagError):
    """A question file or an evaluation report cannot be read; the message names the file and the line."""


class LlmError(RagError):
    """The language model cannot be loaded or reached as configured (the answer falls back when it fails later)."""


class PromptError(RagError):
    """A prompt template is missing or names a variable that was not given."""
