"""``clinsum monitor --anchors``: judge drift told apart from model drift.

In every monitor run given anchors, the fixed (note, summary) anchors are judged
afresh (never from the response cache), the judging is stored
(``Store.add_anchor_judging``) and compared with the reference judging: the
first stored judging of the same anchor set (same content hash) by the same
judge spec (same rubric, prompt, specs, samples, temperature), or the one
``--anchor-reference ID`` names. The first time there is no reference: this
judging becomes it, and nothing is tested. When the judge drifted, a
``judge-drift`` alert joins the report (exit 1) and the window's alerts on judge
metrics are excused: the anchors show the judge moved, so those changes are not
blamed on the summarizer. A judge that fails on any anchor is an error (exit 2)
and nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clinsum.cli.common import console, run_interruptible, shown, stdout

if TYPE_CHECKING:
    from clinsum.monitoring.alerts import Comparison, MonitorSettings
    from clinsum.monitoring.anchors import JudgeDrift
    from clinsum.records import AnchorJudging
    from clinsum.store import Store

AnchorsOption = Annotated[Path | None, typer.Option(
    "--anchors", metavar="FILE", help="Anchors JSONL (id, note, summary), judged afresh now to tell judge drift "
                                      "from model drift (exit 1 on judge drift).")]
AnchorJudgeOption = Annotated[list[str] | None, typer.Option(
    "--judge", metavar="SPEC", help="Judge of the anchors, as `clinsum run --judge` (repeat for a jury); "
                                    "default the config's 'monitor' judge, else its 'judge' table's judges.")]
AnchorReferenceOption = Annotated[int | None, typer.Option(
    "--anchor-reference", metavar="ID", help="Compare the anchors with this stored judging "
                                             "(default: the first of the same anchors by the same judge).")]

DRIFT_METRIC = "judge-drift"


@dataclass
class AnchorCheck:
    """What this monitor run learned about the judge."""

    anchors: str
    judging: AnchorJudging
    """This run's judging, as stored (with its id)."""
    reference: AnchorJudging | None
    """The judging compared with; None when this one became the reference."""
    drift: JudgeDrift | None
    cost_usd: float | None
    excused: list[str] = field(default_factory=list)
    """``metric (segment)`` of the window alerts the drift excused."""

    @property
    def drifted(self) -> bool:
        return self.drift is not None and self.drift.drifted

    @property
    def message(self) -> str:
        if self.reference is None:
            return (f"anchors judged for the first time by {self.judging.judge_version}: stored as the reference "
                    f"(judging {self.judging.id}); judge drift is tested from the next run on")
        assert self.drift is not None
        note = ""
        if self.reference.judge_version != self.judging.judge_version:
            note = f" (the reference was judged by {self.reference.judge_version}: the shift includes that change)"
        return f"{self.drift.message}; compared with judging {self.reference.id} of {self.reference.judged_at}{note}"

    def as_dict(self) -> dict[str, Any]:
        judging = self.judging.model_dump(exclude={"values", "schema_version"})
        return {
            "anchors": self.anchors, "judging": judging,
            "reference": None if self.reference is None else self.reference.model_dump(
                exclude={"values", "schema_version"}),
            "first": self.reference is None, "drifted": self.drifted, "cost_usd": self.cost_usd,
            "drift": None if self.drift is None else _finite(self.drift.as_dict()),
            "excused": self.excused, "message": self.message,
        }

    def alert(self) -> dict[str, Any] | None:
        """The ``judge-drift`` alert, in the fields of the window alerts (those of the metric that moved most)."""
        if self.drift is None or not self.drift.drifted:
            return None
        moved = [m for m in self.drift.metrics if m.drifted]
        worst = max(moved, key=lambda m: abs(m.shift or 0.0))
        return _finite({
            "metric": DRIFT_METRIC, "segment": "anchors", "baseline_mean": worst.reference_mean,
            "current_mean": worst.current_mean, "difference": worst.shift, "ci": list(worst.ci),
            "p_value": worst.p_value, "p_adjusted": worst.p_adjusted, "test": "wilcoxon signed-rank, Holm",
            "kind": DRIFT_METRIC, "min_effect": self.drift.min_shift, "explanation": self.drift.message,
            "judge_metrics": [{"metric": m.metric, "n": m.n, "reference_mean": m.reference_mean,
                               "current_mean": m.current_mean, "shift": m.shift, "ci": list(m.ci),
                               "p_value": m.p_value, "p_adjusted": m.p_adjusted, "drifted": m.drifted}
                              for m in self.drift.metrics],
        })


