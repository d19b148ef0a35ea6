"""The judge's verdict: the schema it must fill, its validation, and the quote check.

The JSON schema sent to the provider is built from the rubric (one required
property per attribute) and kept to the subset every structured-output
mechanism accepts: Anthropic tool input schemas, Gemini ``response_schema`` and
Ollama ``format``. It is inline (no ``$ref``, no ``anyOf``, no ``null`` types):
an optional attribute that does not apply is answered with score 0, which the
validation turns into "not applicable" (``score=None``).

An answer is parsed strictly (``json.loads`` of the whole text, nothing trimmed
or repaired) and validated with pydantic; a failure raises ``VerdictError``
whose message is fed back to the judge.

Quote check, the rule:
- each error the judge lists quotes the summary (``summary_quote``) and the
  note (``source_quote``); a quote is looked up after normalisation (case,
  Unicode form, punctuation and whitespace runs become one space) at word
  boundaries, and ``...`` or ``…`` splits it into fragments that must appear
  in order;
- an omission needs no summary quote and a fabrication no source quote (there
  is nothing to quote); every other quote is required;
- an error is *verified* when every required quote is given and found and no
  quote that was given is missing from its text;
- unverified errors are kept and shown but never trusted: ``judge_errors_critical``
  counts verified critical errors only, and reports the unverified ones
  separately in its detail.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from clinsum.errors import ClinsumError
from clinsum.evaluators.judge.rubric import NOT_APPLICABLE, Attribute, Rubric

ErrorType = Literal["fabrication", "omission", "negation_or_status", "wrong_value_dose_unit",
                    "wrong_laterality", "wrong_attribution", "other"]
Severity = Literal["minor", "major", "critical"]
ERROR_TYPES: tuple[str, ...] = ErrorType.__args__  # type: ignore[attr-defined]
SEVERITIES: tuple[str, ...] = Severity.__args__  # type: ignore[attr-defined]

RATIONALE_MAX = 2000
QUOTE_MAX = 600


class VerdictError(ClinsumError):
    """The judge's answer is not valid JSON or does not fit the verdict schema."""


class AttributeRating(BaseModel):
    """The judge's rating of one attribute."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: int | None
    """1-5; None when an optional attribute does not apply (the judge answered 0)."""
    rationale: str = Field(max_length=RATIONALE_MAX)


class ClinicalError(BaseModel):
    """One error the judge found in the summary, with its evidence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ErrorType
    severity: Severity
    summary_quote: str = Field(max_length=QUOTE_MAX)
    """The summary's words that carry the error (empty for an omission)."""
    source_quote: str = Field(max_length=QUOTE_MAX)
    """The note's words that show the error (empty for a fabrication)."""
    explanation: str = Field(default="", max_length=RATIONALE_MAX)
    summary_quote_found: bool | None = None
    """Set by the quote check: None when no quote was given."""
    source_quote_found: bool | None = None
    verified: bool = False
    """True only when every quote this error needs was given and found (see the module rule)."""


