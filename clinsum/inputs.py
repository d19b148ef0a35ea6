"""Reading notes and summaries from files (writing outputs: ``clinsum.outputs``, re-exported here).

Formats read:

- JSONL (``.jsonl``, ``.ndjson``, ``.json`` holding one object a line);
- CSV with a header row (``.csv``); empty cells mean "absent", and the cells
  ``meta``, ``metadata`` and ``usage`` hold a JSON object, ``key_concepts`` a JSON list or a
  ``;``-separated list;
- for notes only, a folder of ``.txt`` files (or one ``.txt`` file), the id
  being the file stem.

Every problem is an :class:`~clinsum.errors.InputError` that names the file, the
line as an editor shows it (the CSV header is line 1) and, where there is one,
the field. Without ``skip_invalid`` every bad record is found and one
:class:`InvalidRecords` lists them all (the first ``SHOWN_PROBLEMS`` in its
message, with the count) and nothing is returned; with it, bad records are
collected in ``Loaded.skipped`` and the good ones are kept. Problems with the
file as a whole (missing, unknown columns in a CSV header, broken CSV quoting)
always raise at once.

Text must be valid Unicode: a byte that is not UTF-8, or a lone surrogate
written as a JSON escape (``"\\ud800"``, which ``json.loads`` accepts but no
UTF-8 file, store or terminal can hold), is an error naming the field, never
replaced silently. Numbers must be finite: JSON's ``NaN`` and ``Infinity`` are
refused wherever they appear, and a summary's latency, cost and token counts
must not be negative. An empty or blank summary is data (models do return empty
text) and is kept; a note must have text, since there is nothing to summarize
without it.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from clinsum.errors import InputError
from clinsum.outputs import atomic_output, format_csv, spreadsheet_safe, write_csv, write_jsonl
from clinsum.records import Note, Record, Summary

__all__ = [
    "NOTE_FIELDS",
    "SHOWN_PROBLEMS",
    "SUMMARY_FIELDS",
    "Checked",
    "InvalidRecords",
    "Loaded",
    "atomic_output",
    "check_notes",
    "check_summaries",
    "format_csv",
    "iter_notes",
    "iter_summaries",
    "load_notes",
    "load_summaries",
    "raise_invalid",
    "read_rows",
    "spreadsheet_safe",
    "write_csv",
    "write_jsonl",
]

R = TypeVar("R", bound=Record)

NOTE_FIELDS = ("id", "text", "reference", "key_concepts", "meta", "schema_version")
SUMMARY_FIELDS = ("note_id", "system", "text", "usage", "latency_s", "error", "request_id",
                  "prompt_version", "created_at", "metadata", "schema_version")

_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_CSV_OBJECT_COLUMNS = ("meta", "usage", "metadata")
_CSV_LIST_COLUMNS = ("key_concepts",)
# Bytes that are not UTF-8 decode (with "surrogateescape") to these code points.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# Any surrogate code point in a decoded JSON string: a "\\ud800"-style escape with no partner.
_SURROGATE = re.compile("[\ud800-\udfff]")
SHOWN_PROBLEMS = 20
"""Bad records listed in an :class:`InvalidRecords` message; the rest are counted."""


class InvalidRecords(InputError):
    """A file with several bad records (one alone is raised as itself).

    Every one is in ``problems``; ``path``, ``line`` and ``field`` are those of the
    first, and the message lists the first ``SHOWN_PROBLEMS`` with the count.
    """

    def __init__(self, path: str, what: str, problems: Sequence[InputError]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        shown = self.problems[:SHOWN_PROBLEMS]
        more = len(self.problems) - len(shown)
        lines = [f"{len(self.problems)} invalid {what} (nothing was loaded; --skip-invalid keeps "
                 "the good ones):", *(f"  {problem}" for problem in shown)]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines), path=path)
        self.line, self.field = first.line, first.field


@dataclass(frozen=True)
class Loaded(Generic[R]):
    """Records read from a file, and the bad records that were skipped."""

    records: list[R]
    skipped: list[InputError] = field(default_factory=list)


# -- decoding ------------------------------------------------------------------------------


class _Source:
    """A file's text, split into editor lines, remembering where bytes were not UTF-8.

    Bad bytes are kept as surrogates so that one bad line does not stop the
    others from being read; each record that touches a bad line is refused with
    the byte, its offset in the file, and its line and column.
    """

    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        self.text = data[self.bom:].decode("utf-8", errors="surrogateescape")
        self.lines = self.text.split("\n")
        self.has_bad_bytes = _UNDECODABLE.search(self.text) is not None

    @classmethod
    def read(cls, path: Path) -> _Source:
        try:
            return cls(path, path.read_bytes())
        except FileNotFoundError:
            raise InputError("file not found", path=str(path)) from None
        except IsADirectoryError:
            raise InputError("is a folder, expected a file", path=str(path)) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None

    def bad_byte(self, first_line: int, last_line: int) -> str | None:
        """Describe the first non-UTF-8 byte on lines first..last (1-based), if any."""
        if not self.has_bad_bytes:
            return None
        for number in range(first_line, min(last_line, len(self.lines)) + 1):
            line = self.lines[number - 1]
            match = _UNDECODABLE.search(line)
            if match is None:
                continue
            before = sum(len(_bytes(text)) + 1 for text in self.lines[: number - 1])
            offset = self.bom + before + len(_bytes(line[: match.start()]))
            byte = ord(match.group()) - 0xDC00
            return (f"byte 0x{byte:02x} at byte offset {offset} (line {number}, column "
                    f"{match.start() + 1}) is not valid UTF-8; save the file as UTF-8")
        return None


class _Problem(Exception):
    """A bad record, before the file and line are known (they are added by the caller)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _field_with_bad_byte(row: Mapping[str, Any]) -> str | None:
    for key, value in row.items():
        if _UNDECODABLE.search(json.dumps(value, ensure_ascii=False)):
            return key
    return None