def check_judge_drift(comparison: Comparison, store: Store, settings: MonitorSettings,
                      config_file: Path | None, *, reference_id: int | None) -> AnchorCheck | None:
    """Judge the anchors, store the judging, compare it with the reference; excuse judge alerts on drift.

    None when the monitor was given no anchors.
    """
    from clinsum.errors import ConfigError

    if settings.anchors is None:
        if settings.judge or reference_id is not None:
            raise ConfigError("--judge and --anchor-reference ([monitor] judge) are for the anchors: give "
                              "--anchors FILE too")
        return None
    from clinsum.config import RunConfig, apply_flags, load_config
    from clinsum.monitoring.anchors import (
        anchor_judge,
        anchors_hash,
        compare_with_reference,
        excuse_judge_alerts,
        judge_every_anchor,
        load_anchors,
    )
    from clinsum.records import AnchorJudging
    from clinsum.store import now

    anchors = load_anchors(settings.anchors)
    config = load_config(config_file) if config_file is not None else RunConfig()
    if settings.judge:
        config = apply_flags(config, judges=settings.judge)
    judge: Any = anchor_judge(config)  # a JudgeEvaluator: version, rubric, providers
    digest = anchors_hash(anchors)
    reference = _reference(store, digest, judge.version, reference_id)
    judged = run_interruptible(judge_every_anchor(anchors, judge))
    drift = None
    if reference is not None:
        drift = compare_with_reference(reference.values, judged.values, alpha=settings.alpha,
                                       min_shift=settings.anchor_min_shift, seed=settings.seed)
    judging = AnchorJudging(judged_at=now(), anchors_hash=digest, n_anchors=len(anchors),
                            judge_version=judge.version, judges=[p.spec for p in judge.providers],
                            models=judged.models, rubric=judge.rubric.version,
                            reference_id=None if reference is None else reference.id,
                            drifted=None if drift is None else drift.drifted, values=judged.values)
    judging = judging.model_copy(update={"id": store.add_anchor_judging(judging)})
    check = AnchorCheck(str(settings.anchors), judging, reference, drift, judged.cost_usd)
    if drift is not None:
        check.excused = [f"{c.metric} ({c.segment})" for c in excuse_judge_alerts(comparison.checks, drift)]
    return check


def _reference(store: Store, digest: str, judge_version: str, reference_id: int | None) -> AnchorJudging | None:
    from clinsum.errors import ConfigError

    if reference_id is not None:
        chosen = store.anchor_judging(reference_id)
        if chosen.anchors_hash != digest:
            raise ConfigError(f"--anchor-reference {reference_id} judged another anchor set (hash "
                              f"{chosen.anchors_hash[:12]}, these anchors {digest[:12]}): drift is read on "
                              "unchanged anchors only")
        return chosen
    earlier = store.anchor_judgings(digest, judge_version)
    return store.anchor_judging(earlier[0].id) if earlier and earlier[0].id is not None else None


def add_to_report(report: dict[str, Any], check: AnchorCheck | None) -> None:
    """The judge's part of the monitor report: ``judge_drift``, and the ``judge-drift`` alert when it moved."""
    if check is None:
        return
    report["judge_drift"] = check.as_dict()
    alert = check.alert()
    if alert is not None:
        report["alerts"].append(alert)


def print_judge_drift(part: dict[str, Any] | None) -> None:
    """The table view of the report's ``judge_drift``: the verdict, each judge metric's shift, what was excused."""
    if part is None:
        return
    from rich.console import Console
    from rich.table import Table

    out = stdout if stdout.is_terminal else Console(width=200)
    drift = part["drift"]
    colour = "red" if part["drifted"] else "green" if drift is not None else "yellow"
    out.print(f"[{colour}]judge on the anchors:[/{colour}] {shown(part['message'])}", highlight=False)
    if drift is not None:
        table = Table(title=f"judge drift on {drift['n_anchors']} anchors (judging {part['judging']['id']})")
        columns = ("metric", "n", "reference_mean", "current_mean", "shift", "ci", "p_value", "p_adjusted", "drifted")
        for column in columns:
            table.add_column(column)
        for m in drift["metrics"]:
            table.add_row(shown(m["metric"]), str(m["n"]), _number(m["reference_mean"]), _number(m["current_mean"]),
                          _number(m["shift"]), f"[{_number(m['ci'][0])}, {_number(m['ci'][1])}]",
                          _number(m["p_value"]), _number(m["p_adjusted"]), "yes" if m["drifted"] else "no")
        out.print(table)
    for excused in part["excused"]:
        out.print(f"excused: {shown(excused)}: judge drifted on the anchors, not blamed on the summarizer",
                  highlight=False)
    if part["drifted"]:
        console.print("[red]judge drift on the anchors[/red]: judge-score changes of this window that go the "
                      "way the judge moved are not blamed on the summarizer")


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _finite(data: Any) -> Any:
    """NaN is not JSON: None instead; tuples as lists."""
    import math

    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data
