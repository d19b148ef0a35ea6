"""The metrics the judge emits, declared from the packaged rubric.

A run with a rubric of its own may rate other attributes; ``describe`` in
``clinsum.evaluators.metrics`` gives those the generic declaration
``GENERIC_ATTRIBUTE`` (ordinal 1–5, higher is better, the rubric's convention).
"""

from __future__ import annotations

from clinsum.evaluators.judge.rubric import Rubric
from clinsum.evaluators.metrics import Metric


def attribute_metric(name: str, *, higher_is_better: bool = True, order: int = 15, question: str = "") -> Metric:
    return Metric(f"judge_{name}", "higher" if higher_is_better else "lower", "ordinal", 1, 5, order,
                  question or "judge rating of one rubric attribute")


def _declared() -> tuple[Metric, ...]:
    rubric = Rubric.load()
    attributes = tuple(
        attribute_metric(a.name, higher_is_better=a.higher_is_better, order=11 + i, question=a.question)
        for i, a in enumerate(rubric.attributes))
    return (
        Metric("judge_overall", "higher", "continuous", 1, 5, 10,
               "mean of the applicable rubric attributes, each oriented higher-is-better"),
        *attributes,
        Metric("judge_overall_sd", "lower", "continuous", 0, None, 130,
               "standard deviation of judge_overall across samples (--judge-samples > 1)"),
        Metric("judge_errors_critical", "lower", "count", 0, None, 140,
               "critical errors the judge found whose quotes are in the texts"),
        Metric("judge_cost_usd", "lower", "continuous", 0, None, 200, "what the judge's calls cost", "USD"),
    )


METRICS = _declared()
