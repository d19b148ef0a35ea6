"""Notes and summaries in the store: read a page at a time, packed as ``clinsum.store_codec`` says.

The text half of ``clinsum.store.Store`` (mixed into it; uses its connection and writes).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pydantic_core
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from clinsum.errors import StoreError
from clinsum.records import Note, Summary
from clinsum.store_codec import pack_summary, unpack, unpack_summary
from clinsum.store_runs import _INSERT_SUMMARY, now
from clinsum.store_scores import PAGE


def as_json(record: BaseModel) -> str:
    """A record as JSON; text that is not valid Unicode (a lone surrogate in a model's answer,
    which UTF-8 cannot encode) is stored with U+FFFD in its place instead of failing the write."""
    try:
        return record.model_dump_json()
    except PydanticSerializationError:
        return type(record).model_validate(valid_unicode(record.model_dump())).model_dump_json()


def valid_unicode(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8 (lone surrogates become U+FFFD)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {valid_unicode(k): valid_unicode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_unicode(v) for v in value]
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def utc_iso(moment: datetime) -> str:
    """A time as UTC ISO 8601 text that sorts as time does; a time without a zone is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class NotesNotStored(StoreError):
    """A run made with ``store_notes = false``: its notes' text must be given again."""


class TextRecords:
    """Notes and summaries: their records, and the queries that read them in order."""

    db: sqlite3.Connection
    path: str
    _note_records: OrderedDict[tuple[str, str], str | None]
    _recent_summaries: Any

    if TYPE_CHECKING:  # provided by the other parts of Store
        def flush(self) -> None:
            ...

        def _write(self, sql: str, rows: list[tuple[Any, ...]], *, any_order: bool = False) -> None:
            ...

        def has_scores(self, run_id: str) -> bool:
            ...

    def notes(self, run_id: str) -> list[Note]:
        return list(self.iter_notes(run_id))

    def iter_notes(self, run_id: str) -> Iterator[Note]:
        """The run's notes in their order, read a page at a time."""
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT n.position, n.id, t.record FROM notes n LEFT JOIN note_texts t ON t.hash = n.hash "
                "WHERE n.run_id = ? AND n.position > ? ORDER BY n.position LIMIT ?",
                (run_id, last, PAGE)).fetchall()
            if not rows:
                return
            for _, note_id, record in rows:
                yield self._note(run_id, note_id, record)
            last = rows[-1][0]

    def note(self, run_id: str, note_id: str) -> Note:
        row = self.db.execute("SELECT t.record FROM notes n LEFT JOIN note_texts t ON t.hash = n.hash "
                              "WHERE n.run_id = ? AND n.id = ?", (run_id, note_id)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: run '{run_id}' has no note '{note_id}'")
        return self._note(run_id, note_id, row[0])

    def _note(self, run_id: str, note_id: str, record: str | bytes | None) -> Note:
        if record is None:
            raise NotesNotStored(
                f"{self.path}: the text of note '{note_id}' of run '{run_id}' is not in the store (the run "
                "was made with store_notes = false); give its notes file again")
        return Note.model_validate_json(unpack(record))

    def note_hashes(self, run_id: str) -> dict[str, str]:
        """Note id -> the hash it was stored under (to check a notes file given again)."""
        return dict(self.db.execute("SELECT id, lower(hex(hash)) FROM notes WHERE run_id = ?", (run_id,)).fetchall())

    def note_position(self, run_id: str, note_id: str) -> int:
        row = self.db.execute("SELECT position FROM notes WHERE run_id = ? AND id = ?", (run_id, note_id)).fetchone()
        return int(row[0]) if row else -1

    def notes_stored(self, run_id: str) -> bool:
        """Whether the text of every note of the run is in the store."""
        row = self.db.execute("SELECT COUNT(*) FROM notes n LEFT JOIN note_texts t ON t.hash = n.hash "
                              "WHERE n.run_id = ? AND t.hash IS NULL", (run_id,)).fetchone()
        return bool(row[0] == 0)

    def add_summary(self, run_id: str, summary: Summary) -> None:
        """Store a summary; a later attempt for the same note and system replaces a failed one."""
        self._write(_INSERT_SUMMARY, [self._summary_row(run_id, summary)], any_order=True)  # only ever inserted

    def _summary_row(self, run_id: str, summary: Summary) -> tuple[Any, ...]:
        """A summary as stored: its record deflated with its note's (when that is stored) as dictionary."""
        produced = utc_iso(summary.created_at) if summary.created_at is not None else None
        self._recent_summaries.add((run_id, summary.note_id, summary.system))
        record = pack_summary(as_json(summary), self._note_record(run_id, summary.note_id))
        return (run_id, summary.note_id, summary.system, int(summary.ok), record, now(),
                produced, json.dumps(summary.metadata, sort_keys=True) if summary.metadata else "{}")

    def _note_record(self, run_id: str, note_id: str) -> str | None:
        """The stored JSON record of a run's note (None when not stored), the last few remembered."""
        key = (run_id, note_id)
        if key not in self._note_records:
            row = self.db.execute("SELECT t.record FROM notes n JOIN note_texts t ON t.hash = n.hash "
                                  "WHERE n.run_id = ? AND n.id = ?", key).fetchone()
            self._note_records[key] = None if row is None else unpack(row[0])
            if len(self._note_records) > 16:
                self._note_records.popitem(last=False)
        return self._note_records[key]

    def _summary_of(self, record: str | bytes, note_record: str | bytes | None) -> Summary:
        return Summary.model_validate_json(unpack_summary(record, None if note_record is None else unpack(note_record)))

    def has_summary(self, run_id: str, note_id: str, system: str) -> bool:
        """Whether the store holds (or this process has queued) a summary of the note by the system."""
        if (run_id, note_id, system) in self._recent_summaries:
            return True
        return self.db.execute("SELECT 1 FROM summaries WHERE run_id = ? AND note_id = ? AND system = ?",
                               (run_id, note_id, system)).fetchone() is not None

    def summaries(self, run_id: str) -> list[Summary]:
        """The run's summaries, by system then note order."""
        self.flush()
        return [self._summary_of(r, note) for r, note in self.db.execute(
            "SELECT s.record, t.record FROM summaries s JOIN notes n ON n.run_id = s.run_id AND n.id = s.note_id "
            "LEFT JOIN note_texts t ON t.hash = n.hash WHERE s.run_id = ? ORDER BY s.system, n.position",
            (run_id,))]

    def output_tokens(self, system: str, limit: int) -> list[int]:
        """Output tokens of the latest ``limit`` successful summaries of ``system``, any run
        (what ``clinsum.costs`` expects that system to write next; latest by the second they were stored)."""
        self.flush()
        rows = self.db.execute(
            "SELECT s.record, t.record FROM (SELECT run_id, note_id, record, created_at FROM summaries "
            "WHERE system = ? AND ok = 1 ORDER BY created_at DESC, run_id DESC, note_id DESC LIMIT ?) s "
            "LEFT JOIN notes n ON n.run_id = s.run_id AND n.id = s.note_id LEFT JOIN note_texts t ON t.hash = n.hash "
            "ORDER BY s.created_at DESC, s.run_id DESC, s.note_id DESC", (system, limit))
        counts = (_output_tokens(unpack_summary(r, None if note is None else unpack(note))) for r, note in rows)
        return [c for c in counts if c is not None]

    def iter_summaries(self, run_id: str, *, failed_only: bool = False, by_system: bool = False) -> Iterator[Summary]:
        """The run's summaries, a page at a time: by note order then system (a note's summaries
        together, as scoring wants them), or with ``by_system`` in the order of ``summaries``."""
        self.flush()
        keys = "s.system, n.position" if by_system else "n.position, s.system"
        last: tuple[Any, Any] = ("", -1) if by_system else (-1, "")
        while True:
            rows = self.db.execute(
                f"SELECT {keys}, s.record, t.record FROM summaries s "
                "JOIN notes n ON n.run_id = s.run_id AND n.id = s.note_id LEFT JOIN note_texts t ON t.hash = n.hash "
                f"WHERE s.run_id = ? AND ({keys}) > (?, ?) {'AND s.ok = 0' if failed_only else ''} "
                f"ORDER BY {keys} LIMIT ?", (run_id, *last, PAGE)).fetchall()
            if not rows:
                return
            for _, _, record, note in rows:
                yield self._summary_of(record, note)
            last = rows[-1][0], rows[-1][1]

    def summary(self, run_id: str, note_id: str, system: str) -> Summary | None:
        row = self.db.execute(
            "SELECT s.record, t.record FROM summaries s LEFT JOIN notes n ON n.run_id = s.run_id AND n.id = s.note_id "
            "LEFT JOIN note_texts t ON t.hash = n.hash WHERE s.run_id = ? AND s.note_id = ? AND s.system = ?",
            (run_id, note_id, system)).fetchone()
        return None if row is None else self._summary_of(row[0], row[1])

    def has_work(self, run_id: str) -> bool:
        """Whether a run has any summary or score stored (a new run has none, so nothing to look up)."""
        self.flush()
        return self.has_scores(run_id) or self.db.execute(
            "SELECT 1 FROM summaries WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is not None

    def count_notes(self, run_id: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM notes WHERE run_id = ?", (run_id,)).fetchone()[0])

    def count_summaries(self, run_id: str) -> int:
        self.flush()
        return int(self.db.execute("SELECT COUNT(*) FROM summaries WHERE run_id = ?", (run_id,)).fetchone()[0])


def _output_tokens(record: str) -> int | None:
    """``usage.output_tokens`` of a stored summary record, read without validating the whole record
    (a thousand a summarizer for each cost estimate); anything but a count is None, as a missing one is."""
    fields = pydantic_core.from_json(record)
    usage = fields.get("usage") if isinstance(fields, dict) else None
    count = usage.get("output_tokens") if isinstance(usage, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None
