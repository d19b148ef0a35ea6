"""Text overlap with a reference summary (ROUGE), and summary length.

ROUGE is computed exactly as the ``rouge-score`` package computes it at its
defaults (no stemming, its own tokenizer), which is what reproduces the
published ACI-Bench table: ``rouge1`` and ``rouge2`` F-measure from the package
itself, and ``rougeLsum`` over newline-split sentences. For ``rougeLsum`` the
package fills one pure-Python LCS table per pair of sentences, which takes
seconds for a long summary; ``summary_level_lcs`` below is the same algorithm
(same table, same back-tracking, same double-count guard) with the tables
filled by numpy, a row at a time for all candidate sentences at once. The tests
check it against the package's own function.

Values are on a 0-1 scale (the published tables print them x100).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from clinsum.evaluators.base import score
from clinsum.evaluators.metrics import Metric
from clinsum.records import Note, Score, Summary

ROUGE_METRICS = ("rouge1", "rouge2", "rougeLsum")
METRICS = (
    Metric("rouge1", "higher", "continuous", 0, 1, 100, "ROUGE-1 F-measure against the reference"),
    Metric("rouge2", "higher", "continuous", 0, 1, 110, "ROUGE-2 F-measure against the reference"),
    Metric("rougeLsum", "higher", "continuous", 0, 1, 120,
           "ROUGE-L over newline-split sentences, F-measure against the reference"),
    Metric("summary_words", "neutral", "count", 0, None, 150, "words in the summary"),
    Metric("compression_ratio", "neutral", "continuous", 0, None, 160, "summary words / source words"),
)


def _rouge_score_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rouge-score")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Overlap:
    """Precision, recall and F-measure of one ROUGE variant."""

    precision: float
    recall: float
    fmeasure: float


def _f(hits: int, n_reference: int, n_candidate: int) -> Overlap:
    if not hits:
        return Overlap(0.0, 0.0, 0.0)
    precision, recall = hits / n_candidate, hits / n_reference
    return Overlap(precision, recall, 2 * precision * recall / (precision + recall))


@cache
def _package_scorer() -> Any:
    """rouge-score's own scorer for the n-gram metrics (imported late: it pulls in nltk)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=False)


def _tokenize(text: str) -> list[str]:
    from rouge_score import tokenize

    tokens: list[str] = tokenize.tokenize(text, None)
    return tokens


def _sentences(text: str) -> list[str]:
    """rouge-score's sentence split for rougeLsum: on newlines, dropping empty strings."""
    return [line for line in text.split("\n") if line]


def summary_level_lcs(reference: Sequence[Sequence[str]], candidate: Sequence[Sequence[str]]) -> Overlap:
    """Summary-level LCS (ROUGE paper section 3.2) as rouge-score 0.1.2 computes it.

    ``reference`` and ``candidate`` are lists of tokenized sentences. For each
    reference sentence, one LCS with every candidate sentence is read out of the
    DP table by rouge-score's back-tracking rule; the union of the reference
    positions they cover counts as hits, each token at most as often as it
    occurs in both texts.
    """
    m = sum(map(len, reference))
    n = sum(map(len, candidate))
    if not reference or not candidate or not m or not n:
        return Overlap(0.0, 0.0, 0.0)

    ids: dict[str, int] = {}
    cand_ids = [[ids.setdefault(t, len(ids)) for t in sent] for sent in candidate]
    # All candidate sentences side by side, each after a sentinel column (-1, never
    # a token) that plays the role of the DP table's column 0 for that sentence.
    starts: list[int] = []
    flat: list[int] = []
    for sent in cand_ids:
        starts.append(len(flat))
        flat.append(-1)
        flat.extend(sent)
    columns = np.asarray(flat, dtype=np.int64)
    sentinels = np.asarray(starts, dtype=np.int64)
    segment = np.cumsum(columns == -1) - 1
    ends = [s + len(sent) for s, sent in zip(starts, cand_ids, strict=True)]

    counts_ref: Counter[str] = Counter()
    counts_cand: Counter[str] = Counter()
    for tokens in reference:
        counts_ref.update(tokens)
    for tokens in candidate:
        counts_cand.update(tokens)

    hits = 0
    for tokens in reference:
        ref = [ids.get(t, -2) for t in tokens]
        for position in sorted(_union_positions(ref, columns, flat, sentinels, segment, starts, ends)):
            token = tokens[position]
            if counts_cand[token] > 0 and counts_ref[token] > 0:
                hits += 1
                counts_cand[token] -= 1
                counts_ref[token] -= 1
    return _f(hits, m, n)


