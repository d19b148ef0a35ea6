"""The periodic performance report for production: what a quality committee or a regulator asks to see.

Over the stored production summaries made in a period (their ``created_at``, across runs),
cut into windows (a day, an ISO week, or every N summaries):

- every metric per window: mean with its 95% bootstrap interval, and the EWMA with its
  control limits from ``monitoring.trend`` (the reference period is the first windows);
- the alerts of the period: the trend's, and judge drift on anchors where the store keeps
  anchor judgings (it does not yet: the section says so);
- physician feedback per window and over the period (``monitoring.feedback.window_feedback``):
  volume, acceptance, ratings, and how clinsum's flags agree with the physicians';
- the model and prompt versions in service (the summaries' metadata) and when they changed;
- the evaluator's own validity figures (``validity.json``, written by
  ``benchmarks/validation_table.py``).

Nothing here is a statistic of its own: means, intervals, limits and agreement come from the
aggregator and the monitoring modules; this module arranges them by window.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from itertools import pairwise
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinsum.config import describe_validation
from clinsum.errors import ConfigError
from clinsum.evaluators.aggregate import bootstrap_ci
from clinsum.evaluators.bootstrap import DEFAULT_RESAMPLES
from clinsum.feedback import SummaryKey, metric_values, rated_values
from clinsum.monitoring import trend
from clinsum.monitoring.anchors import NOT_JUDGEMENTS
from clinsum.monitoring.feedback import DEFAULT_PHYSICIAN_FLAG, DEFAULT_SUMMARY_FLAG, window_feedback
from clinsum.monitoring.windows import Selector, load_window, metric_info, window_ratings
from clinsum.records import Summary
from clinsum.reporting import charts
from clinsum.reporting.content import ReportError
from clinsum.reporting.tables import ARROWS
from clinsum.store import Store

DEFAULT_WINDOW = "week"
REFERENCE_WINDOWS = {"day": 7, "week": 3}
"""Default reference period: a week of days, three weeks; seven windows of N summaries."""
VERSION_KEYS = ("model", "provider", "deployment", "model_id", "model_name")
"""Metadata keys shown in the version timeline besides every key ending in ``version``."""
_DERIVED_ONLY = frozenset({"failed", "empty_summary"})
"""Values every observation has (derived from the summary itself): not a sign it was scored."""


class PeriodicSettings(BaseModel):
    """The ``[report]`` table of a config file (command-line options override it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: str = DEFAULT_WINDOW
    """``day``, ``week`` (ISO week) or a number of summaries."""
    reference_windows: int | None = Field(default=None, ge=1)
    """Windows at the start of the period that set the control limits (default 7 days, 3 weeks, 7 windows)."""
    ewma_lambda: float = Field(default=trend.DEFAULT_LAMBDA, gt=0, le=1)
    control_limit: float = Field(default=trend.DEFAULT_L, gt=0)
    """Limits at the reference mean +- this many standard deviations of the EWMA."""
    metrics: list[str] | None = None
    """Metrics to chart; default every metric stored."""
    summary_flag: list[str] = Field(default_factory=lambda: list(DEFAULT_SUMMARY_FLAG))
    """clinsum flags a summary when any of these rules holds (``METRIC>=X``)."""
    physician_flag: list[str] = Field(default_factory=lambda: list(DEFAULT_PHYSICIAN_FLAG))
    """A physician flags a summary when any of these rules holds for their review."""
    n_resamples: int = Field(default=DEFAULT_RESAMPLES, ge=100)
    seed: int = 0

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        value = str(value).strip()
        if value not in ("day", "week") and not (value.isdigit() and int(value) >= 1):
            raise ValueError(f"window must be day, week or a number of summaries, got {value!r}")
        return value

    @property
    def reference(self) -> int:
        return self.reference_windows or REFERENCE_WINDOWS.get(self.window, 7)


def load_settings(data: dict[str, Any] | None, where: str = "[report]") -> PeriodicSettings:
    try:
        return PeriodicSettings.model_validate(data or {})
    except ValidationError as exc:  # an unknown key is named with the valid ones, as in the rest of the config
        raise ConfigError(f"{where}: {describe_validation(exc, PeriodicSettings, 'setting')}") from None


@dataclass(frozen=True)
class WindowRow:
    label: str
    start: str
    end: str
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    ewma: float | None
    lower: float | None
    upper: float | None
    reference: bool
    alert: bool


@dataclass(frozen=True)
class MetricSeries:
    name: str
    direction: str
    arrow: str
    description: str
    reference_mean: float | None
    reference_sd: float | None
    reference_n: int
    rows: list[WindowRow]
    chart: charts.Chart

    @property
    def alerts(self) -> int:
        return sum(row.alert for row in self.rows)


@dataclass(frozen=True)
class FeedbackWindow:
    label: str
    summaries: int
    reviewers: int
    feedback: dict[str, Any]
    """``window_feedback``'s result for the window's summaries."""


@dataclass(frozen=True)
class VersionSpan:
    system: str
    key: str
    value: str
    first: str
    last: str
    summaries: int


@dataclass(frozen=True)
class VersionChange:
    system: str
    key: str
    before: str
    after: str
    at: str
    """When the new value was first seen."""


@dataclass
class Periodic:
    since: datetime
    until: datetime
    generated_at: datetime
    settings: PeriodicSettings
    system: str | None
    runs: list[str]
    summaries: int
    scored: int
    systems: list[str]
    windows: list[tuple[str, str, str, int]]
    """Label, first and last summary time, summaries."""
    series: list[MetricSeries]
    alerts: list[dict[str, Any]]
    feedback: list[FeedbackWindow]
    period_feedback: dict[str, Any]
    reviewers: int
    versions: list[VersionSpan]
    changes: list[VersionChange]
    timeline: charts.Chart
    validity: dict[str, Any]
    anchors: list[dict[str, Any]] = field(default_factory=list)
    """Judge drift on anchors; empty until the store keeps anchor judgings."""

    @property
    def reference_labels(self) -> list[str]:
        return [label for label, *_ in self.windows[: self.settings.reference]]


def validity_figures() -> dict[str, Any]:
    """The packaged figures of ``benchmarks/validation_table.py`` (empty when it was never run)."""
    resource = files("clinsum.reporting").joinpath("validity.json")
    if not resource.is_file():
        return {"source": "benchmarks/validation_table.py", "figures": []}
    loaded: dict[str, Any] = json.loads(resource.read_text("utf-8"))
    return loaded


def validity_rows(figures: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per label, as the README's validation table shows them: parts joined as ``acc 0.980 · neg 0.99``."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for figure in figures:
        rows.setdefault(figure["label"], []).append(figure)
    out = []
    for label, parts in rows.items():
        def joined(key: str, parts: list[dict[str, Any]] = parts) -> str:
            return ", ".join(dict.fromkeys(str(f[key]) for f in parts))
        value = " · ".join(f"{f['part']} {f['value']:.{f['digits']}f}".strip() for f in parts)
        out.append({"label": label, "value": value, "goal": joined("goal"), "measured": joined("measured"),
                    "commit": joined("commit"), "command": joined("command")})
    return out


def build(store: Store, since: datetime, until: datetime, settings: PeriodicSettings, *,
          runs: Sequence[str] = (), system: str | None = None, now: datetime | None = None) -> Periodic:
    """Everything the periodic report shows, from the summaries made in [since, until)."""
    if until <= since:
        raise ReportError(f"the period is empty: --until {until.isoformat()} is not after --since {since.isoformat()}")
    window = load_window(store, Selector(tuple(runs), {}, since, until, system))
    scored = [o for o in window.observations if set(o.values) - _DERIVED_ONLY]
    if not scored:
        raise ReportError(f"no scored production summary was made in [{since.isoformat()}, {until.isoformat()})"
                          f"{' for system ' + system if system else ''} in {store.path}: production summaries "
                          "need a created_at and scores (`clinsum score`)")
    observed = trend.from_window(window)
    key_of = {id(t): (o.run_id, o.note_id, o.system) for o, t in zip(window.observations, observed, strict=True)}
    try:
        limits = trend.trend(observed, window=settings.window, reference_windows=settings.reference,
                             metrics=settings.metrics, lam=settings.ewma_lambda, limit=settings.control_limit)
    except ValueError as exc:
        raise ReportError(f"{exc} (--window, --reference-windows or a longer period)") from None
    cut = trend.cut(observed, settings.window)
    series = [_series(m, cut, settings) for m in limits["metrics"]]

    ratings = window_ratings(store, window)  # the monitor's join: a rating counts for the summary it rates
    scores = [item for run_id in window.runs for item in store.scores_by_run(run_id, details=False)]
    raters = _raters(ratings, scores)
    feedback = []
    for label, chunk in cut:
        keys = {key_of[id(o)] for o in chunk}
        result = window_feedback(ratings, scores, summaries=keys, summary_flag=settings.summary_flag,
                                 physician_flag=settings.physician_flag, n_resamples=settings.n_resamples,
                                 seed=settings.seed)
        feedback.append(FeedbackWindow(label, len(chunk), len({r for k in keys for r in raters.get(k, ())}),
                                       result))
    every = set(key_of.values())
    period_feedback = window_feedback(ratings, scores, summaries=every, summary_flag=settings.summary_flag,
                                      physician_flag=settings.physician_flag, n_resamples=settings.n_resamples,
                                      seed=settings.seed)
    versions = _versions(store, window.runs, every)
    return Periodic(
        since=since, until=until, generated_at=now or datetime.now(UTC), settings=settings, system=system,
        runs=list(window.runs), summaries=len(window.observations), scored=len(scored),
        systems=sorted({o.system for o in window.observations}),
        windows=[(label, chunk[0].created_at.isoformat(), chunk[-1].created_at.isoformat(), len(chunk))
                 for label, chunk in cut],
        series=series, alerts=limits["alerts"], feedback=feedback, period_feedback=period_feedback,
        reviewers=len({r for k in every for r in raters.get(k, ())}),
        versions=versions, changes=_changes(versions), timeline=charts.timeline(versions, since, until),
        validity=validity_figures(), anchors=_anchors(store, since, until))


def _anchors(store: Store, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The anchor judgings made in the period (judge drift): each with its reference and the mean shift
    per judge metric over the anchors both judged (this judging minus its reference)."""
    out = []
    for judging in store.anchor_judgings():
        judged = datetime.fromisoformat(judging.judged_at)
        judged = judged if judged.tzinfo else judged.replace(tzinfo=UTC)
        if not since <= judged < until:
            continue
        shifts: dict[str, float] = {}
        reference = None
        if judging.id is not None and judging.reference_id is not None:
            current, reference = store.anchor_judging(judging.id), store.anchor_judging(judging.reference_id)
            common = sorted(set(current.values) & set(reference.values))
            metrics = sorted({m for a in common for m in current.values[a]
                              if m in reference.values[a] and m not in NOT_JUDGEMENTS})
            for metric in metrics:
                pairs = [current.values[a][metric] - reference.values[a][metric] for a in common
                         if metric in current.values[a] and metric in reference.values[a]]
                shifts[metric] = sum(pairs) / len(pairs)
        out.append({"judged_at": judging.judged_at, "judges": ", ".join(judging.judges),
                    "models": ", ".join(f"{k}: {v}" for k, v in judging.models.items() if v),
                    "n_anchors": judging.n_anchors, "rubric": judging.rubric,
                    "reference": reference.judged_at if reference else None, "shifts": shifts,
                    "drifted": judging.drifted})
    return out


def _series(metric: dict[str, Any], cut: Sequence[tuple[str, list[trend.Observation]]],
            settings: PeriodicSettings) -> MetricSeries:
    name = metric["metric"]
    rows = []
    for point, (_, chunk) in zip(metric["windows"], cut, strict=True):
        values = [v for o in chunk if (v := o.values.get(name)) is not None]
        low, high = (bootstrap_ci(values, n_resamples=settings.n_resamples, seed=settings.seed)
                     if len(values) > 1 else (None, None))
        rows.append(WindowRow(point["label"], point["start"], point["end"], point["n"], point["mean"], low, high,
                              point["ewma"], point["lower"], point["upper"], point["reference"], point["alert"]))
    declared = metric_info(name)
    return MetricSeries(name, metric["direction"], ARROWS.get(metric["direction"], "·"),
                        declared.description if declared else "", metric["reference_mean"],
                        metric["reference_sd"], metric["reference_n"], rows, charts.control(name, rows))


def _raters(ratings: Sequence[Any], scores: Sequence[tuple[str, Any]]) -> dict[SummaryKey, set[str]]:
    """Summary -> its reviewers, each rating tied to its summary as ``window_feedback`` ties it."""
    scored = {key for values in metric_values(scores).values() for key in values}
    out: dict[SummaryKey, set[str]] = defaultdict(set)
    for items in rated_values(ratings, scored).values():
        for key, by_rater in items.items():
            out[key].update(by_rater)
    return out


def version_fields(summary: Summary, providers: dict[str, str]) -> dict[str, str]:
    """The versions a summary records: its metadata's ``*version`` keys and model keys, its prompt version,
    and the provider spec its run configured for its system."""
    found = {key: str(value) for key, value in summary.metadata.items()
             if value is not None and (key.lower().endswith("version") or key.lower() in VERSION_KEYS)}
    if summary.prompt_version and "prompt_version" not in found:
        found["prompt_version"] = summary.prompt_version
    if summary.system in providers:
        found["provider:model"] = providers[summary.system]
    return found


def _versions(store: Store, runs: Sequence[str], keys: set[SummaryKey]) -> list[VersionSpan]:
    seen: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)
    for run_id in runs:
        config = store.run(run_id)["config"]
        providers = {(p.get("name") or p["spec"]): p["spec"] for p in config.get("providers") or []
                     if isinstance(p, dict) and p.get("spec")}
        for summary in store.summaries(run_id):
            if (run_id, summary.note_id, summary.system) not in keys or summary.created_at is None:
                continue
            made = summary.created_at if summary.created_at.tzinfo else summary.created_at.replace(tzinfo=UTC)
            for key, value in version_fields(summary, providers).items():
                seen[(summary.system, key, value)].append(made)
    spans = [VersionSpan(system, key, value, min(times).isoformat(), max(times).isoformat(), len(times))
             for (system, key, value), times in seen.items()]
    return sorted(spans, key=lambda s: (s.system, s.key, s.first, s.value))


def _changes(spans: Sequence[VersionSpan]) -> list[VersionChange]:
    """Each value of a version key after the first one seen, with the value in service before it."""
    out = []
    by_key: dict[tuple[str, str], list[VersionSpan]] = defaultdict(list)
    for span in spans:
        by_key[(span.system, span.key)].append(span)
    for (system, key), items in by_key.items():
        for before, after in pairwise(items):
            out.append(VersionChange(system, key, before.value, after.value, after.first))
    return sorted(out, key=lambda c: (c.at, c.system, c.key))


# -- rendering -------------------------------------------------------------------------------------

def css_string(text: str) -> str:
    """``text`` as a quoted CSS string: every character but letters, digits and plain punctuation escaped."""
    plain = set(" -_.,:;()+/·")
    return '"' + "".join(c if (c.isalnum() and c.isascii()) or c in plain else f"\\{ord(c):x} " for c in text) + '"'


def _window_name(settings: PeriodicSettings) -> str:
    return {"day": "a day", "week": "an ISO week"}.get(settings.window, f"{settings.window} summaries")


def _common(report: Periodic) -> dict[str, Any]:
    from clinsum import __version__

    return {"report": report, "fmt": charts.fmt, "arrows": ARROWS, "version": __version__,
            "window_name": _window_name(report.settings),
            "generated": report.generated_at.isoformat(timespec="seconds")}


def render_html(report: Periodic) -> str:
    """The periodic report as one self-contained HTML document (the run report's stylesheet and charts)."""
    from clinsum.reporting.html import csp_hash
    from clinsum.reporting.templates import environment, read

    env = environment().overlay()
    env.filters["css_string"] = css_string
    common = _common(report)
    header = (f"clinsum periodic report · {report.since.isoformat()} to {report.until.isoformat()} · "
              f"generated {common['generated']}")
    style = read("report.css") + read("periodic.css") + env.get_template("periodic-page.css.j2").render(header=header)
    script = read("periodic.js")
    dimensions = sorted({d for w in report.feedback for d in w.feedback["ratings"]}
                        | set(report.period_feedback["ratings"]))
    return env.get_template("periodic.html.j2").render(
        **common, style=style, script=script, csp_style=csp_hash(style), csp_script=csp_hash(script),
        dimensions=dimensions, validity=validity_rows(report.validity.get("figures", [])))


def render_markdown(report: Periodic) -> str:
    """The period's alerts, version changes and agreement, for a ticket or the committee's minutes."""
    from clinsum.reporting.markdown import cell
    from clinsum.reporting.templates import environment

    env = environment().overlay()
    env.filters["cell"] = cell
    return env.get_template("periodic.md.j2").render(**_common(report))
