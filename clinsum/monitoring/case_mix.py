"""Case mix: do the two windows summarize the same kind of notes?

A window of longer notes, or of more cardiology than family medicine, can score
worse with no change in the model. The inputs are compared field by field:

- categorical fields of the note and summary metadata (``note_type``,
  ``specialty``, ``site``... whichever are configured and present): share of each
  value per window, chi-square test of homogeneity;
- numeric inputs: note length in words and concepts per note (when coverage
  ran): means, Mann-Whitney test.

``strata`` turns the fields that shifted into segments (note length into
tertiles), so that the monitor can recompute a metric's change within segments
(``significance.stratified_bootstrap``): a change that disappears there is the
mix's, not the model's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from clinsum.monitoring.windows import Observation

NOTE_LENGTH = "note_length"
"""The pseudo-field of note length tertiles (short / medium / long)."""


@dataclass(frozen=True)
class MixComparison:
    field: str
    test: str
    p_value: float
    baseline: dict[str, Any]
    """Shares of each value (categorical) or mean and n (numeric)."""
    current: dict[str, Any]
    shifted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(baseline: Sequence[Observation], current: Sequence[Observation], fields: Sequence[str],
            *, alpha: float) -> list[MixComparison]:
    """One comparison per categorical field present in either window, plus note length and concepts."""
    from scipy import stats

    out: list[MixComparison] = []
    for name in fields:
        a = [_category(o, name) for o in baseline]
        b = [_category(o, name) for o in current]
        if all(v is None for v in a + b):
            continue
        levels = sorted({str(v) for v in a + b})
        counts_a, counts_b = Counter(map(str, a)), Counter(map(str, b))
        table = np.array([[counts_a[v] for v in levels], [counts_b[v] for v in levels]])
        p = 1.0 if len(levels) < 2 else float(stats.chi2_contingency(table).pvalue)
        out.append(MixComparison(name, "chi-square", p, _shares(counts_a, len(a)), _shares(counts_b, len(b)),
                                 p < alpha))
    numeric: list[tuple[str, list[float], list[float]]] = [
        ("note_words", [o.note_words for o in baseline], [o.note_words for o in current]),
        ("source_concepts", [o.source_concepts for o in baseline if o.source_concepts is not None],
         [o.source_concepts for o in current if o.source_concepts is not None]),
    ]
    for name, xs, ys in numeric:
        if len(xs) < 2 or len(ys) < 2:
            continue
        p = 1.0 if len(set(xs) | set(ys)) < 2 else float(stats.mannwhitneyu(ys, xs).pvalue)
        out.append(MixComparison(name, "mann-whitney", p, _numeric(xs), _numeric(ys), p < alpha))
    return out


def strata(baseline: Sequence[Observation], current: Sequence[Observation],
           fields: Sequence[str]) -> tuple[list[str], list[str]]:
    """Each observation's stratum label over ``fields`` (``note_words`` becomes length tertiles)."""
    words = [o.note_words for o in [*baseline, *current]]
    cuts = np.percentile(words, [100 / 3, 200 / 3]) if words else np.array([0, 0])

    def label(o: Observation) -> str:
        parts = []
        for name in fields:
            if name in (NOTE_LENGTH, "note_words"):
                parts.append(("short", "medium", "long")[int(np.searchsorted(cuts, o.note_words, side="right"))])
            elif name != "source_concepts":
                parts.append(f"{name}={_category(o, name)}")
        return "|".join(parts) or "all"

    return [label(o) for o in baseline], [label(o) for o in current]


def _category(o: Observation, name: str) -> str | None:
    value = o.fields.get(name)
    return None if value is None else str(value)


def _shares(counts: Counter[str], total: int) -> dict[str, Any]:
    return {value: round(count / total, 4) for value, count in sorted(counts.items())} if total else {}


def _numeric(values: Sequence[float]) -> dict[str, Any]:
    return {"n": len(values), "mean": round(float(np.mean(values)), 3),
            "median": float(np.median(values))}
