"""The rule reader's tuning constants in one frozen, validated config (`ReaderConfig`).

Every threshold the rule reader (rag.answer.extractive), its span finder (rag.answer.spans) and the follow-up
gate (rag.answer.question, rag.pipeline) use lives here, so `rag eval` can report the exact values behind a
figure and a sweep can vary one without editing code. `ReaderConfig()` is the shipped default; values were
chosen on the development sets under tests/data/questions/*_dev.jsonl (never on the held-out ones).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

FOLLOWUP_GATES = ("rules", "index", "always")


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """Thresholds of the rule reader. Shares and similarities are in [0, 1]; bonuses are added to a score."""

    # The answer gate: dense similarity plus term coverage of the best sentence must reach this.
    min_support: float = 0.85
    # A name, place or date is taken only from a sentence whose own words cover this share of the question's
    # weighted terms: a neighbour that borrows them lacks the answer, a near-miss question misses some.
    min_typed_coverage: float = 0.4
    min_coverage: float = 0.5  # supporting quotes must cover about this share of the question's weighted terms
    coverage_slack: float = 0.8  # ... times this factor
    min_dense: float = 0.3  # below this cosine a sentence is about something else whatever words it shares
    dense_tie: float = 0.05  # a figure in a sentence this close in meaning to the answer's is the same claim
    dense_floor: float = 0.5  # ... when that sentence is at least this close to the question
    near_best: float = 0.88  # other sentences within this share of the best score may support or contradict it
    relevant: float = 0.65  # a typed answer may come from a sentence this close to the best one
    typed_pool: int = 12  # how many of the best sentences are searched for a typed span
    typed_bonus: float = 0.25  # a span of the preferred entity label
    beside_bonus: float = 0.3  # "the Kursk region" for "which region": the question's own noun names the span
    governed_bonus: float = 0.15  # the figure governed by the question's own noun/verb ("12 drones", "shot down 12")
    followup_share: float = 0.8  # a follow-up is judged this much on its own words, the rest on the earlier turn
    same_quantity_ratio: float = 1.5  # two figures within this ratio may be the same claim told differently
    duplicate_overlap: float = 0.8  # word overlap (Jaccard) above which two sentences are one syndicated copy
    # The follow-up gate: "rules" trusts question reading alone; "index" reads a doubtful question both ways and
    # keeps the history reading only when it raises the best sentence's support by `followup_margin`; "always"
    # does so for every question asked with history.
    followup_gate: str = "index"
    followup_margin: float = 0.1
    # The same margin for the learned reader, whose confidence is a probability (rag.answer.learned): chosen by
    # a sweep on the dev conversations (tests/data/questions/chat_dev_*.jsonl --as-chat: 0, 0.05 and 0.1 tie,
    # 0.2 loses a bundled turn; docs/eval.md), the middle of the tie.
    learned_followup_margin: float = 0.05
    # How much a question word says about what is asked, by part of speech (other parts: `pos_other`).
    pos_weights: tuple[tuple[str, float], ...] = (
        ("PROPN", 1.0), ("NOUN", 1.0), ("NUM", 1.0), ("ADJ", 0.7), ("VERB", 0.5), ("ADV", 0.4), ("PRON", 0.0),
    )
    pos_other: float = 0.4

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "followup_gate":
                if value not in FOLLOWUP_GATES:
                    raise ValueError(f"followup_gate must be one of {', '.join(FOLLOWUP_GATES)}, got {value!r}")
            elif field.name == "typed_pool":
                if not isinstance(value, int) or value < 1:
                    raise ValueError(f"typed_pool must be a positive whole number, got {value!r}")
            elif field.name == "pos_weights":
                if not all(isinstance(w, int | float) and 0 <= w <= 1 for _, w in value):
                    raise ValueError(f"pos_weights must map parts of speech to weights in [0, 1], got {value!r}")
            elif field.name in ("same_quantity_ratio",):
                if not isinstance(value, int | float) or value < 1:
                    raise ValueError(f"{field.name} must be a number >= 1, got {value!r}")
            elif field.name in ("min_support",):
                if not isinstance(value, int | float) or not 0 <= value <= 2:
                    raise ValueError(f"{field.name} must be a number in [0, 2] (dense + coverage), got {value!r}")
            elif not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ValueError(f"{field.name} must be a number in [0, 1], got {value!r}")

    def pos_weight(self, pos: str) -> float:
        return dict(self.pos_weights).get(pos, self.pos_other)

    def replace(self, **changes: Any) -> ReaderConfig:
        """A copy with `changes` applied (validated again); unknown names raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown reader setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["pos_weights"] = dict(self.pos_weights)
        return data
