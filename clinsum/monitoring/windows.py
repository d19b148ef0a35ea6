"""Windows of stored production summaries: which ones a selector picks, with their scores.

A selector names runs (by id or by ``--name``), runs carrying tags (``env=prod,site=a``),
a time range over the summaries' ``created_at``, or a mix of these (all must hold).
A time range alone looks across every run of the store. Each summary of the window
is one ``Observation``: its scores by metric, the note's length, and its fields
(the summary's ``metadata`` over the note's ``meta``, plus ``system``) for segments.

Besides the stored scores, each observation carries three per-summary rates the
monitor needs as first-class safety and health signals:

- ``failed``: the summary could not be produced;
- ``empty_summary``: it was produced but is blank (a silent failure); the
  generation evaluator's score when stored, else derived from the text;
- ``has_critical_flip``: ``critical_flips > 0``, the share of summaries with at least
  one meaning-reversing status change. When the coverage evaluator stores its own
  ``has_critical_flip`` score, that one is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clinsum.errors import ClinsumError
from clinsum.evaluators.metrics import Metric, describe
from clinsum.records import Rating
from clinsum.store import Store, utc_iso

DERIVED = {
    "has_critical_flip": Metric("has_critical_flip", "lower", "rate", 0, 1, 61,
                                "1 when the summary has at least one critical status flip"),
    "empty_summary": Metric("empty_summary", "lower", "rate", 0, 1, 171,
                            "1 when the summary was produced but is blank"),
}
"""Per-summary rates the monitor derives from the store (used when no evaluator declares them)."""


PHYSICIAN_PREFIX = "physician_"
PHYSICIAN_ACCEPTED = "physician_accepted"
"""Physicians' feedback as metrics of a window (``clinsum.monitoring.feedback.with_physician_values``):
``physician_accepted`` and ``physician_<attribute>`` for every rubric attribute a reviewer rated."""


def physician_metric(name: str) -> Metric | None:
    """``physician_accepted``: 1 when every reviewer accepted the summary, a rate, higher is better;
    ``physician_<attribute>``: the reviewers' mean rating on the rubric's 1-5 scale, ordinal, in the
    direction the rubric declares for that attribute (higher is better unless it says otherwise)."""
    if not name.startswith(PHYSICIAN_PREFIX):
        return None
    attribute = name.removeprefix(PHYSICIAN_PREFIX)
    if name == PHYSICIAN_ACCEPTED:
        return Metric(name, "higher", "rate", 0, 1, 150, "1 when every physician who reviewed the summary "
                      "accepted it")
    judged = describe(f"judge_{attribute}")
    direction = judged.direction if judged is not None and judged.direction != "neutral" else "higher"
    return Metric(name, direction, "ordinal", 1, 5, 151,
                  f"physicians' mean rating of the summary on the rubric attribute '{attribute}'")


def metric_info(name: str) -> Metric | None:
    """The declaration of a metric, the monitor's derived rates and physician metrics included."""
    return describe(name) or DERIVED.get(name) or physician_metric(name)


class WindowError(ClinsumError):
    """A selector picks nothing, or a window is too small to test."""


@dataclass(frozen=True)
class Selector:
    """Which stored summaries form a window; every given part must hold."""

    runs: tuple[str, ...] = ()
    """Run ids or run names."""
    tags: Mapping[str, str] = field(default_factory=dict)
    since: datetime | None = None
    """Summaries made at or after this time (their ``created_at``)."""
    until: datetime | None = None
    """Summaries made before this time."""
    system: str | None = None

    def describe(self) -> str:
        parts = [*self.runs, *(f"{k}={v}" for k, v in self.tags.items())]
        if self.since or self.until:
            since = self.since.isoformat() if self.since else "…"
            until = self.until.isoformat() if self.until else "…"
            parts.append(f"[{since}, {until})")
        if self.system:
            parts.append(f"system {self.system}")
        return " ".join(parts) or "everything"

    @property
    def empty(self) -> bool:
        return not (self.runs or self.tags or self.since or self.until)


def parse_selector(text: str | None, *, since: str | None = None, until: str | None = None,
                   system: str | None = None) -> Selector:
    """``RUN`` (id or name), ``RUN1,RUN2``, or ``KEY=VALUE[,KEY=VALUE]`` (tags), plus a time range."""
    runs: list[str] = []
    tags: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip()] = value.strip()
        else:
            runs.append(part)
    return Selector(tuple(runs), tags, parse_time(since), parse_time(until), system)


def parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WindowError(f"invalid time '{text}': expected ISO 8601, e.g. 2025-03-01 or "
                          "2025-03-01T08:00:00+01:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Observation:
    """One summary in a window."""

    run_id: str
    note_id: str
    system: str
    created_at: str | None
    values: dict[str, float]
    """Metric -> value; metrics that do not apply (None) are absent."""
    fields: dict[str, Any]
    """What segments are made of: the summary's metadata over the note's meta, plus ``system``."""
    note_words: int
    source_concepts: int | None = None
    """Concepts the coverage evaluator found in the note, when it ran."""


@dataclass(frozen=True)
class Window:
    selector: Selector
    runs: tuple[str, ...]
    observations: tuple[Observation, ...]

    def values(self, metric: str) -> list[float]:
        return [o.values[metric] for o in self.observations if metric in o.values]

    def metrics(self) -> set[str]:
        return {m for o in self.observations for m in o.values}


def with_derived(values: Mapping[str, float], *, ok: bool, text: str) -> dict[str, float]:
    """A summary's scores plus the rates ``failed``, ``empty_summary`` and ``has_critical_flip``."""
    scores = dict(values)
    scores["failed"] = 0.0 if ok else 1.0
    scores.setdefault("empty_summary", 1.0 if ok and not text.strip() else 0.0)  # stores before generation's
    if "has_critical_flip" not in scores and "critical_flips" in scores:
        scores["has_critical_flip"] = 1.0 if scores["critical_flips"] > 0 else 0.0
    return scores


def resolve_runs(store: Store, selector: Selector) -> list[str]:
    """Ids of the runs a selector names; an unknown name is an error, not an empty window."""
    chosen: list[str] | None = None
    if selector.runs:
        chosen = []
        known = {r["id"] for r in store.runs()}
        for item in selector.runs:
            named = [item] if item in known else [r["id"] for r in store.runs(name=item)]
            if not named:
                raise WindowError(f"no run with id or name '{item}' in {store.path} (see `clinsum runs`)")
            chosen += [r for r in named if r not in chosen]
    if selector.tags:
        tagged = [r["id"] for r in store.runs(tags=dict(selector.tags))]
        chosen = tagged if chosen is None else [r for r in chosen if r in tagged]
    if selector.since or selector.until:
        timed = store.runs_with_summaries_between(
            utc_iso(selector.since) if selector.since else None,
            utc_iso(selector.until) if selector.until else None)
        chosen = timed if chosen is None else [r for r in chosen if r in timed]
    if chosen is None:
        raise WindowError("a window needs a selector: a run id or name, tags, or a time range")
    return chosen


def load_window(store: Store, selector: Selector) -> Window:
    """Every summary the selector picks, with its scores (the latest per metric)."""
    run_ids = resolve_runs(store, selector)
    observations: list[Observation] = []
    for run_id in run_ids:
        notes = {n.id: n for n in store.notes(run_id)}
        values: dict[tuple[str, str], dict[str, float]] = {}
        concepts = store.source_concepts(run_id)  # kept in the store: details are not read here
        for s in store.iter_scores(run_id, details=False):
            key = (s.note_id, s.system)
            if s.value is not None:
                values.setdefault(key, {})[s.metric] = float(s.value)
        for summary in store.summaries(run_id):
            if selector.system is not None and summary.system != selector.system:
                continue
            if not _in_range(summary.created_at, selector):
                continue
            key = (summary.note_id, summary.system)
            scores = with_derived(values.get(key, {}), ok=summary.ok, text=summary.text)
            note = notes.get(summary.note_id)
            fields: dict[str, Any] = {**(note.meta if note else {}), **summary.metadata,
                                      "system": summary.system}
            created = utc_iso(summary.created_at) if summary.created_at else None
            observations.append(Observation(run_id, summary.note_id, summary.system, created, scores,
                                            fields, len(note.text.split()) if note else 0,
                                            concepts.get(key)))
    return Window(selector, tuple(run_ids), tuple(observations))


def window_ratings(store: Store, window: Window) -> list[Rating]:
    """The physicians' ratings of the window's summaries, each naming the run of the summary it rates.

    A rating tied to a summary counts when that summary is in the window. A rating
    tied to no run (imported before ratings named their run) counts only when one
    run of the whole store holds its note and system and that summary is in the
    window: never by guess, never a rating of another run's summary of the same note.
    """
    keys = {(o.run_id, o.note_id, o.system) for o in window.observations}
    chosen: list[Rating] = []
    untied: dict[tuple[str, str, str, str], Rating] = {}
    for run_id in window.runs:
        for rating in store.ratings(run_id):
            if rating.run_id:
                if (rating.run_id, rating.note_id, rating.system) in keys:
                    chosen.append(rating)
            else:
                untied[(rating.note_id, rating.system, rating.rater, rating.dimension)] = rating
    if untied:
        held = store.runs_holding()
        for rating in untied.values():
            runs = held.get((rating.note_id, rating.system), [])
            if len(runs) == 1 and (runs[0], rating.note_id, rating.system) in keys:
                chosen.append(rating.model_copy(update={"run_id": runs[0]}))
    return chosen


def _in_range(created_at: datetime | None, selector: Selector) -> bool:
    if selector.since is None and selector.until is None:
        return True
    if created_at is None:
        return False
    moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    if selector.since is not None and moment < selector.since:
        return False
    return selector.until is None or moment < selector.until
