"""Quality gates on a run: the bars a system must clear for a CI job to pass.

``--fail-under METRIC=VALUE`` compares the system's mean with ``VALUE`` in the
metric's declared direction (``clinsum.evaluators.metrics``): a higher-is-better
metric fails below the bar, a lower-is-better one fails above it, so
``--fail-under concept_recall=0.7`` and ``--fail-under unsupported_concepts=0.5``
both read "at least this good". A metric with no declared direction cannot be
gated (which way is bad would be a guess). ``--max-critical-flips N`` fails a
system whose summaries hold more than ``N`` critical flips in all (a negated
finding reported present, or the reverse).

A gate that cannot be checked fails: a system with no value of the gated metric
(no summary scored on it, every summary failed) has not shown that it clears
the bar, and a run with no system at all clears no gate. In TOML::

    [gates]
    fail_under = { concept_recall = 0.7, unsupported_concepts = 0.5 }
    max_critical_flips = 0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clinsum.config import GatesConfig
from clinsum.errors import ConfigError
from clinsum.evaluators.metrics import describe
from clinsum.records import Score

if TYPE_CHECKING:
    from clinsum.store import Store

CRITICAL_FLIPS = "critical_flips"
NO_SYSTEM = "(no system)"
"""Who misses the gates of a run with no summary: the run, whose gates nothing cleared."""


@dataclass(frozen=True)
class Failure:
    """One system that missed one gate."""

    system: str
    gate: str
    """The gate as text: ``concept_recall >= 0.7``, ``critical_flips total <= 0``."""
    value: float | None
    """The system's mean (or total, for critical flips); None when it has no value."""

    def __str__(self) -> str:
        got = "no value" if self.value is None else f"{self.value:.4g}"
        return f"{self.system}: {self.gate} not met ({got})"


def parse_fail_under(items: Sequence[str]) -> dict[str, float]:
    """``["concept_recall=0.7", ...]`` -> ``{"concept_recall": 0.7}``, checked against the declarations."""
    bars: dict[str, float] = {}
    for text in items:
        name, sep, raw = text.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not sep or not name.strip() or not math.isfinite(value):
            raise ConfigError(f"--fail-under {text!r}: expected METRIC=NUMBER, e.g. concept_recall=0.7")
        bars[name.strip()] = value
    return bars


def merged(config: GatesConfig, fail_under: Sequence[str] | None, max_critical_flips: int | None) -> GatesConfig:
    """The config's gates with the command-line ones added (a flag replaces the same metric's bar)."""
    bars = {**config.fail_under, **parse_fail_under(fail_under or [])}
    flips = max_critical_flips if max_critical_flips is not None else config.max_critical_flips
    gates = GatesConfig(fail_under=bars, max_critical_flips=flips)
    check_declared(gates)
    return gates


def check_declared(gates: GatesConfig) -> None:
    for name in gates.fail_under:
        metric = describe(name)
        if metric is None or metric.direction == "neutral":
            why = "is not a declared metric" if metric is None else "has no better direction"
            raise ConfigError(f"gate on {name!r}: {name} {why}, so 'fail under' has no meaning "
                              "(see docs/metrics.md for the declared metrics and their directions)")


def _label(name: str, bar: float) -> str:
    metric = describe(name)
    operator = ">=" if metric is None or metric.direction != "lower" else "<="
    return f"{name} {operator} {bar:g}"


def failures(scores: Iterable[Score], systems: Iterable[str], gates: GatesConfig) -> list[Failure]:
    """Every (system, gate) the systems miss, in system order; empty when all pass."""
    values: dict[tuple[str, str], dict[str, float]] = {}
    for score in scores:
        if score.value is not None and math.isfinite(score.value):
            values.setdefault((score.system, score.metric), {})[score.note_id] = score.value
    found = []
    systems = sorted(set(systems))
    if not systems:  # nothing was scored: no gate is shown to be cleared
        found += [Failure(NO_SYSTEM, _label(name, bar), None) for name, bar in gates.fail_under.items()]
        if gates.max_critical_flips is not None:
            found.append(Failure(NO_SYSTEM, f"{CRITICAL_FLIPS} total <= {gates.max_critical_flips}", None))
    for system in systems:
        for name, bar in gates.fail_under.items():
            by_note = values.get((system, name), {})
            mean = sum(by_note.values()) / len(by_note) if by_note else None
            metric = describe(name)
            lower_better = metric is not None and metric.direction == "lower"
            if mean is None or (mean > bar if lower_better else mean < bar):
                found.append(Failure(system, _label(name, bar), mean))
        if gates.max_critical_flips is not None:
            flips = values.get((system, CRITICAL_FLIPS))
            total = sum(flips.values()) if flips else None
            if total is None or total > gates.max_critical_flips:
                found.append(Failure(system, f"{CRITICAL_FLIPS} total <= {gates.max_critical_flips}", total))
    return found


def any_gate(gates: GatesConfig) -> bool:
    return bool(gates.fail_under) or gates.max_critical_flips is not None


def check_run(store: Store, run_id: str, gates: GatesConfig) -> list[Failure]:
    """The gate failures of a stored run (every system that has a summary in it)."""
    if not any_gate(gates):
        return []
    return failures(store.scores(run_id, details=False), store.run(run_id)["systems"], gates)
