"""Compare a current window with a baseline window; decide which changes are alerts.

Every metric (and, with ``by``, every segment) gets one check: both means, the
difference (current minus baseline) with a bootstrap interval, and the test that
suits the metric's kind, paired when the same notes are in both windows
(``significance``), one-sided toward the metric's bad direction (two-sided for a
metric without one). An improvement is reported when the 95% interval of the
difference lies wholly on the good side of zero. All p-values of one comparison are adjusted together (Holm
by default, Benjamini-Hochberg on request). A check alerts when all three hold:

1. its adjusted p-value is below ``alpha``;
2. the change goes the bad way (the metric's declared direction);
3. the change is at least the metric's minimum effect (``min_effect``).

An alert on the whole window whose change disappears once the windows are
compared within segments of the inputs that shifted (``case_mix``) is reported
as a mix shift, not as a degradation, and does not fail the command.

Default minimum effects (``default_min_effect``): zero for the safety signals
(critical and assertion flips, the judge's critical errors: any significant
increase matters); 0.02 for rates (two summaries in a hundred); 2% of the range
for other bounded metrics (0.02 of concept recall or ROUGE, 0.08 on a 1-5
rating); 10% of the baseline mean for unbounded ones (latency, cost). They are
overridden per metric in the ``[monitor.min_effect]`` table of the config file.

Physicians' feedback enters as metrics of the window
(``feedback.with_physician_values``): ``physician_accepted`` (a rate) and
``physician_<attribute>`` (ordinal 1-5). They are tested like the others, but only
when both windows have ``min_reviewed`` reviewed summaries; otherwise they are
listed under ``skipped`` with the counts, as is any metric with a direction that only
one window has.

A metric named in ``metrics`` (``--metrics``) that cannot be tested on the whole
windows is a ``WindowError``, never a skipped line beside "no degradation".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinsum.config import describe_validation
from clinsum.errors import ConfigError
from clinsum.evaluators.metrics import Metric, display_key
from clinsum.monitoring import case_mix, significance
from clinsum.monitoring.feedback import DEFAULT_PHYSICIAN_FLAG, DEFAULT_SUMMARY_FLAG, AnyRule
from clinsum.monitoring.trend import DEFAULT_L, DEFAULT_LAMBDA, DEFAULT_REFERENCE_WINDOWS
from clinsum.monitoring.windows import PHYSICIAN_PREFIX, Observation, Window, WindowError, metric_info

SAFETY_METRICS = frozenset({"critical_flips", "assertion_flips", "has_critical_flip", "judge_errors_critical"})
"""Metrics for which any significant increase alerts (minimum effect 0)."""


class MonitorSettings(BaseModel):
    """The ``[monitor]`` table of a config file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level after the multiplicity correction."""
    correction: str = Field(default="holm", pattern="^(holm|bh)$")
    """``holm`` (family-wise error) or ``bh`` (false discovery rate)."""
    min_summaries: int = Field(default=20, ge=2)
    """A window with fewer summaries is refused (exit 2): its tests would have no power."""
    min_segment: int = Field(default=10, ge=2)
    """Segments (``--by``) with fewer summaries in either window are reported, not tested."""
    paired_overlap: float = Field(default=0.8, gt=0, le=1)
    """Pair by note when this share of each window's notes is in both windows."""
    metrics: list[str] | None = None
    """Metrics to test; default every metric with a direction found in both windows."""
    min_effect: dict[str, float] = Field(default_factory=dict)
    """Smallest change that matters, per metric, in the metric's own unit."""
    mix_fields: list[str] = Field(default_factory=lambda: ["note_type", "specialty"])
    """Metadata fields whose distribution is compared between the windows."""
    seed: int = 0
    n_resamples: int = Field(default=significance.N_RESAMPLES, ge=100)
    """Bootstrap resamples per test; raised to 4 x tests / alpha when lower, so that the smallest
    bootstrap p-value, 1 / (n + 1), can pass the strictest Holm threshold, alpha / tests."""
    min_reviewed: int = Field(default=20, ge=2)
    """Physician metrics (``physician_accepted``, ``physician_<attribute>``) are tested only when both
    windows have at least this many reviewed summaries; otherwise listed as skipped, with the counts."""
    summary_flag: list[str] = Field(default_factory=lambda: list(DEFAULT_SUMMARY_FLAG))
    """Rules (any fires) for "clinsum flags this summary", compared with the physicians' verdicts."""
    physician_flag: list[str] = Field(default_factory=lambda: list(DEFAULT_PHYSICIAN_FLAG))
    """Rules (any fires, for any one reviewer) for "a physician found this summary wrong"."""
    window: str = "day"
    """``--trend``: ``day``, ``week`` (ISO week) or a number of summaries per window."""
    reference_windows: int = Field(default=DEFAULT_REFERENCE_WINDOWS, ge=1)
    """``--trend``: the first windows, which set the control limits and are not judged."""
    lam: float = Field(default=DEFAULT_LAMBDA, gt=0, le=1, alias="lambda")
    """``--trend``: the EWMA's weight of the newest window (written ``lambda`` in the file)."""
    limit: float = Field(default=DEFAULT_L, gt=0)
    """``--trend``: control limits at this many standard deviations of the EWMA."""
    anchors: str | None = None
    """Anchors file (JSONL: id, note, summary) re-judged in every monitor run to tell judge drift from
    model drift (``clinsum.monitoring.anchors``); relative to the config file."""
    judge: list[str] | None = None
    """Judge spec(s) for the anchors, as ``clinsum run --judge``; default the config's ``[judge]`` judges."""
    anchor_min_shift: float = Field(default=0.2, ge=0)
    """Smallest mean shift of a judge metric on the anchors that is drift (1-5 scale)."""

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> str:
        text = str(value).strip()
        if text in ("day", "week") or (text.isdigit() and int(text) >= 1):
            return text
        raise ValueError(f"expected day, week or a number of summaries, got {value!r}")

    @field_validator("summary_flag", "physician_flag")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        AnyRule.parse(value)  # raises ValueError naming the bad rule
        return value

    @field_validator("judge", mode="before")
    @classmethod
    def _one_judge_as_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def load_settings(data: dict[str, Any] | None, where: str = "[monitor]") -> MonitorSettings:
    try:
        return MonitorSettings.model_validate(data or {})
    except ValidationError as exc:  # an unknown key is named with the valid ones, as in the rest of the config
        raise ConfigError(f"{where}: {describe_validation(exc, MonitorSettings, 'setting')}") from None


