"""The citation guard on hand-written answers: a pure function, so no model is needed here.

`guard` requires a verified quote in every kept sentence by default (what the llm reader uses); `loose` is the
guard without that rule, where unquoted sentences are judged by their markers and words."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answer.guard import guard
from rag.types import Chunk, Passage

ARTICLE_A = (
    "Officials spoke on Monday. Ryder said that approximately 30 soldiers were killed in the attack. "
    "The troops are  fighting in the Kursk region, close to the border."
)
ARTICLE_B = "Kim Jong-un met the envoy in Pyongyang on Tuesday. He praised the “brave” troops at a ceremony."
ARTICLES = {"a": ARTICLE_A, "b": ARTICLE_B}


def passage(article_id: str, start_sentence: int, rank: int) -> Passage:
    """A chunk of whole sentences from `start_sentence` on, with offsets that reproduce the article text."""
    text = ARTICLES[article_id]
    spans = [(m.start(), m.end()) for m in re.finditer(r"[^.]+\.", text)]
    spans = [(s + (len(text[s:e]) - len(text[s:e].lstrip())), e) for s, e in spans][start_sentence:]
    start, end = spans[0][0], spans[-1][1]
    return Passage(Chunk(f"{article_id}:{start}", article_id, text[start:end], start, end, tuple(spans)), article_id.upper(), 1.0, rank)


PASSAGES = [passage("a", 1, 1), passage("b", 0, 2)]


def loose(text: str, passages) -> object:
    return guard(text, passages, require_quote=False)


def assert_consistent(result) -> None:
    """Quotes are verbatim at their offsets and every marker in the text names one of them."""
    numbers = {q.n for q in result.quotes}
    for q in result.quotes:
        assert ARTICLES[q.article_id][q.start : q.end] == q.text
    for marker in re.findall(r"\[(\d+)\]", result.text):
        assert int(marker) in numbers


def test_a_marker_that_points_nowhere_is_removed() -> None:
    result = loose("Kim met the envoy in Pyongyang [2][7]. About 30 soldiers were killed [0].", PASSAGES)
    assert "[7]" not in result.text and "[0]" not in result.text
    assert result.report["markers_checked"] == 3
    assert result.report["markers_removed"] == 2
    assert [q.article_id for q in result.quotes] == ["b"]
    assert_consistent(result)


def test_an_exact_quote_is_kept_with_its_offsets() -> None:
    result = guard('Ryder said "approximately 30 soldiers were killed" [1].', PASSAGES)
    assert result.report["quotes_verbatim"] == 1
    (quote,) = result.quotes
    assert quote.text == "approximately 30 soldiers were killed"
    assert '"approximately 30 soldiers were killed" [1]' in result.text or "killed\" [1]" in result.text
    assert_consistent(result)


def test_whitespace_and_quote_style_are_forgiven_but_the_article_text_is_returned() -> None:
    result = guard('They are "fighting in the Kursk region" [1]. He praised the "brave" troops [2].', PASSAGES)
    assert result.report["quotes_verbatim"] == 2 and result.report["quotes_repaired"] == 0
    assert "fighting in the Kursk region" in {q.text for q in result.quotes}
    assert_consistent(result)


def test_a_near_miss_quote_is_repaired_to_the_real_span() -> None:
    result = guard('Ryder said "about 30 soldier were killed in the attack" [1].', PASSAGES)
    assert result.report["quotes_repaired"] == 1 and result.report["quotes_removed"] == 0
    (quote,) = result.quotes
    assert quote.text == "approximately 30 soldiers were killed in the attack"
    assert quote.text in result.text and "about 30 soldier " not in result.text
    assert_consistent(result)


def test_an_invented_quote_is_removed_with_its_sentence() -> None:
    result = loose('Ryder said "the moon is made of green cheese" [1]. The troops fight in the Kursk region [1].', PASSAGES)
    assert result.report["quotes_removed"] == 1 and result.report["sentences_removed"] == 1
    assert "cheese" not in result.text and "Kursk" in result.text
    assert any("cheese" in flag for flag in result.flags)
    assert_consistent(result)


def test_a_quote_cited_to_the_wrong_passage_is_re_cited() -> None:
    result = guard('Kim Jong-un "met the envoy in Pyongyang" [1].', PASSAGES)
    assert result.report["markers_repaired"] == 1
    (quote,) = result.quotes
    assert quote.article_id == "b"
    assert_consistent(result)


def test_an_uncited_unsupported_sentence_is_flagged() -> None:
    result = loose("The troops fight in the Kursk region [1]. Bananas grow on distant planets.", PASSAGES)
    assert result.report["sentences_flagged"] == 1
    assert any("Bananas" in flag for flag in result.flags)
    assert not result.failed


def test_a_citation_of_an_unrelated_passage_is_removed() -> None:
    result = loose("Bananas grow on distant planets [2].", PASSAGES)
    assert result.report["markers_removed"] == 1
    assert result.failed  # nothing verifiable is left: the caller falls back to the extractive answer


def test_a_sentence_without_verbatim_support_is_removed() -> None:
    result = guard('The troops won the war near Kursk [1]. Ryder said "approximately 30 soldiers were killed" [1].', PASSAGES)
    assert result.report["sentences_removed"] == 1 and "war" not in result.text
    assert [q.text for q in result.quotes] == ["approximately 30 soldiers were killed"]
    assert any("supports word for word" in flag for flag in result.flags)
    assert guard("The troops won the war near Kursk [1].", PASSAGES).failed  # no claim has verbatim support


def test_an_unquoted_sentence_is_kept_with_the_passage_sentence_that_supports_it_cited_where_found() -> None:
    result = guard("The troops are fighting in the Kursk region [2].", PASSAGES)
    (quote,) = result.quotes
    assert quote.text == "The troops are  fighting in the Kursk region, close to the border." and quote.article_id == "a"
    assert result.text == "The troops are fighting in the Kursk region [1]."
    assert_consistent(result)
    # a figure the supporting sentence does not hold is not supported
    assert guard("About 50 troops are fighting in the Kursk region [1].", PASSAGES).failed


def test_a_marker_alone_is_no_answer() -> None:
    result = guard("North Korean troops are winning the war everywhere.\n[1]", PASSAGES)
    assert result.failed and "[1]" not in result.text


def test_the_marker_comes_from_where_the_quote_is_found() -> None:
    """The model cites [2] and [1]; the quote is in passage 1 only, so the sentence cites passage 1's quote alone."""
    result = guard('Ryder said "approximately 30 soldiers were killed" [2][1].', PASSAGES)
    (quote,) = result.quotes
    assert quote.article_id == "a" and result.text.endswith("[1].") and "[2]" not in result.text
    assert result.report["markers_removed"] == 1
    assert_consistent(result)


