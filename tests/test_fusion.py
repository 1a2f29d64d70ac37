"""Reciprocal rank fusion with the "each list's first picks survive" rule (rag.retrieve.fusion), on hand-made lists."""

from __future__ import annotations

import pytest

from rag.retrieve.fusion import Fused, RankFusion


def ids(fused: tuple[Fused, ...]) -> list[str]:
    return [f.id for f in fused]


def test_one_list_keeps_its_order_and_is_cut_to_top_k() -> None:
    out = RankFusion().fuse([["a", "b", "c", "d"]], top_k=3)
    assert ids(out) == ["a", "b", "c"]
    assert [f.score for f in out] == pytest.approx([1 / 61, 1 / 62, 1 / 63])


def test_an_id_both_lists_found_beats_ids_only_one_found() -> None:
    out = RankFusion().fuse([["a", "b", "c"], ["c", "d", "e"]], top_k=3)
    assert ids(out)[0] == "c"
    assert out[0].score == pytest.approx(1 / 63 + 1 / 61)


def test_each_lists_first_picks_survive_the_cut() -> None:
    dense = list("abcdefghij")
    lexical = ["x", "y", *dense[:8]]  # x and y only lexical: RRF alone ranks every shared id above them
    plain = RankFusion(guaranteed=0).fuse([dense, lexical], top_k=3)
    assert ids(plain) == ["a", "b", "c"]
    kept = RankFusion(guaranteed=2).fuse([dense, lexical], top_k=3)
    assert set(ids(kept)) == {"a", "b", "x", "y"}  # a, b: dense's first two; x, y: lexical's; c lost its place
    assert ids(kept) == sorted(ids(kept), key=lambda i: -dict((f.id, f.score) for f in kept)[i])


def test_guaranteed_ids_fill_the_list_before_others_and_may_exceed_top_k() -> None:
    out = RankFusion(guaranteed=2).fuse([["a", "b"], ["c", "d"], ["e", "f"]], top_k=2)
    assert set(ids(out)) == set("abcdef")


def test_ties_are_broken_by_the_order_key_not_by_list_position() -> None:
    # "q" is first in the second list and "p" first in the first: equal scores
    assert ids(RankFusion().fuse([["q"], ["p"]], top_k=2)) == ["p", "q"]
    assert ids(RankFusion().fuse([["p"], ["q"]], top_k=2, order=lambda i: -ord(i))) == ["q", "p"]


def test_a_repeated_id_counts_once_per_list_at_its_best_rank() -> None:
    out = RankFusion().fuse([["a", "a", "b"]], top_k=2)
    assert [(f.id, round(f.score, 9)) for f in out] == [("a", round(1 / 61, 9)), ("b", round(1 / 62, 9))]


def test_empty_lists_give_nothing() -> None:
    assert RankFusion().fuse([[], []], top_k=5) == ()


@pytest.mark.parametrize(("kwargs", "message"), [({"rrf_k": -1}, "rrf_k .* -1"), ({"guaranteed": -2}, "guaranteed .* -2")])
def test_bad_configuration_names_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RankFusion(**kwargs)


def test_top_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="top_k must be positive, got 0"):
        RankFusion().fuse([["a"]], top_k=0)
