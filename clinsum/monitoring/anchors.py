"""Judge drift: re-judge a fixed set of (note, summary) anchors and see whether the judge moved.

The anchors never change, so any change in the judge's scores on them is the
judge's (a new model behind the same name, a provider-side update, a rubric or
prompt edit), not the summarizer's. The monitor judges the anchors in every
window and compares with their reference judging (the first one, or one kept
on purpose): per judge metric, the paired difference current - reference over
the anchors, its bootstrap interval, the Wilcoxon signed-rank p-value, Holm
across the judge's metrics. A metric has drifted when the adjusted p-value is
below ``alpha`` and the mean shift is at least ``min_shift`` (default 0.2 on the
judge's 1-5 scale: smaller shifts are within what repeated judging of the same
text moves by, and too small to change a verdict). ``JudgeDrift.excuses(metric)``
tells the monitor which metrics are the judge's, and ``explains(metric,
difference)`` which judge-score changes of that window not to blame on the
summarizer: those that go the way the judge moved on the anchors.

Anchors file, JSONL, one anchor a line::

    {"id": "anchor-01", "note": "Patient denies chest pain...", "summary": "No chest pain..."}

The anchors must be judged without the response cache (``anchor_judge`` builds
the judge that way): a cached answer would hide exactly the drift looked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clinsum.errors import ClinsumError, InputError
from clinsum.evaluators.aggregate import bootstrap_ci
from clinsum.evaluators.base import Evaluator, evaluation_error
from clinsum.evaluators.comparison import holm, wilcoxon_p
from clinsum.inputs import rows_or_errors
from clinsum.records import Note, Score, Summary

if TYPE_CHECKING:
    from clinsum.monitoring.alerts import Check

ANCHOR_SYSTEM = "anchor"
ANCHOR_FIELDS = ("id", "note", "summary")
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_SHIFT = 0.2
JUDGE_PREFIX = "judge_"
NOT_JUDGEMENTS = ("judge_cost_usd", "judge_overall_sd")
"""Judge metrics that say what judging cost or how samples spread, not what the judge thought."""

AnchorScores = dict[str, dict[str, float]]
"""anchor id -> judge metric -> value."""


@dataclass(frozen=True)
class Anchor:
    note: Note
    summary: Summary


def load_anchors(path: Path | str) -> list[Anchor]:
    """Read an anchors file; any bad line is an ``InputError`` with file, line and field."""
    path = Path(path)
    anchors: list[Anchor] = []
    first_line: dict[str, int] = {}
    for file, line, row in rows_or_errors(path):
        if isinstance(row, InputError):
            raise row
        unknown = [name for name in row if name not in ANCHOR_FIELDS]
        if unknown:
            raise InputError(f"unknown field {unknown[0]!r}; an anchor has {', '.join(ANCHOR_FIELDS)}",
                             path=file, line=line, field=unknown[0])
        for name in ANCHOR_FIELDS:
            value = row.get(name)
            if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
                raise InputError(f"missing or empty {name} (a non-empty string)", path=file, line=line, field=name)
        anchor_id = str(row["id"]).strip()
        if anchor_id in first_line:
            raise InputError(f"duplicate id {anchor_id!r}, first at line {first_line[anchor_id]}",
                             path=file, line=line, field="id")
        first_line[anchor_id] = line
        anchors.append(Anchor(Note(id=anchor_id, text=str(row["note"])),
                              Summary(note_id=anchor_id, system=ANCHOR_SYSTEM, text=str(row["summary"]))))
    if not anchors:
        raise InputError("holds no anchors", path=str(path))
    return anchors


def anchor_judge(config: Any) -> Evaluator:
    """The run config's judge, built to call the judge afresh (no response cache)."""
    from clinsum.dispatch import Dispatcher
    from clinsum.errors import ConfigError
    from clinsum.evaluation import build_evaluators

    if config.judge is None or not config.judge.judges:
        raise ConfigError("judge drift needs a judge: give --judge SPEC or a [judge] table")
    dispatcher = Dispatcher(None, max_attempts=config.max_attempts, concurrency=config.concurrency,
                            use_cache=False)
    (judge,) = build_evaluators(config.model_copy(update={"metrics": ["judge"]}), dispatcher)
    return judge


