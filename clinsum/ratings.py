"""Physician feedback files: reading them, and tying each rating to the summary it rates.

A rating rates one stored summary, named by ``run_id`` + ``note_id`` + ``system``
(the store's key of a summary). ``load_ratings`` reads a feedback file;
``tie_to_summaries`` gives every rating without a ``run_id`` the one run that holds
its note and system (or ``--run``), refusing a pair that several runs hold;
``clinsum.feedback.agreement_report`` joins ratings with the scores of the
summaries they rate.

Three row shapes, JSONL or CSV, mixed freely in a JSONL file:

Rating, one number a row (``run_id`` and ``rated_at`` optional)::

    {"run_id": "r-1", "note_id": "n1", "system": "production", "rater": "dr-a",
     "dimension": "accurate", "value": 4, "comment": "missed the penicillin allergy"}

Wide (``dimension_columns``), one summary a row and one column per dimension::

    run_id,note_id,system,rater,accurate,thorough,unsafe
    r-1,n1,production,dr-a,4,3,false

Review, one reviewed summary a row (recognised by its ``reviewer`` field)::

    {"run_id": "r-1", "note_id": "n1", "system": "production", "reviewer": "dr-a",
     "reviewed_at": "2026-03-02T09:14:00Z", "verdict": "reject",
     "errors": ["omission", "negation"], "ratings": {"accurate": 2, "thorough": 3}}

In a CSV review the ratings are columns named after the rubric's attributes and
``errors`` is one cell, categories separated by ``;``. A review becomes ratings:
one per rubric attribute (whole numbers on the rubric's 1-5 scale), ``accepted``
(1 accept, 0 reject), ``errors`` (how many categories; present whenever the row
has an ``errors`` field, so an empty list records "no error") and
``error:CATEGORY`` = 1 per category named.

``value`` is a number; ``true``/``false`` (JSON booleans, or those words in a CSV
cell) are read as 1 and 0, for binary judgements such as "unsafe". In the wide
format an empty cell means "not rated on this dimension". Every problem is an
``InputError`` naming the file, the line and the field; with ``skip_invalid`` bad
rows are collected in ``Loaded.skipped`` and the good ones kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from clinsum.errors import InputError
from clinsum.inputs import Loaded, raise_invalid, rows_or_errors
from clinsum.records import Rating

RATING_FIELDS = ("run_id", "note_id", "system", "rater", "dimension", "value", "comment", "rated_at",
                 "schema_version")
REVIEW_FIELDS = ("run_id", "note_id", "system", "reviewer", "reviewed_at", "verdict", "errors", "ratings",
                 "comment")
ACCEPTED, ERRORS, ERROR_PREFIX = "accepted", "errors", "error:"
"""Dimensions a review is stored under: verdict (1 accept, 0 reject), error count, one per category."""
RUBRIC_SCALE = (1, 5)
_KEY_FIELDS = ("note_id", "system", "rater")
_TRUE, _FALSE = {"true", "yes"}, {"false", "no"}

SummaryKey = tuple[str, str, str]
"""(run_id, note_id, system): one stored summary."""


class _BadField(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class _Row:
    """The ratings one line of a feedback file gave, with where the line is."""

    file: str
    line: int
    ratings: list[Rating]


def load_ratings(path: Path | str, *, skip_invalid: bool = False,
                 dimension_columns: Sequence[str] | None = None,
                 attributes: Sequence[str] | None = None) -> Loaded[Rating]:
    """Read ratings and reviews from a JSONL or CSV file (see the module docstring).

    ``attributes`` are the rubric's attribute names a review may rate (the packaged
    PDSQI-9 rubric's by default). The same (run, note, system, rater, dimension)
    twice in one file is an error: the store keeps one rating per key, and a silent
    last-wins would hide a mistake.
    """
    rows, skipped = _read(Path(path), skip_invalid, dimension_columns, attributes)
    return Loaded(records=[r for row in rows for r in row.ratings], skipped=skipped)


def tie_to_summaries(path: Path | str, held: Mapping[tuple[str, str], Sequence[str]], *,
                     run: str | None = None, skip_invalid: bool = False,
                     dimension_columns: Sequence[str] | None = None,
                     attributes: Sequence[str] | None = None) -> Loaded[Rating]:
    """Read a feedback file and tie every rating to the stored summary it rates.

    ``held`` maps (note_id, system) to the runs that hold that summary
    (``Store.runs_holding``). A row's ``run_id`` must name one of them; a row without
    one takes ``run`` (``--run``) when given, else the only run holding its note and
    system. A pair no run holds, or several runs hold, is an error on that row:
    guessing would attach a physician's verdict to another summary.
    """
    rows, skipped = _read(Path(path), skip_invalid, dimension_columns, attributes)
    tied: list[Rating] = []
    untied: list[InputError] = []
    for row in rows:
        try:
            tied.extend(_tie(row, held, run))
        except _BadField as exc:
            untied.append(InputError(exc.message, path=row.file, line=row.line, field=exc.field))
    if untied and not skip_invalid:
        raise_invalid(path, "ratings", untied)
    return Loaded(records=tied, skipped=sorted([*skipped, *untied], key=lambda e: e.line or 0))


def _tie(row: _Row, held: Mapping[tuple[str, str], Sequence[str]], run: str | None) -> list[Rating]:
    first = row.ratings[0]
    runs = held.get((first.note_id, first.system), [])
    given = first.run_id or run
    if first.run_id and run and first.run_id != run:
        raise _BadField(f"run_id {first.run_id!r} differs from --run {run!r}", "run_id")
    if given is not None:
        if given not in runs:
            raise _BadField(f"run {given!r} holds no summary of note {first.note_id!r} by system "
                            f"{first.system!r}" + (f" (runs that do: {', '.join(runs)})" if runs else ""),
                            "run_id")
        chosen = given
    elif len(runs) == 1:
        chosen = runs[0]
    elif not runs:
        raise _BadField(f"no stored summary of note {first.note_id!r} by system {first.system!r}: "
                        "score the summaries first (`clinsum score`), or check the ids", "note_id")
    else:
        raise _BadField(f"note {first.note_id!r} by system {first.system!r} is in {len(runs)} runs "
                        f"({', '.join(runs)}): say which with a run_id column or --run", "run_id")
    return [r.model_copy(update={"run_id": chosen}) for r in row.ratings]


def _read(path: Path, skip_invalid: bool, dimension_columns: Sequence[str] | None,
          attributes: Sequence[str] | None) -> tuple[list[_Row], list[InputError]]:
    wide = list(dimension_columns or [])
    rows: list[_Row] = []
    skipped: list[InputError] = []
    first_line: dict[tuple[str | None, str, str, str, str], int] = {}
    seen_rows = False
    names = list(attributes) if attributes is not None else _rubric_attributes()
    allowed = dict.fromkeys([*RATING_FIELDS, *REVIEW_FIELDS, *names, *wide])  # a CSV header outside it is refused
    for file, line, row in rows_or_errors(path, list(allowed)):
        seen_rows = True
        try:
            if isinstance(row, InputError):
                raise row
            built = _parse(row, wide, names)
            for rating in built:
                key = (rating.run_id, rating.note_id, rating.system, rating.rater, rating.dimension)
                if key in first_line:
                    raise _BadField(
                        f"duplicate rating for note_id {key[1]!r}, system {key[2]!r}, rater {key[3]!r}, "
                        f"dimension {key[4]!r}, first at line {first_line[key]}",
                        "dimension" if not wide else key[4])
        except _BadField as exc:
            skipped.append(InputError(exc.message, path=file, line=line, field=exc.field))
            continue
        except InputError as exc:
            skipped.append(exc)
            continue
        for rating in built:
            first_line[(rating.run_id, rating.note_id, rating.system, rating.rater, rating.dimension)] = line
        rows.append(_Row(file, line, built))
    if not seen_rows:
        raise InputError("holds no ratings", path=str(path))
    if skipped and not skip_invalid:
        raise_invalid(path, "ratings", skipped)
    return rows, skipped


def _parse(row: dict[str, Any], wide: Sequence[str], attributes: Sequence[str]) -> list[Rating]:
    if "reviewer" in row:
        return _review(row, attributes)
    return _wide_ratings(row, wide) if wide else [_rating(row)]


def _rating(row: dict[str, Any]) -> Rating:
    unknown = [name for name in row if name not in RATING_FIELDS]
    if unknown:
        raise _BadField(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(RATING_FIELDS)} "
                        "(for one column per dimension, use --dimension-columns; for a review "
                        "with verdict and errors, a reviewer column)", unknown[0])
    fields = {name: _identifier(row, name) for name in (*_KEY_FIELDS, "dimension")}
    value = _value(row.get("value"), "value")
    _check_scale(fields["dimension"], value, "value")
    return _build(fields, value, _comment(row), _summary_run(row), _timestamp(row, "rated_at"))


def _wide_ratings(row: dict[str, Any], dimensions: Sequence[str]) -> list[Rating]:
    allowed = {*_KEY_FIELDS, "run_id", "rated_at", "comment", "schema_version", *dimensions}
    unknown = [name for name in row if name not in allowed]
    if unknown:
        raise _BadField(f"unknown field {unknown[0]!r}; the dimension columns are {', '.join(dimensions)}",
                        unknown[0])
    fields = {name: _identifier(row, name) for name in _KEY_FIELDS}
    comment, run_id, when = _comment(row), _summary_run(row), _timestamp(row, "rated_at")
    built = [_build({**fields, "dimension": dimension}, _scaled(dimension, row[dimension]), comment, run_id, when)
             for dimension in dimensions if _present(row.get(dimension))]
    if not built:
        raise _BadField(f"no value in any of the dimension columns {', '.join(dimensions)}",
                        dimensions[0])
    return built


def _review(row: dict[str, Any], names: Sequence[str]) -> list[Rating]:
    """One reviewed summary: its rubric ratings, verdict and error categories, as ratings."""
    columns = [name for name in row if name not in REVIEW_FIELDS and name != "schema_version"]
    for name in columns:
        if name not in names:
            raise _BadField(f"unknown field {name!r}: a review's rating columns are the rubric's "
                            f"attributes ({', '.join(names)}); other fields: {', '.join(REVIEW_FIELDS)}", name)
    fields = {"note_id": _identifier(row, "note_id"), "system": _identifier(row, "system"),
              "rater": _identifier(row, "reviewer")}
    given = row.get("ratings")
    if given is not None and not isinstance(given, dict):
        raise _BadField("ratings must be an object of attribute: score", "ratings")
    values: dict[str, float] = {}
    for name, value in (given.items() if isinstance(given, dict) else ((c, row[c]) for c in columns)):
        where = f"ratings.{name}" if given is not None else name
        if name not in names:
            raise _BadField(f"{name!r} is not an attribute of the rubric ({', '.join(names)})", where)
        if _present(value):
            values[name] = _on_rubric_scale(value, where)
    verdict = row.get("verdict")
    if _present(verdict):
        word = str(verdict).strip().lower()
        if word not in ("accept", "reject"):
            raise _BadField(f"verdict must be accept or reject, got {verdict!r}", "verdict")
        values[ACCEPTED] = 1.0 if word == "accept" else 0.0
    if "errors" in row:
        categories = _categories(row["errors"])
        values[ERRORS] = float(len(categories))
        values.update({ERROR_PREFIX + category: 1.0 for category in categories})
    if not values:
        raise _BadField("a review needs a verdict, errors or at least one rating", "verdict")
    comment, run_id, when = _comment(row), _summary_run(row), _timestamp(row, "reviewed_at")
    return [_build({**fields, "dimension": dimension}, value, comment, run_id, when)
            for dimension, value in values.items()]


@cache
def _packaged_attributes() -> tuple[str, ...]:
    from clinsum.evaluators.judge.rubric import Rubric

    return tuple(Rubric.load().names)


def _rubric_attributes() -> list[str]:
    return list(_packaged_attributes())


def _scaled(dimension: str, value: Any) -> float:
    number = _value(value, dimension)
    _check_scale(dimension, number, dimension)
    return number


def _check_scale(dimension: str, value: float, field: str) -> None:
    """A dimension named like a rubric attribute is rated on the rubric's scale, 1 to 5.

    Not-applicable is no rating (the judge's 0 stays out of every mean, and so must a rater's).

    Other dimensions (``unsafe``, a team's own scale) take any finite number.
    """
    low, high = RUBRIC_SCALE
    if dimension in _packaged_attributes() and not low <= value <= high:
        raise _BadField(f"{dimension} is a rubric attribute rated {low} to {high}, "
                        f"got {value:g}; leave a not-applicable rating out", field)


def _on_rubric_scale(value: Any, field: str) -> float:
    number = _value(value, field)
    low, high = RUBRIC_SCALE
    if number != int(number) or not low <= number <= high:
        raise _BadField(f"rating {value!r} is not a whole number from {low} to {high} (the rubric's scale)",
                        field)
    return number


def _categories(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        parts = [part.strip() for part in value.replace(",", ";").split(";")]
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        parts = [part.strip() for part in value]
    else:
        raise _BadField("errors must be a list of category names (in a CSV cell: separated by ';')", "errors")
    categories = [part for part in parts if part]
    if len(set(categories)) != len(categories):
        raise _BadField("the same error category twice", "errors")
    return categories


def _build(fields: dict[str, str], value: float, comment: str | None, run_id: str | None,
           rated_at: str | None) -> Rating:
    try:
        return Rating(note_id=fields["note_id"], system=fields["system"], rater=fields["rater"],
                      dimension=fields["dimension"], value=value, comment=comment, run_id=run_id,
                      rated_at=rated_at)
    except ValidationError as exc:  # unreachable with checked fields; kept as a clear error
        first = exc.errors()[0]
        raise _BadField(first["msg"], ".".join(str(p) for p in first["loc"])) from None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _identifier(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if not _present(value):
        raise _BadField(f"missing {name}" if value is None else f"{name} is empty", name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _BadField(f"{name} must be a string, got {type(value).__name__}", name)
    return str(value).strip()


def _summary_run(row: dict[str, Any]) -> str | None:
    return _identifier(row, "run_id") if _present(row.get("run_id")) else None


def _timestamp(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if not _present(value):
        return None
    if not isinstance(value, str):
        raise _BadField(f"{name} must be an ISO 8601 date-time string, got {type(value).__name__}", name)
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        raise _BadField(f"{name} {value!r} is not an ISO 8601 date-time (2026-03-02T09:14:00Z)", name) from None
    return value.strip()


def _value(value: Any, field: str) -> float:
    if not _present(value):
        raise _BadField("missing value", field)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE | _FALSE:
            return 1.0 if word in _TRUE else 0.0
        try:
            number = float(word)
        except ValueError:
            raise _BadField(f"value {value!r} is not a number (or true/false)", field) from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise _BadField(f"value must be a number, got {type(value).__name__}", field)
    if not math.isfinite(number):
        raise _BadField(f"value {value!r} is not a finite number", field)
    return number


def _comment(row: dict[str, Any]) -> str | None:
    comment = row.get("comment")
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise _BadField(f"comment must be a string, got {type(comment).__name__}", "comment")
    return comment.strip() or None
