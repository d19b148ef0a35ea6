"""Physician feedback over one window of summaries: acceptance, ratings, and how well clinsum's flags
predict the physicians' verdicts.

``window_feedback`` takes the ratings and scores of the summaries in a window (the
monitor selects them) and returns, with percentile-bootstrap 95% intervals over
summaries:

- the acceptance rate: per summary, the share of its reviewers who accepted it
  (the ``accepted`` dimension of a review), averaged over reviewed summaries;
- the mean physician rating per rated dimension (the rubric's attributes);
- how many reviewed summaries named each error category;
- "clinsum flags this summary" against "a physician rejected it or named an
  error": TP/FP/FN/TN, precision, recall, F1 and accuracy
  (``clinsum.evaluators.agreement.flag_statistics``).

Both flags are rule sets, any rule firing sets the flag. clinsum's default:
a critical error found by the judge, a critical flip (a negation or other
status turned around), or concept recall below 0.5. The physicians' default:
``accepted<1`` (any reviewer rejected) or ``errors>=1`` (any reviewer named an
error). A rule whose metric a summary lacks is skipped; a summary with none of
the flag's metrics, or with no verdict, stays out of that table (and is counted).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from clinsum.evaluators import agreement as ag
from clinsum.evaluators.aggregate import bootstrap_ci
from clinsum.feedback import (
    ACCEPTED,
    ERROR_PREFIX,
    ERRORS,
    FlagRule,
    SummaryKey,
    confusion,
    metric_values,
    rated_values,
)
from clinsum.records import Rating, Score

if TYPE_CHECKING:
    from clinsum.monitoring.windows import Window

DEFAULT_SUMMARY_FLAG = ("judge_errors_critical>=1", "critical_flips>=1", "concept_recall<0.5")
DEFAULT_PHYSICIAN_FLAG = (f"{ACCEPTED}<1", f"{ERRORS}>=1")


@dataclass(frozen=True)
class AnyRule:
    """A flag set when any of its rules applies to the values it has."""

    rules: tuple[FlagRule, ...]

    @classmethod
    def parse(cls, texts: Sequence[str]) -> AnyRule:
        if not texts:
            raise ValueError("a flag needs at least one rule (NAME>=NUMBER)")
        return cls(tuple(FlagRule.parse(text) for text in texts))

    def applies(self, values: Mapping[str, float]) -> bool | None:
        """None when ``values`` has none of the rules' names (the flag cannot be told)."""
        known = [rule for rule in self.rules if rule.name in values]
        if not known:
            return None
        return any(rule.applies(values[rule.name]) for rule in known)

    def __str__(self) -> str:
        return " or ".join(str(rule) for rule in self.rules)


def window_feedback(ratings: Iterable[Rating], scores: Iterable[Score | tuple[str, Score]], *,
                    summaries: Iterable[SummaryKey] | None = None,
                    summary_flag: Sequence[str] = DEFAULT_SUMMARY_FLAG,
                    physician_flag: Sequence[str] = DEFAULT_PHYSICIAN_FLAG,
                    n_resamples: int = ag.DEFAULT_RESAMPLES, seed: int = ag.DEFAULT_SEED) -> dict[str, Any]:
    """Feedback statistics of one window; ``summaries`` limits it to those (run, note, system) keys."""
    clinsum_rule, physician_rule = AnyRule.parse(summary_flag), AnyRule.parse(physician_flag)
    by_metric = metric_values(scores)
    scored = {key for values in by_metric.values() for key in values}
    by_dimension = rated_values(ratings, scored)
    window = set(summaries) if summaries is not None else None
    if window is not None:
        by_metric = {m: {k: v for k, v in values.items() if k in window} for m, values in by_metric.items()}
        by_dimension = {d: {k: v for k, v in items.items() if k in window} for d, items in by_dimension.items()}
    reviewed = sorted({key for items in by_dimension.values() for key in items})
    common = {"n_resamples": n_resamples, "seed": seed}
    return {
        "n_scored": len({key for values in by_metric.values() for key in values}),
        "n_reviewed": len(reviewed),
        "acceptance": _mean_of_means(by_dimension.get(ACCEPTED, {}), **common),
        "ratings": {d: _mean_of_means(items, **common) for d, items in sorted(by_dimension.items())
                    if d != ACCEPTED and d != ERRORS and not d.startswith(ERROR_PREFIX)},
        "error_categories": {d.removeprefix(ERROR_PREFIX): len(items) for d, items in sorted(by_dimension.items())
                             if d.startswith(ERROR_PREFIX)},
        "flags": _flag_agreement(by_metric, by_dimension, reviewed, clinsum_rule, physician_rule, common),
    }