def default_min_effect(metric: Metric, baseline_mean: float) -> float:
    if metric.name in SAFETY_METRICS:
        return 0.0
    if metric.kind == "rate":
        return 0.02
    if metric.low is not None and metric.high is not None:
        return 0.02 * (metric.high - metric.low)
    return 0.10 * abs(baseline_mean)


@dataclass
class Check:
    """One metric in one segment: the numbers, the test, and the verdict."""

    metric: str
    segment: str
    kind: str
    test: str
    paired: bool
    n_baseline: int
    n_current: int
    baseline_mean: float
    current_mean: float
    difference: float
    ci: tuple[float, float]
    p_value: float
    p_adjusted: float = float("nan")
    direction: str = "neutral"
    min_effect: float = 0.0
    verdict: str = "not significant"
    """``worse``, ``better``, ``not significant``, ``mix shift`` (worse overall, not within segments), or
    ``judge drift`` (a judge metric worse while the judge drifted on the anchors: not the summarizer's)."""
    alert: bool = False
    explanation: str = ""

    def as_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))


@dataclass
class Comparison:
    baseline: dict[str, Any]
    current: dict[str, Any]
    checks: list[Check]
    case_mix: list[case_mix.MixComparison]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    settings: MonitorSettings = field(default_factory=MonitorSettings)

    @property
    def alerts(self) -> list[Check]:
        return [c for c in self.checks if c.alert]

    @property
    def mix_shifts(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "mix shift"]

    def as_dict(self) -> dict[str, Any]:
        fields = ("metric", "segment", "baseline_mean", "current_mean", "difference", "ci", "p_value",
                  "p_adjusted", "test", "kind")
        return {
            "baseline": self.baseline, "current": self.current,
            "alerts": [{k: c.as_dict()[k] for k in (*fields, "min_effect", "explanation")} for c in self.alerts],
            "checks": [c.as_dict() for c in self.checks],
            "mix_shifts": [c.as_dict() for c in self.mix_shifts],
            "case_mix": [m.as_dict() for m in self.case_mix],
            "skipped": self.skipped,
            "settings": self.settings.model_dump(by_alias=True),
        }