async def judge_anchors(anchors: Sequence[Anchor], judge: Evaluator) -> AnchorScores:
    """The judge's scores of every anchor (judge metrics only; a failed judging gives no value)."""
    results = await asyncio.gather(*(judge.evaluate(a.note, a.summary) for a in anchors))
    return scores_by_anchor(s for scores in results for s in scores)


class AnchorJudgingError(ClinsumError):
    """The judge failed on an anchor (unreachable, invalid answers): no drift can be read from this judging."""


def anchors_hash(anchors: Sequence[Anchor]) -> str:
    """SHA-256 of the anchors' ids, notes and summaries, in id order: equal hashes, the same anchor set."""
    rows = sorted((a.note.id, a.note.text, a.summary.text) for a in anchors)
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AnchorJudgement:
    """Every anchor judged: the scores, the models that answered, what it cost."""

    values: AnchorScores
    models: dict[str, str | None]
    """Judge spec -> the model(s) its provider reported, comma-joined (None when it did not say)."""
    cost_usd: float | None
    """None when the provider reports no price."""


async def judge_every_anchor(anchors: Sequence[Anchor], judge: Evaluator) -> AnchorJudgement:
    """Judge every anchor; ``AnchorJudgingError`` naming the anchors when any judge failed on any anchor.

    A half-judged anchor set would compare fewer anchors, or a jury without one of
    its judges, with the reference: what moved would not be known, so it is refused.
    """
    results = await asyncio.gather(*(judge.evaluate(a.note, a.summary) for a in anchors))
    failures: list[str] = []
    models: dict[str, set[str | None]] = {}
    costs: list[float] = []
    for anchor, scores in zip(anchors, results, strict=True):
        overall = next((s for s in scores if s.metric == "judge_overall"), None)
        detail = overall.detail if overall is not None else {}
        lost = evaluation_error(scores)  # the project's one rule: a failure, or samples a judge lost
        if overall is None or lost is not None or detail.get("failed_judges"):
            reason = (detail.get("error") or ", ".join(detail.get("failed_judges", [])) or lost
                      or "no judge_overall score")
            failures.append(f"{anchor.note.id}: {reason}")
            continue
        for spec, entry in detail.get("judges", {}).items():
            models.setdefault(spec, set()).add(entry.get("model"))
        costs += [s.value for s in scores if s.metric == "judge_cost_usd" and s.value is not None]
    if failures:
        shown = "; ".join(failures[:3]) + (f" (and {len(failures) - 3} more)" if len(failures) > 3 else "")
        raise AnchorJudgingError(f"the judge failed on {len(failures)} of {len(anchors)} anchors, so judge drift "
                                 f"cannot be measured and nothing was stored: {shown}")
    return AnchorJudgement(
        scores_by_anchor(s for scores in results for s in scores),
        {spec: ", ".join(sorted(m for m in found if m)) or None for spec, found in models.items()},
        float(sum(costs)) if costs else None)


def scores_by_anchor(scores: Iterable[Score]) -> AnchorScores:
    """Stored or fresh judge scores of anchors, as anchor id -> metric -> value."""
    table: AnchorScores = {}
    for s in scores:
        base = s.metric.partition("@")[0]
        if base.startswith(JUDGE_PREFIX) and base not in NOT_JUDGEMENTS and s.value is not None:
            table.setdefault(s.note_id, {})[s.metric] = s.value
    return table


@dataclass(frozen=True)
class MetricDrift:
    metric: str
    n: int
    """Anchors with a value in both judgings."""
    reference_mean: float | None
    current_mean: float | None
    shift: float | None
    """Mean of current - reference over those anchors."""
    ci: tuple[float | None, float | None]
    p_value: float | None
    p_adjusted: float | None
    drifted: bool