def _mean_of_means(items: Mapping[SummaryKey, Mapping[str, float]], *, n_resamples: int,
                   seed: int) -> dict[str, Any]:
    """Mean over summaries of the mean over their raters, with its bootstrap interval."""
    values = [float(np.mean(list(by_rater.values()))) for by_rater in items.values()]
    if not values:
        return {"n": 0, "mean": None, "ci": [None, None]}
    low, high = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    return {"n": len(values), "mean": float(np.mean(values)), "ci": [low, high]}


def _flag_agreement(by_metric: Mapping[str, Mapping[SummaryKey, float]],
                    by_dimension: Mapping[str, Mapping[SummaryKey, Mapping[str, float]]],
                    reviewed: Sequence[SummaryKey], clinsum_rule: AnyRule, physician_rule: AnyRule,
                    common: dict[str, Any]) -> dict[str, Any]:
    predicted, verdicts = [], []
    no_scores = no_verdict = 0
    for key in reviewed:
        flag = clinsum_rule.applies({m: values[key] for m, values in by_metric.items() if key in values})
        verdict = _any_reviewer(physician_rule, {d: items[key] for d, items in by_dimension.items() if key in items})
        if flag is None:
            no_scores += 1
        elif verdict is None:
            no_verdict += 1
        else:
            predicted.append(flag)
            verdicts.append(verdict)
    pred, truth = np.array(predicted, dtype=bool), np.array(verdicts, dtype=bool)
    return {"summary_flag": str(clinsum_rule), "physician_flag": str(physician_rule), "n": int(pred.size),
            "left_out": {"no_flag_metric": no_scores, "no_verdict": no_verdict}, **confusion(pred, truth),
            "statistics": ag.summarize(ag.flag_statistics(pred, truth, **common))}


def _any_reviewer(rule: AnyRule, by_dimension: Mapping[str, Mapping[str, float]]) -> bool | None:
    """The physicians' flag of one summary: set when the rule fires for any one reviewer."""
    by_rater: dict[str, dict[str, float]] = defaultdict(dict)
    for dimension, values in by_dimension.items():
        for rater, value in values.items():
            by_rater[rater][dimension] = value
    verdicts = [rule.applies(values) for values in by_rater.values()]
    told = [v for v in verdicts if v is not None]
    return any(told) if told else None


def physician_values(ratings: Iterable[Rating]) -> dict[SummaryKey, dict[str, float]]:
    """Per reviewed summary, the physician metrics the monitor tests (``windows.physician_metric``).

    ``physician_accepted`` is 1 when every reviewer accepted the summary, 0 when any
    rejected it (a 0/1 rate, tested with Fisher's exact test); ``physician_<dimension>``
    is the reviewers' mean rating, for every dimension whose ratings all lie on the
    rubric's 1-5 scale (a 0/1 judgement such as "unsafe" is not a rating). Ratings
    must name their run (``windows.window_ratings``).
    """
    by_summary: dict[SummaryKey, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        by_summary[(r.run_id or "", r.note_id, r.system)][r.dimension].append(r.value)
    dimensions = {d for values in by_summary.values() for d in values}
    on_scale = {d for d in dimensions if d not in (ACCEPTED, ERRORS) and not d.startswith(ERROR_PREFIX)
                and all(1 <= v <= 5 for values in by_summary.values() for v in values.get(d, []))}
    out: dict[SummaryKey, dict[str, float]] = {}
    for key, values in by_summary.items():
        metrics = {f"physician_{d}": float(np.mean(v)) for d, v in values.items() if d in on_scale}
        if ACCEPTED in values:
            metrics["physician_accepted"] = 1.0 if all(v >= 1 for v in values[ACCEPTED]) else 0.0
        if metrics:
            out[key] = metrics
    return out


def with_physician_values(window: Window, ratings: Iterable[Rating]) -> Window:
    """The window with its reviewed summaries' physician metrics added to their values, so that
    ``compare_windows`` and the trend test physicians' acceptance and ratings like any metric."""
    values = physician_values(ratings)
    observations = tuple(replace(o, values={**o.values, **values[key]})
                         if (key := (o.run_id, o.note_id, o.system)) in values else o
                         for o in window.observations)
    return replace(window, observations=observations)
