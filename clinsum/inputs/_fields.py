"""A row's fields checked and made a ``Note`` or a ``Summary``.

The second step of reading (``clinsum.inputs``): a row from ``_formats`` is checked
field by field (unknown fields, identifiers, text, a summary's latency, cost and
tokens finite and not negative) and validated against its record; a problem is a
``Problem`` naming the field, to which the caller adds the file and line.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from clinsum.inputs._formats import Problem, Row, check_fields, json_type, rows_or_errors, text_file_rows
from clinsum.records import Note, Record, Summary

R = TypeVar("R", bound=Record)

NOTE_FIELDS = ("id", "text", "reference", "key_concepts", "meta", "schema_version")
SUMMARY_FIELDS = ("note_id", "system", "text", "usage", "latency_s", "error", "request_id",
                  "prompt_version", "created_at", "metadata", "schema_version")


def note_rows(path: Path) -> Iterator[Row]:
    """The rows of a notes file: JSONL or CSV, a ``.txt`` file or a folder of them."""
    folder = path.is_dir() or path.suffix.lower() == ".txt"
    return text_file_rows(path) if folder else rows_or_errors(path, NOTE_FIELDS)


def summary_rows(path: Path) -> Iterator[Row]:
    return rows_or_errors(path, SUMMARY_FIELDS)


def note_from_row(row: dict[str, Any]) -> Note:
    check_fields(row, NOTE_FIELDS)
    row["id"] = _identifier(row, "id")
    _require_text(row, allow_empty=False)
    return _validate(Note, _without_nulls(row, keep=("id", "text")))


def summary_from_row(row: dict[str, Any]) -> Summary:
    check_fields(row, SUMMARY_FIELDS)
    row["note_id"] = _identifier(row, "note_id")
    row["system"] = _identifier(row, "system", allow_int=False)
    _require_text(row, allow_empty=True)  # an empty summary is data to score and flag
    row["text"] = row.get("text") or ""
    summary = _validate(Summary, _without_nulls(row, keep=("note_id", "system", "text")))
    _check_amounts(summary)
    return summary


def _check_amounts(summary: Summary) -> None:
    """Latency, cost and token counts are finite and not negative (CSV cells may say ``nan``)."""
    amounts = {"latency_s": summary.latency_s, "usage.cost_usd": summary.usage.cost_usd,
               "usage.input_tokens": summary.usage.input_tokens,
               "usage.output_tokens": summary.usage.output_tokens}
    for name, value in amounts.items():
        if value is None:
            continue
        if not math.isfinite(value):
            raise Problem(f"{name} must be a finite number, got {value}", field=name)
        if value < 0:
            raise Problem(f"{name} must not be negative, got {value}", field=name)


def _identifier(row: Mapping[str, Any], name: str, *, allow_int: bool = True) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Problem(f"missing {name}", field=name)
    if isinstance(value, int) and not isinstance(value, bool) and allow_int:
        return str(value)
    if not isinstance(value, str):
        kind = "a string or an integer" if allow_int else "a string"
        raise Problem(f"{name} must be {kind}, got {json_type(value)}", field=name)
    return value


def _require_text(row: Mapping[str, Any], *, allow_empty: bool) -> None:
    text = row.get("text")
    if text is not None and not isinstance(text, str):
        raise Problem(f"text must be a string, got {json_type(text)}", field="text")
    if allow_empty:
        return
    if text is None or not text.strip():
        raise Problem("missing text" if "text" not in row else "text is empty", field="text")


def _without_nulls(row: Mapping[str, Any], keep: Sequence[str]) -> dict[str, Any]:
    """Absent and null mean the same for optional fields (CSV has no other way to say it)."""
    return {name: value for name, value in row.items() if value is not None or name in keep}


def _validate(model: type[R], row: dict[str, Any]) -> R:
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        got = "" if first["type"] == "missing" else f", got {json_type(first.get('input'))}"
        raise Problem(f"{first['msg']}{got}{more}", field=where) from None
