"""Physician feedback against clinsum's scores: agreement, joined on the summary rated.

``agreement_report`` joins ratings (read by ``clinsum.ratings``) with the scores of
the summaries they rate, in named steps: ``metric_values`` and ``rated_values``
key both sides by summary (run, note, system), ``mean_over_raters`` makes one
human value per summary, then one row per (dimension, metric), the automatic
flags against a human flag, and the raters against each other. The statistics
are in ``clinsum.evaluators.agreement``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from clinsum.errors import InputError
from clinsum.evaluators import agreement as ag
from clinsum.ratings import (
    ACCEPTED,
    ERROR_PREFIX,
    ERRORS,
    RATING_FIELDS,
    REVIEW_FIELDS,
    SummaryKey,
    load_ratings,
    tie_to_summaries,
)
from clinsum.records import Rating, Score

__all__ = ["ACCEPTED", "ERRORS", "ERROR_PREFIX", "RATING_FIELDS", "REVIEW_FIELDS", "FlagRule", "SummaryKey",
           "agreement_report", "confusion", "load_ratings", "mean_over_raters", "metric_values",
           "rated_values", "tie_to_summaries"]

# -- agreement of scores with the ratings ---------------------------------------------------------

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b,
}


@dataclass(frozen=True)
class FlagRule:
    """A binary flag made from a number: ``unsupported_concepts>=1``, ``HallucinationRate>0``."""

    name: str
    operator: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> FlagRule:
        for operator in sorted(_OPERATORS, key=len, reverse=True):  # ">=" before ">"
            name, found, threshold = text.partition(operator)
            if found:
                try:
                    value = float(threshold)
                except ValueError:
                    break
                if name.strip() and math.isfinite(value):
                    return cls(name.strip(), operator, value)
                break
        raise ValueError(f"expected NAME>=NUMBER (or >, <=, <, ==), got {text!r}")

    def applies(self, value: float) -> bool:
        return _OPERATORS[self.operator](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{self.threshold:g}"


def agreement_report(ratings: Iterable[Rating], scores: Iterable[Score | tuple[str, Score]], *,
                     metrics: Sequence[str] | None = None, dimensions: Sequence[str] | None = None,
                     flags: Sequence[FlagRule] = (), human_flag: FlagRule | None = None,
                     same_scale: Iterable[tuple[str, str]] = (),
                     n_resamples: int = ag.DEFAULT_RESAMPLES, seed: int = ag.DEFAULT_SEED
                     ) -> dict[str, Any]:
    """Agreement of every scored metric with every rated dimension, on the summaries both cover.

    ``scores`` are ``(run_id, score)`` pairs (``Store.scores_by_run``); a bare ``Score``
    counts as run ``""``. A rating joins the scores of the summary it rates: its run,
    note and system. A rating tied to no run (imported before ratings named their
    run) joins the one run whose scores have its note and system; several such runs
    is an ``InputError``, never a guess.

    A summary rated by several raters counts once, with the mean of their values;
    ``mean_difference`` is metric minus human. Rank correlations apply to any pair.
    The statistics that compare values (ICC, mean difference, limits of agreement,
    kappa) apply only where the two measure the same thing on the same scale: both
    on the 1-5 rating scale (a judge attribute against physicians' 1-5 ratings), both
    binary, or a (metric, dimension) pair the caller declares in ``same_scale``
    (a concept recall against a human fact recall, both proportions). Two proportions
    are not assumed comparable: ROUGE-1 and a fact precision are both in 0..1 and
    measure different things. The kappa needs the 1-5 scale. Raises ``InputError``
    when no rating joins any score.
    """
    ratings = list(ratings)
    if flags and human_flag is None:
        raise InputError("automatic flags need a human flag to compare with (--human-flag DIMENSION>=X)")
    by_metric = metric_values(scores)
    by_dimension = rated_values(ratings, {key for values in by_metric.values() for key in values})
    human = mean_over_raters(by_dimension)
    common = {"n_resamples": n_resamples, "seed": seed}
    compared = sorted(d for d in human if dimensions is None or d in dimensions)
    chosen = sorted(m for m in by_metric if metrics is None or m in metrics)
    rows = _metric_rows(human, by_metric, compared, chosen, set(same_scale), common)
    if not rows:
        rated = {key for d in compared for key in human[d]}
        raise InputError(_nothing_joins(rated, {key for values in by_metric.values() for key in values}))
    return {"n_ratings": len(ratings), "resamples": n_resamples, "seed": seed,
            "metric_vs_human": rows,
            "inter_rater": _inter_rater({d: by_dimension[d] for d in compared}, **common),
            "flags": _flag_rows(human, by_metric, flags, human_flag, common) if human_flag else []}


def metric_values(scores: Iterable[Score | tuple[str, Score]]) -> dict[str, dict[SummaryKey, float]]:
    """metric -> summary -> value, finite values only (a later score of a summary wins)."""
    by_metric: dict[str, dict[SummaryKey, float]] = defaultdict(dict)
    for item in scores:
        run_id, score = item if isinstance(item, tuple) else ("", item)
        if score.value is not None and math.isfinite(score.value):
            by_metric[score.metric][(run_id, score.note_id, score.system)] = score.value
    return by_metric


def rated_values(ratings: Iterable[Rating], scored: Iterable[SummaryKey]
                 ) -> dict[str, dict[SummaryKey, dict[str, float]]]:
    """dimension -> summary -> rater -> value, every rating on the summary it rates.

    A rating without a run takes the only run among ``scored`` that has its note and
    system; it never overrides the same rater's rating tied to that run.
    """
    runs_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for run_id, note_id, system in scored:
        runs_of[(note_id, system)].add(run_id)
    by_dimension: dict[str, dict[SummaryKey, dict[str, float]]] = defaultdict(dict)
    untied = []
    for r in ratings:
        if r.run_id:
            by_dimension[r.dimension].setdefault((r.run_id, r.note_id, r.system), {})[r.rater] = r.value
        else:
            untied.append(r)
    ambiguous: dict[tuple[str, str], set[str]] = {}
    for r in untied:
        runs = runs_of.get((r.note_id, r.system), set())
        if len(runs) > 1:
            ambiguous[(r.note_id, r.system)] = runs
            continue
        key = (next(iter(runs), ""), r.note_id, r.system)
        by_dimension[r.dimension].setdefault(key, {}).setdefault(r.rater, r.value)
    if ambiguous:
        (note_id, system), runs = min(ambiguous.items())
        raise InputError(
            f"{len(ambiguous)} rated summaries have ratings tied to no run while several runs scored "
            f"them (note {note_id!r} by system {system!r}: runs {', '.join(sorted(runs))}); re-import "
            "the ratings with --run RUN_ID (or a run_id column), or give `clinsum agreement --run RUN_ID`")
    return by_dimension


def mean_over_raters(by_dimension: Mapping[str, Mapping[SummaryKey, Mapping[str, float]]]
                     ) -> dict[str, dict[SummaryKey, float]]:
    """dimension -> summary -> mean of its raters' values."""
    return {d: {key: float(np.mean(list(v.values()))) for key, v in items.items()}
            for d, items in by_dimension.items()}


def _metric_rows(human: dict[str, dict[SummaryKey, float]], by_metric: dict[str, dict[SummaryKey, float]],
                 dimensions: Sequence[str], metrics: Sequence[str], declared: set[tuple[str, str]],
                 common: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (dimension, metric) pair that share summaries, with the statistics that apply."""
    rows = []
    for dimension in dimensions:
        for metric in metrics:
            keys = [k for k in human[dimension] if k in by_metric[metric]]
            if not keys:
                continue
            x = np.array([by_metric[metric][k] for k in keys])
            y = np.array([human[dimension][k] for k in keys])
            scales = ag.infer_scale(x), ag.infer_scale(y)
            rating_scale = scales[0] == scales[1] and scales[0] in ("1-5", "0/1")
            same = rating_scale or (metric, dimension) in declared
            stats = ag.paired_statistics(x, y, same_scale=same,
                                         kappa_scale=ag.LIKERT if same and scales == ("1-5", "1-5") else None,
                                         **common)
            rows.append({"dimension": dimension, "metric": metric, "n": len(keys),
                         "scale_metric": scales[0], "scale_human": scales[1], "same_scale": same,
                         "statistics": ag.summarize(stats)})
    return rows


def _flag_rows(human: dict[str, dict[SummaryKey, float]], by_metric: dict[str, dict[SummaryKey, float]],
               flags: Sequence[FlagRule], human_flag: FlagRule, common: dict[str, Any]) -> list[dict[str, Any]]:
    """Each automatic flag against the human flag: the confusion counts and their statistics."""
    if human_flag.name not in human:
        raise InputError(f"no ratings on dimension {human_flag.name!r} for --human-flag; "
                         f"rated dimensions: {', '.join(sorted(human)) or 'none'}")
    truth_by_key = {k: human_flag.applies(v) for k, v in human[human_flag.name].items()}
    rows = []
    for rule in flags:
        keys = [k for k in truth_by_key if k in by_metric.get(rule.name, {})]
        if not keys:
            raise InputError(f"no score of metric {rule.name!r} joins the ratings of "
                             f"{human_flag.name!r}; scored metrics: {', '.join(sorted(by_metric))}")
        pred = np.array([rule.applies(by_metric[rule.name][k]) for k in keys])
        truth = np.array([truth_by_key[k] for k in keys])
        rows.append({"flag": str(rule), "human_flag": str(human_flag), "n": len(keys),
                     **confusion(pred, truth),
                     "statistics": ag.summarize(ag.flag_statistics(pred, truth, **common))})
    return rows


def confusion(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """TP, FP, FN, TN of a boolean prediction against a boolean truth."""
    return {"tp": int((pred & truth).sum()), "fp": int((pred & ~truth).sum()),
            "fn": int((~pred & truth).sum()), "tn": int((~pred & ~truth).sum())}


def _inter_rater(by_dimension: dict[str, dict[SummaryKey, dict[str, float]]],
                 **common: Any) -> list[dict[str, Any]]:
    """Agreement between raters of the same summaries: each pair, then ICC across all raters."""
    rows: list[dict[str, Any]] = []
    for dimension in sorted(by_dimension):
        items = by_dimension[dimension]
        raters = sorted({rater for values in items.values() for rater in values})
        for a, b in combinations(raters, 2):
            keys = [k for k, values in items.items() if a in values and b in values]
            if not keys:
                continue
            x = np.array([items[k][a] for k in keys])
            y = np.array([items[k][b] for k in keys])
            scale = ag.infer_scale(np.concatenate([x, y]))
            stats = ag.paired_statistics(x, y, same_scale=True,
                                         kappa_scale=ag.LIKERT if scale == "1-5" else None, **common)
            rows.append({"dimension": dimension, "raters": [a, b], "n": len(keys),
                         "statistics": ag.summarize(stats)})
        complete = [k for k, values in items.items() if all(r in values for r in raters)]
        if len(raters) > 2 and complete:
            table = np.array([[items[k][r] for r in raters] for k in complete])
            rows.append({"dimension": dimension, "raters": raters, "n": len(complete),
                         "statistics": ag.summarize(ag.rater_table_statistics(table, **common))})
    return rows


def _nothing_joins(rated: set[SummaryKey], scored: set[SummaryKey]) -> str:
    if not rated:
        return "no ratings to compare (import some with `clinsum feedback import FILE`)"
    if not scored:
        return "no scores to compare with the ratings (score summaries with `clinsum score` or `clinsum run`)"
    rated_systems = sorted({system for _, _, system in rated})
    scored_systems = sorted({system for _, _, system in scored})
    return (f"no rating joins a score of the summary it rates (run, note_id, system): {len(rated)} rated "
            f"summaries (systems {', '.join(rated_systems[:5])}), {len(scored)} scored summaries "
            f"(systems {', '.join(scored_systems[:5])})")