# -- rows ----------------------------------------------------------------------------------

# (file, line, row or the error that replaced it); the file differs per row in a .txt folder.
Row = tuple[str, int, "dict[str, Any] | InputError"]


def read_rows(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)`` for each record of a JSONL or CSV file.

    Raises :class:`InputError` (file, line, field) at the first bad record.
    """
    for _, line, row in rows_or_errors(Path(path)):
        if isinstance(row, InputError):
            raise row
        yield line, row


def rows_or_errors(path: Path, allowed: Sequence[str] | None = None) -> Iterator[Row]:
    """Rows with bad records yielded as errors (so a caller may skip them).

    ``allowed`` lists the known fields: a CSV header with another column is
    refused as a whole, since every row would carry it.
    """
    suffix = path.suffix.lower()
    if path.is_dir():
        raise InputError("is a folder, expected a .jsonl or .csv file", path=str(path))
    if suffix in _JSONL_SUFFIXES:
        return _jsonl_rows(path)
    if suffix == ".csv":
        return _csv_rows(_Source.read(path), allowed)
    raise InputError(f"unsupported file type '{suffix or path.name}'; use .jsonl or .csv",
                     path=str(path))


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, what is wrong with its bytes or None), read a line at a time.

    A JSONL file is never held whole: a file of a million notes streams through
    in the memory of its longest line.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, expected a file", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None
    with handle:
        offset = 0
        for number, raw in enumerate(handle, start=1):
            data = raw[len(codecs.BOM_UTF8):] if number == 1 and raw.startswith(codecs.BOM_UTF8) else raw
            start = offset + len(raw) - len(data)
            offset += len(raw)
            line = data.decode("utf-8", errors="surrogateescape").rstrip("\n")
            match = _UNDECODABLE.search(line)
            bad = None
            if match is not None:
                at = start + len(_bytes(line[: match.start()]))
                bad = (f"byte 0x{ord(match.group()) - 0xDC00:02x} at byte offset {at} (line {number}, column "
                       f"{match.start() + 1}) is not valid UTF-8; save the file as UTF-8")
            yield number, line, bad


def _jsonl_rows(source: Path) -> Iterator[Row]:
    path = str(source)
    first_record = True
    for number, line, bad_byte in _jsonl_lines(source):
        if not line.strip():
            continue
        at_start, first_record = first_record, False
        try:
            row = json.loads(line, parse_constant=_refuse_constant)
        except _Problem as exc:
            yield path, number, InputError(exc.message, path=path, line=number)
            continue
        except json.JSONDecodeError as exc:
            if bad_byte:
                yield path, number, InputError(bad_byte, path=path, line=number)
            elif at_start and line.lstrip().startswith("["):
                raise InputError(_JSON_ARRAY, path=path, line=number) from None
            else:
                yield path, number, InputError(f"invalid JSON: {exc.msg} (column {exc.colno})",
                                               path=path, line=number)
            continue
        if at_start and isinstance(row, list):
            raise InputError(_JSON_ARRAY, path=path, line=number)
        if not isinstance(row, dict):
            yield path, number, InputError(f"expected a JSON object, got {_json_type(row)}",
                                           path=path, line=number)
        elif bad_byte:
            yield path, number, InputError(bad_byte, path=path, line=number, field=_field_with_bad_byte(row))
        elif (surrogate := _lone_surrogate(row)) is not None:
            yield path, number, InputError(surrogate.message, path=path, line=number, field=surrogate.field)
        else:
            yield path, number, row


def _refuse_constant(name: str) -> float:
    raise _Problem(f"{name} is not a number clinsum accepts: values must be finite")


def _lone_surrogate(value: Any, where: str = "") -> _Problem | None:
    """A string (or key) anywhere in a decoded row holding a surrogate code point: invalid Unicode."""
    if isinstance(value, str):
        match = _SURROGATE.search(value)
        if match is None:
            return None
        return _Problem(f"invalid Unicode: a lone surrogate \\u{ord(match.group()):04x} (character "
                        f"{match.start() + 1}), which no UTF-8 text can hold; fix the JSON escape "
                        "that produced it", field=where or None)
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            problem = _lone_surrogate(key, inner) or _lone_surrogate(item, inner)
            if problem is not None:
                return problem
    if isinstance(value, list):
        for position, item in enumerate(value):
            problem = _lone_surrogate(item, f"{where}.{position}" if where else str(position))
            if problem is not None:
                return problem
    return None


_JSON_ARRAY = "holds a JSON array; clinsum reads JSONL, one JSON object a line"


def _csv_rows(source: _Source, allowed: Sequence[str] | None) -> Iterator[Row]:
    path = str(source.path)
    lines = (text + "\n" for text in source.lines)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"invalid CSV header: {exc}", path=path, line=1) from None
    if header is None or not any(cell.strip() for cell in header):
        return
    header_bad_byte = source.bad_byte(1, reader.line_num)
    if header_bad_byte:
        raise InputError(header_bad_byte, path=path, line=1)
    columns = [cell.strip() for cell in header]
    for position, name in enumerate(columns, start=1):
        if not name:
            raise InputError(f"column {position} of the header has no name", path=path, line=1)
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        raise InputError(f"duplicate column(s) in header: {', '.join(duplicated)}", path=path, line=1)
    if allowed is not None:
        try:
            _check_fields(dict.fromkeys(columns), allowed)
        except _Problem as exc:
            raise InputError(exc.message, path=path, line=1, field=exc.field) from None
    last = reader.line_num
    while True:
        first = last + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            # Broken quoting leaves no reliable record boundary: refuse the file.
            raise InputError(f"invalid CSV: {exc}", path=path, line=first) from None
        if cells is None:
            return
        last = reader.line_num
        if not cells or not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            yield path, first, InputError(f"row has {len(cells)} cells, the header has {len(columns)}",
                                          path=path, line=first)
            continue
        row: dict[str, Any] = {name: (cell if cell.strip() else None)
                               for name, cell in zip(columns, cells, strict=True)}
        bad_byte = source.bad_byte(first, last)
        if bad_byte:
            yield path, first, InputError(bad_byte, path=path, line=first, field=_field_with_bad_byte(row))
            continue
        try:
            decoded = _decode_csv_cells(row)
        except _Problem as exc:
            yield path, first, InputError(exc.message, path=path, line=first, field=exc.field)
            continue
        yield path, first, decoded


def _decode_csv_cells(row: dict[str, Any]) -> dict[str, Any]:
    """CSV cells that hold structure: a JSON object, or a list (JSON or ``;``-separated)."""
    for name in _CSV_OBJECT_COLUMNS:
        cell = row.get(name)
        if cell is None:
            continue
        try:
            value = json.loads(cell, parse_constant=_refuse_constant)
        except _Problem as exc:
            raise _Problem(exc.message, field=name) from None
        except json.JSONDecodeError as exc:
            raise _Problem(f"expected a JSON object in the cell: {exc.msg}", field=name) from None
        if not isinstance(value, dict):
            raise _Problem(f"expected a JSON object in the cell, got {_json_type(value)}", field=name)
        row[name] = value
    for name in _CSV_LIST_COLUMNS:
        cell = row.get(name)
        if cell is None:
            continue
        if cell.lstrip().startswith("["):
            try:
                row[name] = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise _Problem(f"invalid JSON list in the cell: {exc.msg}", field=name) from None
        else:
            row[name] = [item.strip() for item in cell.split(";") if item.strip()]
    return row


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# -- records -------------------------------------------------------------------------------


def load_notes(path: Path | str, *, skip_invalid: bool = False) -> Loaded[Note]:
    """Read notes from JSONL, CSV, a ``.txt`` file or a folder of ``.txt`` files."""
    path = Path(path)
    return _collect(path, _note_rows(path), _note_from_row, _note_key, skip_invalid, what="notes")


def load_summaries(path: Path | str, *, skip_invalid: bool = False) -> Loaded[Summary]:
    """Read summaries made elsewhere from JSONL or CSV: ``{"note_id", "system", "text", ...}``."""
    path = Path(path)
    return _collect(path, rows_or_errors(path, SUMMARY_FIELDS), _summary_from_row, _summary_key,
                    skip_invalid, what="summaries")


@dataclass(frozen=True)
class Checked:
    """What a validating pass over a file found: how many good records, and the bad ones skipped."""

    count: int
    skipped: list[InputError] = field(default_factory=list)


def check_notes(path: Path | str, *, skip_invalid: bool = False) -> Checked:
    """Validate every note of a file, keeping none (``load_notes`` without the records): every bad
    record is reported before anything runs, and ``iter_notes`` then streams the good ones."""
    path = Path(path)
    return _check(path, _note_rows(path), _note_from_row, _note_key, skip_invalid, what="notes")


def check_summaries(path: Path | str, *, skip_invalid: bool = False) -> Checked:
    path = Path(path)
    return _check(path, rows_or_errors(path, SUMMARY_FIELDS), _summary_from_row, _summary_key,
                  skip_invalid, what="summaries")


def iter_notes(path: Path | str) -> Iterator[Note]:
    """The good notes of a file, read as they are needed (bad and repeated records are left out:
    run ``check_notes`` first to report them)."""
    path = Path(path)
    yield from _good(_scan(path, _note_rows(path), _note_from_row, _note_key, what="notes"))


def iter_summaries(path: Path | str) -> Iterator[Summary]:
    path = Path(path)
    yield from _good(_scan(path, rows_or_errors(path, SUMMARY_FIELDS), _summary_from_row, _summary_key,
                           what="summaries"))


def _note_rows(path: Path) -> Iterator[Row]:
    folder = path.is_dir() or path.suffix.lower() == ".txt"
    return _text_file_rows(path) if folder else rows_or_errors(path, NOTE_FIELDS)


def _note_key(note: Note) -> str:
    return note.id


def _summary_key(summary: Summary) -> tuple[str, str]:
    return summary.note_id, summary.system


def _good(scanned: Iterator[R | InputError]) -> Iterator[R]:
    for item in scanned:
        if not isinstance(item, InputError):
            yield item


def _collect(path: Path, rows: Iterator[Row], build: Callable[[dict[str, Any]], R],
             key: Callable[[R], str | tuple[str, str]], skip_invalid: bool, *, what: str) -> Loaded[R]:
    records: list[R] = []
    skipped: list[InputError] = []
    for item in _scan(path, rows, build, key, what=what):
        if isinstance(item, InputError):
            skipped.append(item)
        else:
            records.append(item)
    if skipped and not skip_invalid:
        raise_invalid(path, what, skipped)
    return Loaded(records=records, skipped=skipped)


def _check(path: Path, rows: Iterator[Row], build: Callable[[dict[str, Any]], R],
           key: Callable[[R], str | tuple[str, str]], skip_invalid: bool, *, what: str) -> Checked:
    count = 0
    skipped: list[InputError] = []
    for item in _scan(path, rows, build, key, what=what):
        if isinstance(item, InputError):
            skipped.append(item)
        else:
            count += 1
    if skipped and not skip_invalid:
        raise_invalid(path, what, skipped)
    return Checked(count=count, skipped=skipped)


def _scan(path: Path, rows: Iterator[Row], build: Callable[[dict[str, Any]], R],
          key: Callable[[R], str | tuple[str, str]], *, what: str) -> Iterator[R | InputError]:
    """Each record of a file, or the error that replaced it (duplicates included), in file order."""
    first_line: dict[str | tuple[str, str], int] = {}
    seen_any = False
    for file, line, row in rows:
        seen_any = True
        try:
            if isinstance(row, InputError):
                raise row
            try:
                record = build(row)
            except _Problem as exc:
                raise InputError(exc.message, path=file, line=line, field=exc.field) from None
            record_key = key(record)
            if record_key in first_line:
                raise InputError(_duplicate(record_key, first_line[record_key]), path=file, line=line,
                                 field="id" if isinstance(record_key, str) else "note_id")
        except InputError as exc:
            yield exc
            continue
        first_line[record_key] = line
        yield record
    if not seen_any:
        raise InputError(f"holds no {what}", path=str(path))


def raise_invalid(path: Path | str, what: str, problems: Sequence[InputError]) -> None:
    """Raise the one bad record as itself, or several as one :class:`InvalidRecords`."""
    if len(problems) == 1:
        raise problems[0]
    raise InvalidRecords(str(path), what, problems)


def _duplicate(key: str | tuple[str, str], first_line: int) -> str:
    if isinstance(key, str):
        return f"duplicate id {key!r}, first at line {first_line}"
    return f"duplicate summary for note_id {key[0]!r} and system {key[1]!r}, first at line {first_line}"


def _text_file_rows(path: Path) -> Iterator[Row]:
    """A folder of ``.txt`` notes (sorted, hidden files skipped), or one ``.txt`` file."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.suffix.lower() == ".txt" and not p.name.startswith(".") and p.is_file())
        if not files:
            raise InputError("folder holds no .txt notes", path=str(path))
    else:
        files = [path]
    for file in files:
        source = _Source.read(file)
        for number in range(1, len(source.lines) + 1):
            bad_byte = source.bad_byte(number, number)
            if bad_byte:
                yield str(file), number, InputError(bad_byte, path=str(file), line=number, field="text")
                break
        else:
            yield str(file), 1, {"id": file.stem, "text": source.text}


