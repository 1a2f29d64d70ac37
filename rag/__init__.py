"""A question-answering assistant over news articles that answers with verbatim, cited quotes."""

__version__ = "0.1.0"
