"""Detection power of ``clinsum monitor`` on planted changes, and its false-alarm rate.

The population is the fixture pool of ``clinsum.monitoring.simulate`` (252
production summaries: 52 ACI-Bench visit notes summarized by
``extractive:centroid``, 200 MTS-Dialog section summaries by four systems), each
scored with coverage, length and, where a reference exists, ROUGE. For each
window size, baseline and current windows are drawn from the pool; the current
window carries a planted change:

- truncation: every summary of the window loses its last ``f`` of words;
  the smallest ``f`` (of 0.05, 0.1, 0.2, 0.3, 0.5, 0.7) that the monitor
  detects (any degradation alert) in at least 80% of draws;
- flipped negations: a share ``s`` of the window's summaries has one negated
  finding reversed ("denies chest pain" -> "reports chest pain"); drawn from the
  visit notes, where a summary states negated findings (the MTS section summaries
  rarely do). The smallest ``s`` (of 0.025 ... 0.5) detected (an alert on a status
  metric: critical_flips, has_critical_flip, assertion_flips) in at least 80%.

- truncation on a fixed set of notes: the same notes in both windows (a canary
  set re-summarized every day), compared paired (Wilcoxon, exact McNemar). The
  unchanged summaries are the same in both windows, as from a deterministic
  pipeline: a summarizer that words things differently each day adds noise this
  column does not have (and a same-notes false-alarm rate would be trivially 0, so
  none is printed).

The false-alarm rate is the share of same-distribution splits (no change
planted) that raise any alert, with the monitor's default settings (Holm, alpha
0.05, default minimum effects) over the whole pool; the last column is the same
with every minimum effect set to 0 (significance alone), to show what the
minimum effects add.

    .venv/bin/python benchmarks/monitor_power.py            # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/monitor_power.py --seeds 20 --null-seeds 50   # quick look
    .venv/bin/python benchmarks/monitor_power.py \
        --metrics concept_recall,critical_flips,has_critical_flip,failed,empty_summary   # a narrower family
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from clinsum.monitoring import simulate as sim
from clinsum.monitoring.alerts import MonitorSettings, compare_windows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SIZES = (20, 40, 100, 400)
TRUNCATIONS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
FLIP_SHARES = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5)
STATUS = {"critical_flips", "has_critical_flip", "assertion_flips"}


def power(pool: list[sim.PoolItem], size: int, seeds: int, settings: MonitorSettings, *,
          variant: str, share: float, metrics: set[str] | None = None, same_notes: bool = False) -> float:
    hits = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        if same_notes:
            baseline, current = sim.draw_same_notes(pool, size, rng, variant=variant, share=share)
        else:
            baseline = sim.draw_window(pool, size, rng, label="b")
            current = sim.draw_window(pool, size, rng, label="c", variant=variant, share=share)
        comparison = compare_windows(baseline, current, settings)
        alerted = {a.metric for a in comparison.alerts}
        hits += bool(alerted if metrics is None else alerted & metrics)
    return hits / seeds


def false_alarm_rate(pool: list[sim.PoolItem], size: int, seeds: int, settings: MonitorSettings) -> float:
    alarms = 0
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        baseline, current = sim.draw_window(pool, size, rng, label="b"), sim.draw_window(pool, size, rng, label="c")
        alarms += bool(compare_windows(baseline, current, settings).alerts)
    return alarms / seeds


def smallest(levels: tuple[float, ...], detect: Callable[[float], float]) -> tuple[str, str]:
    """The smallest level detected with at least 80% power, and the power at it (or at the largest)."""
    measured = 0.0
    for level in levels:
        measured = detect(level)
        if measured >= 0.8:
            return f"{level:g}", f"{measured:.2f}"
    return f"> {levels[-1]:g}", f"{measured:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="draws per cell for power")
    parser.add_argument("--null-seeds", type=int, default=200, help="same-distribution splits per size")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per test")
    parser.add_argument("--metrics", help="comma-separated metrics to test (the monitor's `metrics` setting); "
                                          "default every metric with a direction")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    settings = MonitorSettings(n_resamples=args.resamples, metrics=chosen)

    started = time.perf_counter()
    variants: dict[str, sim.Variant] = {"flip": sim.flip_negated_finding}
    for fraction in TRUNCATIONS:
        variants[f"truncate:{fraction}"] = partial(lambda text, source, f: sim.truncate(text, f), f=fraction)
    pool = sim.score_pool(sim.fixture_sources(FIXTURES), variants)
    visit_notes = [item for item in pool if item.fields["note_type"] == "visit_note"]
    flippable = sum("flip" in item.values for item in visit_notes)
    print(f"pool: {len(pool)} summaries ({len(visit_notes)} visit notes, {flippable} of them with a negated "
          f"finding to flip), scored in {time.perf_counter() - started:.0f} s; "
          f"{args.seeds} draws per power cell, {args.null_seeds} splits per false-alarm cell\n")

    print("| window | smallest truncation detected (power) | smallest share of flipped negations (power) "
          "| false-alarm rate | false-alarm rate, no minimum effect | same notes: smallest truncation (power) |")
    print("|---|---|---|---|---|---|")
    metrics = {name for item in pool for values in item.values.values() for name in values}
    significance_only = MonitorSettings(n_resamples=args.resamples, metrics=chosen,
                                        min_effect=dict.fromkeys(metrics, 0.0))
    for size in SIZES:
        truncation = smallest(TRUNCATIONS, lambda f, n=size: power(pool, n, args.seeds, settings,
                                                                   variant=f"truncate:{f}", share=1.0))
        flips = smallest(FLIP_SHARES, lambda s, n=size: power(visit_notes, n, args.seeds, settings, variant="flip",
                                                              share=s, metrics=STATUS))
        alarms = false_alarm_rate(pool, size, args.null_seeds, settings)
        bare = false_alarm_rate(pool, size, args.null_seeds, significance_only)
        paired = smallest(TRUNCATIONS, lambda f, n=size: power(pool, n, args.seeds, settings, same_notes=True,
                                                               variant=f"truncate:{f}", share=1.0))
        print(f"| {size} | {truncation[0]} ({truncation[1]}) | {flips[0]} ({flips[1]}) | {alarms:.3f} "
              f"| {bare:.3f} | {paired[0]} ({paired[1]}) |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
