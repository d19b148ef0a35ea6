"""The records that flow through clinsum, one stage to the next.

Every file clinsum reads or writes uses the JSON form of these models, and the
store keeps them as they are. All are frozen: a stage returns new records and
never edits the ones it was given. Each carries ``schema_version`` so that a
record written by an older clinsum can be recognised and migrated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

Assertion = Literal["present", "negated", "possible", "historical", "family", "hypothetical"]
SemanticGroup = Literal["disorder", "finding", "drug", "procedure", "test", "anatomy", "device"]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    """Version of the record layout that wrote this record."""


class Note(Record):
    """A source text to be summarized."""

    id: str = Field(min_length=1)
    """Stable identifier, unique within a notes file."""
    text: str
    """The source text (a visit note, a dialogue, a discharge letter...)."""
    reference: str | None = None
    """A human-written reference summary, when there is one."""
    key_concepts: list[str] | None = None
    """Clinician-chosen phrases that a good summary must keep."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """Free metadata: specialty, note type, section, source data set."""

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty")
        return text


class Usage(Record):
    """What a provider call consumed."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    """Filled only where the model's price is known; never guessed."""


class Summary(Record):
    """One system's summary of one note, or the error that prevented it."""

    note_id: str = Field(min_length=1)
    system: str = Field(min_length=1)
    """A provider spec (``anthropic:claude-sonnet-4-5``), ``production`` or ``reference``."""
    text: str = ""
    usage: Usage = Field(default_factory=Usage)
    latency_s: float | None = None
    error: str | None = None
    """Why the summary could not be produced; ``text`` is empty when set."""
    request_id: str | None = None
    """The provider's own id for the call, for tracing it in their console."""
    prompt_version: str | None = None
    """Version of the prompt template that produced the summary."""
    created_at: datetime | None = None
    """When production made the summary (ISO 8601); the monitor's time windows select on it.
    A time without a zone is read as UTC."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Production context: model version, prompt version, site, specialty, note type...
    The monitor selects and segments on these keys (``--by site``)."""

    @property
    def ok(self) -> bool:
        return self.error is None


class Score(Record):
    """One number about one summary, from one evaluator."""

    note_id: str
    system: str
    metric: str
    value: float | None
    """None when the metric does not apply (for example ROUGE without a reference)."""
    evaluator: str
    version: str
    """Evaluator version; changes when its logic, prompt or rubric change."""
    detail: dict[str, Any] = Field(default_factory=dict)
    """The evidence behind the number (concepts matched, judge rationale...)."""


class Rating(Record):
    """A human judgement of one summary on one dimension."""

    note_id: str = Field(min_length=1)
    system: str = Field(min_length=1)
    rater: str = Field(min_length=1)
    dimension: str = Field(min_length=1)
    value: float
    comment: str | None = None
    run_id: str | None = None
    """The run holding the rated summary: a rating rates one summary, not a (note, system) pair.
    None only for ratings from before ratings were tied to runs (joined where unambiguous)."""
    rated_at: str | None = None
    """When the rater gave the rating (ISO 8601), when the feedback says."""


class AnchorJudging(Record):
    """One judging of a fixed anchor set by one judge (``clinsum monitor --anchors``).

    The evidence for telling judge drift from model drift: the same anchors judged
    again later by the same judge spec must score the same. Names the judge by its
    specs and the models the provider reported, never by its options (hosts, keys).
    """

    id: int | None = None
    """Assigned by the store."""
    judged_at: str
    """When the anchors were judged (UTC, ISO 8601)."""
    anchors_hash: str
    """SHA-256 of the anchors (ids, notes, summaries): the same hash is the same anchor set."""
    n_anchors: int
    judge_version: str
    """The judge evaluator's version (rubric, prompt, specs, samples, temperature): the judge spec that a
    reference judging must share."""
    judges: list[str]
    """The judge's provider specs (``ollama:llama3.1:8b``); two or more for a jury."""
    models: dict[str, str | None] = Field(default_factory=dict)
    """Spec -> the model the provider said answered (None when it did not say)."""
    rubric: str
    """The rubric's version."""
    reference_id: int | None = None
    """The judging this one was compared with; None when it is the first (a reference)."""
    drifted: bool | None = None
    """Whether the judge drifted from the reference; None when there was none to compare with."""
    values: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Anchor id -> judge metric -> value."""


class Mention(Record):
    """A medical concept found in a text."""

    start: int
    end: int
    text: str
    concept_id: str
    """Source-prefixed id, for example ``mesh:D003924``."""
    name: str
    """Preferred name of the concept."""
    group: SemanticGroup
    assertion: Assertion = "present"
