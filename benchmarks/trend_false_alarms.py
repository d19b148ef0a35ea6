"""False-alarm rate of the trend chart (clinsum.monitoring.trend) on same-distribution data.

Simulated production: 40 summaries a day, a 7-day reference, 30 monitored days;
concept recall ~ Normal(0.6, 0.15), a 0/1 failure with probability 0.1, critical
flips ~ Poisson(0.1) per summary. Prints the share of monitored windows that
alert, per metric, against the nominal one-sided rate 1 - Phi(L); then the same
without the arcsine-root / root scales for rates and counts.

    .venv/bin/python benchmarks/trend_false_alarms.py
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import NormalDist

import numpy as np

import clinsum.monitoring.trend as trend_module
from clinsum.monitoring.trend import Observation

PER_DAY, REFERENCE, MONITORED = 40, 7, 30
METRICS = ("concept_recall", "failed", "critical_flips")


def production(seed: int) -> list[Observation]:
    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 5)
    return [Observation(start + timedelta(days=day, minutes=7 * i), {
        "concept_recall": float(rng.normal(0.6, 0.15)),
        "failed": float(rng.random() < 0.1),
        "critical_flips": float(rng.poisson(0.1)),
    }) for day in range(REFERENCE + MONITORED) for i in range(PER_DAY)]


def rates(limit: float, seeds: int) -> dict[str, float]:
    counts = dict.fromkeys(METRICS, 0)
    for seed in range(seeds):
        report = trend_module.trend(production(1000 + seed), reference_windows=REFERENCE, limit=limit)
        for alert in report["alerts"]:
            counts[alert["metric"]] += 1
    return {m: round(c / (seeds * MONITORED), 5) for m, c in counts.items()}


def main() -> None:
    for limit, seeds in ((2.0, 100), (3.0, 200)):
        nominal = 1 - NormalDist().cdf(limit)
        print(f"L={limit:g}  nominal {nominal:.5f}  seeds {seeds}  measured {rates(limit, seeds)}")
    trend_module._scale_of = lambda metric, values, mu: trend_module._Scale("continuous")  # type: ignore[assignment]
    print(f"without the rate/count scales, L=2  measured {rates(2.0, 100)}")


if __name__ == "__main__":
    main()