@dataclass(frozen=True)
class JudgeDrift:
    """The verdict on the judge for one window."""

    drifted: bool
    n_anchors: int
    metrics: list[MetricDrift] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    min_shift: float = DEFAULT_MIN_SHIFT

    def excuses(self, metric: str) -> bool:
        """Whether a change in ``metric`` this window is the judge's doing, not the summarizer's.

        When any judge metric drifted, every judge metric is suspect (one judge made them all);
        what judging cost (``judge_cost_usd``) is not the judge's opinion and is never excused.
        """
        return self.drifted and metric.startswith(JUDGE_PREFIX) and metric.partition("@")[0] not in NOT_JUDGEMENTS

    def explains(self, metric: str, difference: float) -> bool:
        """Whether the drift explains a window change of ``difference`` in ``metric``: ``excuses(metric)``,
        that metric itself drifted on the anchors, the same way, and by at least as much as the
        window moved (within the far end of the shift's confidence interval).

        A judge turned lenient cannot explain lower scores: a drop of the window's scores
        under a lenient judge is the summarizer's, and larger than it looks. Nor can a judge
        that drifted on another metric, or by less than the window moved, explain the rest:
        those alerts stand, with a note.
        """
        if not self.excuses(metric):
            return False
        drifts = {m.metric: m for m in self.metrics}
        drift = drifts.get(metric, drifts.get(metric.partition("@")[0]))
        if drift is None or not drift.drifted or drift.shift is None or drift.shift * difference <= 0:
            return False
        reach = max(abs(drift.shift), *(abs(bound) for bound in drift.ci if bound is not None))
        return abs(difference) <= reach

    @property
    def message(self) -> str:
        if not self.drifted:
            return f"judge stable on {self.n_anchors} anchors"
        moved = ", ".join(f"{m.metric} {m.shift:+.2f}" for m in self.metrics if m.drifted and m.shift is not None)
        return (f"judge drift on {self.n_anchors} unchanged anchors ({moved}): judge-score changes in this "
                "window are not the summarizer's")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def compare_with_reference(reference: Mapping[str, Mapping[str, float]], current: Mapping[str, Mapping[str, float]],
                           *, alpha: float = DEFAULT_ALPHA, min_shift: float = DEFAULT_MIN_SHIFT,
                           n_resamples: int = 2000, seed: int = 0) -> JudgeDrift:
    """Paired comparison of the current judging of the anchors with their reference judging."""
    shared = sorted(reference.keys() & current.keys())
    if not shared:
        raise InputError("no anchor was judged both in the reference and now: the anchors file changed, "
                         "or the judge failed on every anchor")
    names = sorted({m for a in shared for m in reference[a]} & {m for a in shared for m in current[a]})
    rows = []
    for metric in names:
        paired = [(reference[a][metric], current[a][metric]) for a in shared
                  if metric in reference[a] and metric in current[a]]
        before, after = np.array([p[0] for p in paired]), np.array([p[1] for p in paired])
        differences = after - before
        low, high = bootstrap_ci(differences, n_resamples=n_resamples, seed=seed)
        rows.append(MetricDrift(metric, len(paired), float(before.mean()), float(after.mean()),
                                float(differences.mean()), (low, high), wilcoxon_p(differences.tolist()),
                                None, False))
    adjusted = holm([r.p_value for r in rows])
    rows = [MetricDrift(**{**asdict(r), "ci": r.ci, "p_adjusted": p,
                           "drifted": p is not None and p < alpha and r.shift is not None
                           and abs(r.shift) >= min_shift})
            for r, p in zip(rows, adjusted, strict=True)]
    return JudgeDrift(any(r.drifted for r in rows), len(shared), rows, alpha, min_shift)


EXCUSED = "judge drifted on the anchors: not blamed on the summarizer"
"""The explanation of a check whose alert the judge's drift excuses."""
NOT_EXPLAINED = ("the judge drifted on the anchors, but not this way, not on this metric, or by less than "
                 "this change: the change stands")


def excuse_judge_alerts(checks: Iterable[Check], drift: JudgeDrift) -> list[Check]:
    """Turn the alerts on judge metrics that the judge's drift explains into reported, not failed, checks.

    They stay in the checks with verdict ``judge drift`` and the reason; the
    summarizer is blamed only for what the unchanged anchors do not explain. An
    alert on a judge metric that the drift does not explain (the judge moved the
    other way on the anchors, or not on that metric) stays an alert, with a note.
    Returns the checks excused.
    """
    excused = []
    for check in checks:
        if not (check.alert and drift.excuses(check.metric)):
            continue
        if drift.explains(check.metric, check.difference):
            check.alert, check.verdict = False, "judge drift"
            check.explanation = f"{EXCUSED} ({check.explanation})"
            excused.append(check)
        else:
            check.explanation = f"{check.explanation}; {NOT_EXPLAINED}"
    return excused
