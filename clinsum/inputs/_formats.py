"""Input files read into rows: JSONL, CSV with a header, and ``.txt`` notes.

The first step of reading notes and summaries (``clinsum.inputs``): a file becomes
``(file, line, row)`` triples, a bad record becoming the ``InputError`` that names
its file, line and field, so a caller may collect it and go on. Text must be valid
UTF-8 with no lone surrogate, numbers finite; a problem with the file as a whole
(missing, a JSON array, a bad CSV header, broken CSV quoting) raises at once.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from clinsum.errors import InputError

_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_CSV_OBJECT_COLUMNS = ("meta", "usage", "metadata")
_CSV_LIST_COLUMNS = ("key_concepts",)
# Bytes that are not UTF-8 decode (with "surrogateescape") to these code points.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# Any surrogate code point in a decoded JSON string: a "\\ud800"-style escape with no partner.
_SURROGATE = re.compile("[\ud800-\udfff]")


class Source:
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
    def read(cls, path: Path) -> Source:
        try:
            return cls(path, path.read_bytes())
        except OSError as exc:
            raise unreadable(path, exc) from None

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


def unreadable(path: Path, exc: OSError) -> InputError:
    """The error for a file that cannot be opened, in the user's words."""
    if isinstance(exc, FileNotFoundError):
        return InputError("file not found", path=str(path))
    if isinstance(exc, IsADirectoryError):
        return InputError("is a folder, expected a file", path=str(path))
    return InputError(f"cannot read: {exc.strerror}", path=str(path))


class Problem(Exception):
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
        return _csv_rows(Source.read(path), allowed)
    raise InputError(f"unsupported file type '{suffix or path.name}'; use .jsonl or .csv",
                     path=str(path))


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, what is wrong with its bytes or None), read a line at a time.

    A JSONL file is never held whole: a file of a million notes streams through
    in the memory of its longest line.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise unreadable(path, exc) from None
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
        except Problem as exc:
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
            yield path, number, InputError(f"expected a JSON object, got {json_type(row)}",
                                           path=path, line=number)
        elif bad_byte:
            yield path, number, InputError(bad_byte, path=path, line=number, field=_field_with_bad_byte(row))
        elif (surrogate := _lone_surrogate(row)) is not None:
            yield path, number, InputError(surrogate.message, path=path, line=number, field=surrogate.field)
        else:
            yield path, number, row


def _refuse_constant(name: str) -> float:
    raise Problem(f"{name} is not a number clinsum accepts: values must be finite")


def _lone_surrogate(value: Any, where: str = "") -> Problem | None:
    """A string (or key) anywhere in a decoded row holding a surrogate code point: invalid Unicode."""
    if isinstance(value, str):
        match = _SURROGATE.search(value)
        if match is None:
            return None
        return Problem(f"invalid Unicode: a lone surrogate \\u{ord(match.group()):04x} (character "
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


def _csv_rows(source: Source, allowed: Sequence[str] | None) -> Iterator[Row]:
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
            check_fields(dict.fromkeys(columns), allowed)
        except Problem as exc:
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
        except Problem as exc:
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
        except Problem as exc:
            raise Problem(exc.message, field=name) from None
        except json.JSONDecodeError as exc:
            raise Problem(f"expected a JSON object in the cell: {exc.msg}", field=name) from None
        if not isinstance(value, dict):
            raise Problem(f"expected a JSON object in the cell, got {json_type(value)}", field=name)
        row[name] = value
    for name in _CSV_LIST_COLUMNS:
        cell = row.get(name)
        if cell is None:
            continue
        if cell.lstrip().startswith("["):
            try:
                row[name] = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise Problem(f"invalid JSON list in the cell: {exc.msg}", field=name) from None
        else:
            row[name] = [item.strip() for item in cell.split(";") if item.strip()]
    return row


def json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)



def text_file_rows(path: Path) -> Iterator[Row]:
    """A folder of ``.txt`` notes (sorted, hidden files skipped), or one ``.txt`` file."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.suffix.lower() == ".txt" and not p.name.startswith(".") and p.is_file())
        if not files:
            raise InputError("folder holds no .txt notes", path=str(path))
    else:
        files = [path]
    for file in files:
        source = Source.read(file)
        for number in range(1, len(source.lines) + 1):
            bad_byte = source.bad_byte(number, number)
            if bad_byte:
                yield str(file), number, InputError(bad_byte, path=str(file), line=number, field="text")
                break
        else:
            yield str(file), 1, {"id": file.stem, "text": source.text}



def check_fields(row: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = [name for name in row if name not in allowed]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise Problem(f"unknown field{'s' if len(unknown) > 1 else ''} {names}; allowed fields: "
                      f"{', '.join(allowed)}", field=unknown[0])