def compare_windows(baseline: Window, current: Window, settings: MonitorSettings | None = None,
                    *, by: str | None = None) -> Comparison:
    settings = settings or MonitorSettings()
    for label, window in (("baseline", baseline), ("current", current)):
        if len(window.observations) < settings.min_summaries:
            raise WindowError(
                f"the {label} window ({window.selector.describe()}) has {len(window.observations)} summaries; "
                f"at least {settings.min_summaries} are needed to test (monitor.min_summaries)")
    metrics = _metrics(baseline, current, settings)
    segments: list[tuple[str, Sequence[Observation], Sequence[Observation]]] = [
        ("all", baseline.observations, current.observations)]
    skipped: list[dict[str, Any]] = []
    if by is not None:
        segments += _segments(baseline, current, by)
    family = len(metrics) * len(segments)
    resolution = math.ceil(4 * family / settings.alpha)  # the smallest bootstrap p sits well below Holm's first bar
    if settings.n_resamples < resolution:
        settings = settings.model_copy(update={"n_resamples": resolution})
    checks: list[Check] = []
    for segment, obs_a, obs_b in segments:
        minimum = settings.min_summaries if segment == "all" else settings.min_segment
        for name in metrics:
            physician = name.startswith(PHYSICIAN_PREFIX)
            # physicians' verdicts need min_reviewed reviewed summaries in every segment, not only in all
            check = _check(name, segment, obs_a, obs_b, settings,
                           max(minimum, settings.min_reviewed) if physician else minimum)
            if isinstance(check, Check):
                checks.append(check)
            else:
                reason = (check.replace(" values;", " reviewed summaries;") + " (monitor.min_reviewed)"
                          if physician else check)
                skipped.append({"metric": name, "segment": segment, "reason": reason})
    skipped += _in_one_window(baseline, current, settings)
    if not any(c.segment == "all" for c in checks):  # nothing tested must never read as "no degradation"
        reasons = "; ".join(f"{s['metric']}: {s['reason']}" for s in skipped if s["segment"] == "all")
        raise WindowError(f"no metric could be tested on the whole windows ({reasons})")
    named = [s for s in skipped if s["segment"] == "all" and s["metric"] in (settings.metrics or [])]
    if named:  # asked for by name and not tested: "no degradation" would report a check never made
        reasons = "; ".join(f"{s['metric']}: {s['reason']}" for s in named)
        raise WindowError(f"metrics named in monitor.metrics (--metrics) could not be tested on the whole "
                          f"windows ({reasons})")
    adjusted = significance.CORRECTIONS[settings.correction]([c.p_value for c in checks])
    for check, p in zip(checks, adjusted, strict=True):
        check.p_adjusted = p
        _judge(check, settings)
    fields = list(dict.fromkeys([*settings.mix_fields, *([by] if by and by != "system" else [])]))
    mix = case_mix.compare(baseline.observations, current.observations, fields, alpha=settings.alpha)
    shifted = [m.field for m in mix if m.shifted and m.field != "source_concepts"]
    if shifted:
        for check in checks:
            if check.alert and check.segment == "all" and not check.paired:
                _attribute_to_mix(check, baseline, current, shifted, settings)
    checks.sort(key=lambda c: (c.segment != "all", c.segment, display_key(c.metric)))
    return Comparison(_summary(baseline), _summary(current), checks, mix, skipped, settings)


