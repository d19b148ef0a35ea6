"""What each metric means: its direction, kind, scale and display order.

Every evaluator declares the metrics it emits, beside its code, as a tuple of
``Metric`` named ``METRICS`` in its module (the judge derives its own from the
rubric). The leaderboard, the reports and the monitor read direction, kind and
order from here, never from a list of names of their own.

``describe(name)`` finds the declaration of any emitted metric name, including
the per-judge names of a jury (``judge_accurate@ollama:qwen2.5:7b`` is described
as ``judge_accurate``). A name no evaluator declares gets ``None``: callers
treat it as having no direction (never ranked better or worse, never alerting).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from functools import cache
from typing import Literal

Direction = Literal["higher", "lower", "neutral"]
"""Which way is better: ``neutral`` for descriptive metrics (summary length)."""
Kind = Literal["continuous", "ordinal", "count", "rate"]
"""``rate`` is a per-summary 0/1 outcome (failed, has a critical flip): its mean is a proportion."""


@dataclass(frozen=True)
class Metric:
    """The declared meaning of one metric."""

    name: str
    direction: Direction
    kind: Kind
    low: float | None = None
    """Smallest possible value, when bounded."""
    high: float | None = None
    """Largest possible value, when bounded."""
    order: int = 1000
    """Display order: lower comes first in tables and reports."""
    description: str = ""
    unit: str = ""

    @property
    def scale(self) -> str:
        """The range as text: ``0–1``, ``1–5``, ``≥ 0``."""
        if self.low is not None and self.high is not None:
            return f"{self.low:g}–{self.high:g}"
        if self.low is not None:
            return f"≥ {self.low:g}"
        return "any"

    def is_worse(self, change: float) -> bool:
        """True when ``change`` (new minus old) goes the bad way; False for neutral metrics."""
        if math.isnan(change) or change == 0 or self.direction == "neutral":
            return False
        return change < 0 if self.direction == "higher" else change > 0

    def better_first(self) -> bool:
        """Whether ranking by this metric sorts descending (higher first)."""
        return self.direction != "lower"


DECLARING_MODULES = (
    "clinsum.evaluators.generation",
    "clinsum.evaluators.overlap",
    "clinsum.evaluators.coverage",
    "clinsum.evaluators.facts",
    "clinsum.evaluators.judge.metrics",
)
"""Modules whose ``METRICS`` tuple declares the built-in metrics (light imports only)."""


@cache
def catalog() -> dict[str, Metric]:
    """Every declared metric by name, in display order."""
    declared: dict[str, Metric] = {}
    for module_name in DECLARING_MODULES:
        module = importlib.import_module(module_name)
        for metric in module.METRICS:
            if metric.name in declared:
                raise RuntimeError(f"metric '{metric.name}' is declared twice ({module_name})")
            declared[metric.name] = metric
    return dict(sorted(declared.items(), key=lambda item: (item[1].order, item[0])))


def base_name(name: str) -> str:
    """``judge_accurate@ollama:qwen2.5:7b`` -> ``judge_accurate``."""
    return name.partition("@")[0]


def describe(name: str) -> Metric | None:
    """The declaration of an emitted metric name, or None when no evaluator declares it.

    An attribute of a user's own rubric (``judge_<attribute>`` not in the packaged
    rubric) is described as the rubric format defines attributes: ordinal 1–5,
    higher is better.
    """
    base = base_name(name)
    metric = catalog().get(base)
    if metric is None and base.startswith("judge_") and not base.endswith("_error"):
        from clinsum.evaluators.judge.metrics import attribute_metric

        metric = attribute_metric(base.removeprefix("judge_"), order=19)
    return metric


def direction(name: str) -> Direction:
    metric = describe(name)
    return metric.direction if metric is not None else "neutral"


def display_key(name: str) -> tuple[int, str]:
    """Sort key that puts metrics in their declared order, undeclared ones last by name."""
    metric = describe(name)
    return (metric.order if metric is not None else 10_000, name)