class Verdict(BaseModel):
    """A validated answer of one judge call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attributes: dict[str, AttributeRating]
    errors: list[ClinicalError]

    def critical(self, *, verified: bool) -> int:
        return sum(1 for e in self.errors if e.severity == "critical" and e.verified is verified)


# -- the schema the provider fills -------------------------------------------------

def _attribute_schema(attribute: Attribute) -> dict[str, Any]:
    low = NOT_APPLICABLE if attribute.optional else 1
    hint = "1-5 using the anchors of the rubric"
    if attribute.optional:
        hint += f"; 0 only if not applicable: {attribute.not_applicable_when}"
    return {
        "type": "object",
        "properties": {
            "rationale": {"type": "string",
                          "description": "Short reason for the score, citing the texts (1-3 sentences)."},
            "score": {"type": "integer", "minimum": low, "maximum": 5, "description": hint},
        },
        "required": ["rationale", "score"],
        "additionalProperties": False,
    }


def verdict_json_schema(rubric: Rubric) -> dict[str, Any]:
    """The JSON schema of a verdict under ``rubric``: inline, every attribute required."""
    error_item = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": list(ERROR_TYPES)},
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "summary_quote": {"type": "string",
                              "description": "Exact words copied from the summary (empty for an omission)."},
            "source_quote": {"type": "string",
                             "description": "Exact words copied from the note (empty for a fabrication)."},
            "explanation": {"type": "string"},
        },
        "required": ["type", "severity", "summary_quote", "source_quote", "explanation"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "errors": {"type": "array", "items": error_item,
                       "description": "Every error found in the summary; an empty list if none."},
            "attributes": {
                "type": "object",
                "properties": {a.name: _attribute_schema(a) for a in rubric.attributes},
                "required": rubric.names,
                "additionalProperties": False,
            },
        },
        "required": ["errors", "attributes"],
        "additionalProperties": False,
    }


# -- validation --------------------------------------------------------------------

def _answer_model(rubric: Rubric) -> type[BaseModel]:
    """A pydantic model mirroring ``verdict_json_schema`` for this rubric."""
    fields: dict[str, Any] = {}
    for attribute in rubric.attributes:
        low = NOT_APPLICABLE if attribute.optional else 1
        rating = create_model(
            f"Rating_{attribute.name}",
            __config__=ConfigDict(extra="forbid", strict=True),
            rationale=(str, Field(max_length=RATIONALE_MAX)),
            score=(int, Field(ge=low, le=5)),
        )
        fields[attribute.name] = (rating, ...)
    attributes = create_model("Attributes", __config__=ConfigDict(extra="forbid"), **fields)
    return create_model("Answer", __config__=ConfigDict(extra="forbid"),
                        attributes=(attributes, ...), errors=(list[_ErrorAnswer], ...))


class _ErrorAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ErrorType
    severity: Severity
    summary_quote: str = Field(max_length=QUOTE_MAX)
    source_quote: str = Field(max_length=QUOTE_MAX)
    explanation: str = Field(default="", max_length=RATIONALE_MAX)


def parse_json(raw: str) -> Any:
    """Strict JSON: the whole answer must be one JSON document; nothing is trimmed or repaired."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        snippet = raw.strip()[:80].replace("\n", " ")
        raise VerdictError(
            f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"it must be a single JSON object with no text or code fences around it "
            f"(answer began: {snippet!r})") from exc


def describe_validation(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors())


def parse_verdict(raw: str, rubric: Rubric) -> Verdict:
    """Parse and validate a judge's raw answer; raise ``VerdictError`` saying what is wrong."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise VerdictError("the answer must be a JSON object with keys 'errors' and 'attributes'")
    try:
        answer = _answer_model(rubric).model_validate(data)
    except ValidationError as exc:
        raise VerdictError(f"the answer does not fit the schema: {describe_validation(exc)}") from exc
    dumped = answer.model_dump()
    ratings = {
        name: AttributeRating(score=None if r["score"] == NOT_APPLICABLE else r["score"],
                              rationale=r["rationale"])
        for name, r in dumped["attributes"].items()
    }
    errors = [ClinicalError(**e) for e in dumped["errors"]]
    return Verdict(attributes=ratings, errors=errors)


# -- quote check -------------------------------------------------------------------

_ELLIPSIS = re.compile(r"\.\.\.+|…")
_NON_WORD = re.compile(r"[\W_]+")
_QUOTE_NEEDED: dict[str, tuple[bool, bool]] = {"fabrication": (True, False), "omission": (False, True)}
"""(summary quote required, source quote required); every other type needs both."""


def normalise(text: str) -> str:
    """Casefolded, NFKC, every run of punctuation or whitespace as one space, padded with spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return f" {_NON_WORD.sub(' ', text).strip()} "


def quote_found(quote: str, text: str) -> bool:
    """True when every ellipsis-separated fragment of ``quote`` occurs in ``text``, in order."""
    haystack = normalise(text)
    position = 0
    fragments = [normalise(f) for f in _ELLIPSIS.split(quote)]
    fragments = [f for f in fragments if f.strip()]
    if not fragments:
        return False
    for fragment in fragments:
        at = haystack.find(fragment, position)
        if at < 0:
            return False
        position = at + len(fragment) - 1  # fragments share the padding space
    return True


def _lookup(quote: str, text: str) -> bool | None:
    return quote_found(quote, text) if quote.strip() else None


def check_quotes(verdict: Verdict, note_text: str, summary_text: str) -> Verdict:
    """The verdict with every error's quotes looked up and ``verified`` set (see the module rule)."""
    checked = []
    for error in verdict.errors:
        summary_needed, source_needed = _QUOTE_NEEDED.get(error.type, (True, True))
        summary_found = _lookup(error.summary_quote, summary_text)
        source_found = _lookup(error.source_quote, note_text)
        verified = (
            (summary_found is True or (not summary_needed and summary_found is None))
            and (source_found is True or (not source_needed and source_found is None))
            and (summary_found, source_found) != (None, None)
        )
        checked.append(error.model_copy(update={"summary_quote_found": summary_found,
                                                "source_quote_found": source_found,
                                                "verified": verified}))
    return verdict.model_copy(update={"errors": checked})