def _metrics(baseline: Window, current: Window, settings: MonitorSettings) -> list[str]:
    both = baseline.metrics() & current.metrics()
    if settings.metrics is not None:
        missing = [m for m in settings.metrics if m not in both]
        if missing:
            raise WindowError(f"no values in both windows for: {', '.join(missing)} "
                              f"(available: {', '.join(sorted(both, key=display_key))})")
        return list(settings.metrics)
    chosen = []
    for name in both:
        info = metric_info(name)
        if info is not None and info.direction != "neutral":
            chosen.append(name)
    return sorted(chosen, key=display_key)


def _in_one_window(baseline: Window, current: Window, settings: MonitorSettings) -> list[dict[str, Any]]:
    """Metrics with a direction that only one window has (an evaluator dropped or added, physicians'
    reviews in one window only): listed as not tested, never silently dropped."""
    if settings.metrics is not None:
        return []
    a, b = baseline.metrics(), current.metrics()
    found = []
    for name in sorted(a ^ b, key=display_key):
        window = "baseline" if name in a else "current"
        if name.startswith(PHYSICIAN_PREFIX):
            reason = f"only the {window} window has reviewed summaries"
        elif (info := metric_info(name)) is not None and info.direction != "neutral":
            reason = f"only the {window} window has values"
        else:
            continue  # no direction: never tested, in both windows or one
        found.append({"metric": name, "segment": "all", "reason": reason})
    return found


def _segments(baseline: Window, current: Window, by: str) -> list[tuple[str, list[Observation], list[Observation]]]:
    groups_a: dict[str, list[Observation]] = defaultdict(list)
    groups_b: dict[str, list[Observation]] = defaultdict(list)
    for o in baseline.observations:
        groups_a[str(o.fields.get(by))].append(o)
    for o in current.observations:
        groups_b[str(o.fields.get(by))].append(o)
    if set(groups_a) | set(groups_b) == {"None"}:
        raise WindowError(f"--by {by}: no summary or note has a '{by}' field in its metadata")
    return [(f"{by}={value}", groups_a.get(value, []), groups_b.get(value, []))
            for value in sorted(set(groups_a) | set(groups_b))]


def _pairs(name: str, obs_a: Sequence[Observation], obs_b: Sequence[Observation],
           overlap: float) -> tuple[list[float], list[float]] | None:
    """Per-note means in both windows, when enough notes are in both; else None (unpaired)."""
    by_note_a: dict[str, list[float]] = defaultdict(list)
    by_note_b: dict[str, list[float]] = defaultdict(list)
    for o in obs_a:
        if name in o.values:
            by_note_a[o.note_id].append(o.values[name])
    for o in obs_b:
        if name in o.values:
            by_note_b[o.note_id].append(o.values[name])
    common = sorted(by_note_a.keys() & by_note_b.keys())
    if not common or len(common) < overlap * max(len(by_note_a), len(by_note_b)):
        return None
    return ([float(np.mean(by_note_a[n])) for n in common], [float(np.mean(by_note_b[n])) for n in common])


