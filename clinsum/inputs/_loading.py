"""A file's records loaded, checked or streamed, every bad record found.

The last step of reading (``clinsum.inputs``): rows (``_formats``) made records
(``_fields``), a record whose id was seen before refused as a duplicate. Without
``skip_invalid`` every bad record is found and one ``InvalidRecords`` lists them all;
with it, they are returned in ``skipped`` and the good ones kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic

from clinsum.errors import InputError
from clinsum.inputs._fields import R, note_from_row, note_rows, summary_from_row, summary_rows
from clinsum.inputs._formats import Problem, Row
from clinsum.records import Note, Summary

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



def load_notes(path: Path | str, *, skip_invalid: bool = False) -> Loaded[Note]:
    """Read notes from JSONL, CSV, a ``.txt`` file or a folder of ``.txt`` files."""
    path = Path(path)
    return _collect(path, note_rows(path), note_from_row, _note_key, skip_invalid, what="notes")


def load_summaries(path: Path | str, *, skip_invalid: bool = False) -> Loaded[Summary]:
    """Read summaries made elsewhere from JSONL or CSV: ``{"note_id", "system", "text", ...}``."""
    path = Path(path)
    return _collect(path, summary_rows(path), summary_from_row, _summary_key,
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
    return _check(path, note_rows(path), note_from_row, _note_key, skip_invalid, what="notes")


def check_summaries(path: Path | str, *, skip_invalid: bool = False) -> Checked:
    path = Path(path)
    return _check(path, summary_rows(path), summary_from_row, _summary_key,
                  skip_invalid, what="summaries")


def iter_notes(path: Path | str) -> Iterator[Note]:
    """The good notes of a file, read as they are needed (bad and repeated records are left out:
    run ``check_notes`` first to report them)."""
    path = Path(path)
    yield from _good(_scan(path, note_rows(path), note_from_row, _note_key, what="notes"))


def iter_summaries(path: Path | str) -> Iterator[Summary]:
    path = Path(path)
    yield from _good(_scan(path, summary_rows(path), summary_from_row, _summary_key,
                           what="summaries"))


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
            except Problem as exc:
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