def _note_from_row(row: dict[str, Any]) -> Note:
    _check_fields(row, NOTE_FIELDS)
    row["id"] = _identifier(row, "id")
    _require_text(row, allow_empty=False)
    return _validate(Note, _without_nulls(row, keep=("id", "text")))


def _summary_from_row(row: dict[str, Any]) -> Summary:
    _check_fields(row, SUMMARY_FIELDS)
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
            raise _Problem(f"{name} must be a finite number, got {value}", field=name)
        if value < 0:
            raise _Problem(f"{name} must not be negative, got {value}", field=name)


def _check_fields(row: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = [name for name in row if name not in allowed]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise _Problem(f"unknown field{'s' if len(unknown) > 1 else ''} {names}; allowed fields: "
                         f"{', '.join(allowed)}", field=unknown[0])


def _identifier(row: Mapping[str, Any], name: str, *, allow_int: bool = True) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Problem(f"missing {name}", field=name)
    if isinstance(value, int) and not isinstance(value, bool) and allow_int:
        return str(value)
    if not isinstance(value, str):
        kind = "a string or an integer" if allow_int else "a string"
        raise _Problem(f"{name} must be {kind}, got {_json_type(value)}", field=name)
    return value


def _require_text(row: Mapping[str, Any], *, allow_empty: bool) -> None:
    text = row.get("text")
    if text is not None and not isinstance(text, str):
        raise _Problem(f"text must be a string, got {_json_type(text)}", field="text")
    if allow_empty:
        return
    if text is None or not text.strip():
        raise _Problem("missing text" if "text" not in row else "text is empty", field="text")


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
        got = "" if first["type"] == "missing" else f", got {_json_type(first.get('input'))}"
        raise _Problem(f"{first['msg']}{got}{more}", field=where) from None