def _union_positions(ref: list[int], columns: np.ndarray, flat: list[int], sentinels: np.ndarray,
                     segment: np.ndarray, starts: list[int], ends: list[int]) -> set[int]:
    """Positions of ``ref`` on one back-tracked LCS with any candidate sentence."""
    a = len(ref)
    if not a:
        return set()
    # Row i of the DP table for every candidate sentence at once:
    #   T[i][j] = max(T[i][j-1], T[i-1][j], T[i-1][j-1] + match) = running max of
    #   c[j] = max(T[i-1][j], T[i-1][j-1] + match), restarted at each sentinel. Adding
    #   segment * (a + 1) (above any LCS length) makes one global running max restart.
    offset = segment * (a + 1)
    table = np.zeros((a + 1, len(flat)), dtype=np.int32)
    for i in range(1, a + 1):
        previous = table[i - 1]
        row = previous.copy()
        row[1:] = np.maximum(previous[1:], previous[:-1] + (columns[1:] == ref[i - 1]))
        row[sentinels] = 0
        table[i] = np.maximum.accumulate(row + offset) - offset
    rows = table.tolist()
    last = rows[a]
    union: set[int] = set()
    for start, end in zip(starts, ends, strict=True):
        if not last[end]:
            continue
        # rouge-score's _backtrack_norec, on this sentence's columns start..end.
        i, j = a, end
        while i > 0 and j > start:
            if ref[i - 1] == flat[j]:
                union.add(i - 1)
                i -= 1
                j -= 1
            elif rows[i][j - 1] > rows[i - 1][j]:
                j -= 1
            else:
                i -= 1
    return union


def rouge(reference: str, candidate: str) -> dict[str, Overlap]:
    """ROUGE-1, ROUGE-2 and ROUGE-Lsum of ``candidate`` against ``reference``."""
    package = _package_scorer().score(reference, candidate)
    values = {name: Overlap(s.precision, s.recall, s.fmeasure) for name, s in package.items()}
    values["rougeLsum"] = summary_level_lcs([_tokenize(s) for s in _sentences(reference)],
                                            [_tokenize(s) for s in _sentences(candidate)])
    return values


class OverlapEvaluator:
    """ROUGE F-measures against the note's reference; nothing when the note has none."""

    name = "overlap"
    version = f"rouge-score-{_rouge_score_version()}/v1"
    """The package's version is part of ours: a new rouge-score may score differently."""

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        if note.reference is None or not note.reference.strip() or not summary.ok:
            return []
        values = await asyncio.to_thread(rouge, note.reference, summary.text)
        return [score(note, summary, self, metric, values[metric].fmeasure,
                      precision=values[metric].precision, recall=values[metric].recall)
                for metric in ROUGE_METRICS]


def word_count(text: str) -> int:
    """Words as whitespace-separated runs: what a reader would count."""
    return len(text.split())


class LengthEvaluator:
    """Summary length in words, and its ratio to the source length."""

    name = "length"
    version = "v1"

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]:
        if not summary.ok:
            return []
        words, source_words = word_count(summary.text), word_count(note.text)
        return [
            score(note, summary, self, "summary_words", float(words)),
            score(note, summary, self, "compression_ratio", words / source_words if source_words else None,
                  source_words=source_words),
        ]


def _refuse_options(kind: str, options: dict[str, Any]) -> None:
    from clinsum.errors import ConfigError

    if options:
        raise ConfigError(f"evaluator '{kind}' takes no options; got {', '.join(sorted(options))}")


def create_overlap(options: dict[str, Any], dispatcher: object = None) -> OverlapEvaluator:
    """Factory for ``overlap`` (takes no options; the dispatcher is unused)."""
    _refuse_options("overlap", options)
    return OverlapEvaluator()


def create_length(options: dict[str, Any], dispatcher: object = None) -> LengthEvaluator:
    """Factory for ``length`` (takes no options; the dispatcher is unused)."""
    _refuse_options("length", options)
    return LengthEvaluator()