def _check(name: str, segment: str, obs_a: Sequence[Observation], obs_b: Sequence[Observation],
           settings: MonitorSettings, minimum: int) -> Check | str:
    info = metric_info(name)
    kind = info.kind if info is not None else "continuous"
    a = [o.values[name] for o in obs_a if name in o.values]
    b = [o.values[name] for o in obs_b if name in o.values]
    if len(a) < minimum or len(b) < minimum:
        return f"{len(a)} baseline and {len(b)} current values; at least {minimum} each are needed"
    pairs = _pairs(name, obs_a, obs_b, settings.paired_overlap)
    alternative: significance.Alternative = "two-sided"
    if info is not None and info.direction != "neutral":
        alternative = "less" if info.direction == "higher" else "greater"
    options: dict[str, Any] = {"alternative": alternative, "seed": settings.seed, "n_resamples": settings.n_resamples}
    if pairs is not None and len(pairs[0]) >= minimum:
        a, b = pairs
        result = significance.compare_paired(kind, a, b, **options)
    else:
        pairs = None
        result = significance.compare_unpaired(kind, a, b, **options)
    mean_a = float(np.mean(a))
    min_effect = settings.min_effect.get(name)
    if min_effect is None:
        min_effect = default_min_effect(info, mean_a) if info is not None else 0.0
    return Check(name, segment, kind, result.test, pairs is not None, len(a), len(b), mean_a,
                 float(np.mean(b)), result.difference, result.ci, result.p_value,
                 direction=info.direction if info is not None else "neutral", min_effect=min_effect)


def _judge(check: Check, settings: MonitorSettings) -> None:
    """The p-value is one-sided toward the bad direction; an improvement shows in the interval."""
    info = metric_info(check.metric)
    significant = check.p_adjusted < settings.alpha
    worse = info is not None and info.is_worse(check.difference)
    low, high = check.ci
    better = info is not None and (info.is_worse(-low) and info.is_worse(-high))
    if better:
        check.verdict, check.explanation = "better", "improved (the interval lies on the good side of 0)"
    elif not significant:
        check.verdict, check.explanation = "not significant", "not significantly worse after correction"
    elif not worse:
        check.verdict, check.explanation = "not significant", "metric has no direction"
    elif abs(check.difference) < check.min_effect:
        check.verdict = "worse"
        check.explanation = f"significant but smaller than the minimum effect {check.min_effect:g}"
    else:
        check.verdict, check.alert = "worse", True
        check.explanation = "significant change the bad way, at least the minimum effect"


def _attribute_to_mix(check: Check, baseline: Window, current: Window, fields: list[str],
                      settings: MonitorSettings) -> None:
    """Recompute the change within the strata of the shifted fields; if it vanishes, it is the mix."""
    labels_a, labels_b = case_mix.strata(baseline.observations, current.observations, fields)
    groups_a: dict[str, list[float]] = defaultdict(list)
    groups_b: dict[str, list[float]] = defaultdict(list)
    for o, label in zip(baseline.observations, labels_a, strict=True):
        if check.metric in o.values:
            groups_a[label].append(o.values[check.metric])
    for o, label in zip(current.observations, labels_b, strict=True):
        if check.metric in o.values:
            groups_b[label].append(o.values[check.metric])
    common = sorted(groups_a.keys() & groups_b.keys())
    if not common:
        return
    info = metric_info(check.metric)
    alternative: significance.Alternative = "less" if info is not None and info.direction == "higher" else "greater"
    difference, p, _ = significance.stratified_bootstrap(
        [np.array(groups_a[s]) for s in common], [np.array(groups_b[s]) for s in common],
        alternative=alternative, seed=settings.seed, n_resamples=settings.n_resamples)
    still_worse = (p < settings.alpha and info is not None and info.is_worse(difference)
                   and abs(difference) >= check.min_effect)
    if not still_worse:
        check.alert, check.verdict = False, "mix shift"
        check.explanation = (f"the case mix shifted ({', '.join(fields)}); within those segments the change is "
                             f"{difference:+.4g} (p={p:.3g}), so the model is not shown to be worse")


def _summary(window: Window) -> dict[str, Any]:
    obs = window.observations
    means = {}
    for name in sorted(window.metrics(), key=display_key):
        values = window.values(name)
        means[name] = round(float(np.mean(values)), 6)
    return {"selector": window.selector.describe(), "runs": list(window.runs), "summaries": len(obs),
            "notes": len({o.note_id for o in obs}), "failed": int(sum(o.values.get("failed", 0) for o in obs)),
            "means": means}


def _finite(data: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: None instead; tuples as lists."""
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, tuple | list):
            return [clean(v) for v in value]
        return value
    return {k: clean(v) for k, v in data.items()}
