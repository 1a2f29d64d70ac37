"""Fusion of ranked lists: reciprocal rank fusion (Cormack et al. 2009) with a guarantee for each list's first picks.

Its own unit, as Haystack's `DocumentJoiner`: it knows ids and ranks only, nothing about where the lists came
from. llama-index's QueryFusionRetriever does the same RRF over its own node types through asyncio.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Fused:
    """One id of the fused list and its summed reciprocal-rank score."""

    id: str
    score: float


@dataclass(frozen=True, slots=True)
class RankFusion:
    """Reciprocal rank fusion of several ranked id lists (best first), keeping each list's `guaranteed` first ids.

    An id at 0-based rank r of a list scores 1 / (rrf_k + r + 1) from that list; its scores add up. RRF alone
    buries an id that only one list found, however sure that list is, so each list's first `guaranteed` ids
    always survive the cut to `top_k` (the result may then hold more than `top_k` ids). Ties in score are broken
    by `order` (a sort key of an id; by default the id itself), so the result never depends on dict order.
    """

    rrf_k: int = 60  # the constant from the paper; it damps the weight of the very first ranks
    guaranteed: int = 2

    def __post_init__(self) -> None:
        if self.rrf_k < 0:
            raise ValueError(f"rrf_k must not be negative, got {self.rrf_k}")
        if self.guaranteed < 0:
            raise ValueError(f"guaranteed must not be negative, got {self.guaranteed}")

    def fuse(self, rankings: Sequence[Sequence[str]], top_k: int,
             order: Callable[[str], Any] | None = None) -> tuple[Fused, ...]:
        """The fused list, best first: at most max(top_k, number of guaranteed ids) ids."""
        if top_k < 1:
            raise ValueError(f"top_k must be positive, got {top_k}")
        key: Callable[[str], Hashable] = order or (lambda value: value)
        scores: dict[str, float] = {}
        for ranking in rankings:
            for rank, item in enumerate(dict.fromkeys(ranking)):  # an id counts once per list, at its best rank
                scores[item] = scores.get(item, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        ordered = sorted(scores.items(), key=lambda pair: (-pair[1], key(pair[0])))
        keep = {item for ranking in rankings for item in list(dict.fromkeys(ranking))[: self.guaranteed]}
        chosen = [pair for pair in ordered if pair[0] in keep]
        chosen += [pair for pair in ordered if pair[0] not in keep][: max(0, top_k - len(chosen))]
        best = sorted(chosen, key=lambda pair: (-pair[1], key(pair[0])))[: max(top_k, len(keep))]
        return tuple(Fused(item, score) for item, score in best)