def test_a_figure_outside_the_quote_that_the_passage_lacks_removes_the_sentence() -> None:
    result = guard('About 50 troops died: "soldiers were killed in the attack" [1]. '
                   'He praised the "brave" troops [2].', PASSAGES)
    assert "50" not in result.text and "brave" in result.text
    assert any("figure" in flag and "50" in flag for flag in result.flags)
    kept = guard('About 30 died: "soldiers were killed in the attack" [1].', PASSAGES)
    assert "30" in kept.text and not kept.failed


def test_an_answer_without_citations_fails_the_guard() -> None:
    assert guard("The articles do not say.", PASSAGES).failed
    assert guard("", PASSAGES).failed


def test_a_full_stop_inside_a_quote_does_not_split_the_sentence() -> None:
    result = guard("He said “Kim Jong-un met the envoy in Pyongyang on Tuesday.” [2] That was all.", PASSAGES)
    assert result.report["quotes_verbatim"] == 1
    assert result.text.startswith("He said “Kim Jong-un met the envoy in Pyongyang on Tuesday.” [1]")
    assert_consistent(result)


FRAGMENTS = [
    "The troops fight in the Kursk region", '"approximately 30 soldiers were killed"', '"about 30 soldier were killed"',
    '"the envoy in  Pyongyang"', '"moon cheese invented"', "Kim met the envoy", "[1]", "[2]", "[3]", "[0]", "[1, 2]",
    ".", ". ", "\n", "“brave”", "Bananas", " ",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14))
@pytest.mark.parametrize("check", [guard, loose])
def test_any_answer_yields_verbatim_quotes_and_valid_markers(check, parts: list[str]) -> None:
    result = check(" ".join(parts), PASSAGES)
    assert_consistent(result)
    report = result.report
    assert report["quotes_verbatim"] + report["quotes_repaired"] + report["quotes_removed"] == report["quotes_checked"]


# ---------------------------------------------------------------- streaming: sentences are final once settled

STREAM_FRAGMENTS = [
    *FRAGMENTS, '"', "“", "”", "«", "»", "[", "]", "[x", "!", "?", "...", "e.g.", "3.5", 'he said "Kim met him.', '"',
    "“Kim Jong-un met the envoy in Pyongyang on Tuesday.”", "[2] That", "\n\n", ")", "’",
]


def _stream_prefixes(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {len(text)})
    return [text[:p] for p in points]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(STREAM_FRAGMENTS), max_size=16), st.lists(st.integers(0, 400), max_size=12), st.booleans())
def test_settled_sentences_never_change_as_the_text_grows(parts: list[str], cuts: list[int], spaced: bool) -> None:
    """Whatever arrives later, the sentences before `settled_end` are the whole text's first sentences, and the
    guard's result for them is the start of its result for the whole text."""
    from rag.answer.guard import _sentences, settled_end

    full = (" " if spaced else "").join(parts)
    whole = _sentences(full)
    final = guard(full, PASSAGES)
    shown = ""
    for prefix in _stream_prefixes(full, cuts):
        end = settled_end(prefix)
        settled = _sentences(prefix[:end])
        assert settled == whole[: len(settled)], (prefix, end)
        partial = guard(prefix[:end], PASSAGES)
        assert final.text.startswith(partial.text)
        assert final.quotes[: len(partial.quotes)] == partial.quotes
        assert partial.text.startswith(shown)  # what was shown is never taken back
        shown = partial.text


def test_a_sentence_is_settled_once_the_next_one_begins() -> None:
    from rag.answer.guard import settled_end

    assert settled_end("Kim met the envoy [2].") == 0
    assert settled_end("Kim met the envoy [2]. ") == 0  # a marker may still follow the full stop
    assert settled_end("Kim met the envoy. [2") == 0
    text = "Kim met the envoy [2]. He"
    assert text[: settled_end(text)].strip() == "Kim met the envoy [2]."
    quoted = 'He said "Kim met him. He'  # a full stop inside a quotation that is still open
    assert settled_end(quoted) == 0
    assert settled_end(quoted + ' left" [2]. Then') == len(quoted + ' left" [2]. ')
