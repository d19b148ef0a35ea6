"""How the store keeps records compact: notes once by content, JSON compressed where it pays.

A store holds every note a run used, every summary and every score detail; kept as
plain JSON they took 5× the bytes of the input files, most of it the same notes
stored again by each run and the same concept names repeated across one summary's
scores. Here:

- a note is stored once, keyed by a hash of its record (``note_hash``), and shared
  by every run that uses it; a run lists its notes by id, position and hash, so a
  team that must not keep note text can store the hashes alone;
- a summary record and a score's detail are zlib-compressed JSON when that is
  smaller (``pack``); short values stay plain text, readable in ``sqlite3``;
- a score's other fields (note, system, metric, value, evaluator, version) are the
  row's own columns, not repeated in a JSON record, and whether it records a failed
  evaluation is a column (``failed``) so that SQL can count failures without
  reading the detail.

``m004_compact`` (migration 5) brings a store of schema 4 to this layout.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from collections.abc import Iterator
from typing import Any

import pydantic_core

COMPRESS_ABOVE = 64
"""Bytes of JSON below which compression is not tried (zlib's header would eat the gain)."""


def pack(text: str) -> str | bytes:
    """``text`` as it is best stored: zlib-compressed bytes when smaller, else the text itself."""
    data = text.encode("utf-8")
    if len(data) <= COMPRESS_ABOVE:
        return text
    packed = zlib.compress(data, 6)
    return packed if len(packed) < len(data) else text


def unpack(value: str | bytes) -> str:
    return zlib.decompress(value).decode("utf-8") if isinstance(value, bytes) else value


def note_hash(record_json: str) -> str:
    """The key a note is stored under: the first 128 bits of SHA-256 of its JSON record."""
    return hashlib.sha256(record_json.encode("utf-8")).hexdigest()[:32]


def pack_detail(detail: dict[str, Any]) -> str | bytes | None:
    """A score's detail as stored (None when empty); invalid Unicode becomes U+FFFD."""
    if not detail:
        return None
    try:
        text = pydantic_core.to_json(detail).decode("utf-8")
    except (pydantic_core.PydanticSerializationError, UnicodeEncodeError):
        from clinsum.store import valid_unicode

        text = pydantic_core.to_json(valid_unicode(detail)).decode("utf-8")
    return pack(text)


def unpack_detail(value: str | bytes | None) -> dict[str, Any]:
    if value is None:
        return {}
    detail: dict[str, Any] = pydantic_core.from_json(unpack(value))
    return detail


_OLD_FAILED_SCORE = (
    "(substr(metric, -6) = '_error' OR json_extract(record, '$.detail.failed') IS 1 "
    "OR EXISTS (SELECT 1 FROM json_each(record, '$.detail.judges') AS j "
    "WHERE json_type(j.value, '$.failures') = 'array'))")
"""How schema 3 found a failed score in its JSON record (``is_failure`` in SQL)."""


def m004_compact(db: sqlite3.Connection) -> None:
    """Schema 3 → 4: notes by content hash, compressed summaries, scores as columns + packed detail."""
    db.execute("CREATE TABLE note_texts (hash TEXT PRIMARY KEY, record BLOB NOT NULL)")
    db.execute("CREATE TABLE run_notes (run_id TEXT NOT NULL REFERENCES runs(id), id TEXT NOT NULL, "
               "position INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (run_id, id)) WITHOUT ROWID")
    for run_id, note_id, position, record in db.execute("SELECT run_id, id, position, record FROM notes"):
        key = note_hash(record)
        db.execute("INSERT OR IGNORE INTO note_texts (hash, record) VALUES (?, ?)", (key, pack(record)))
        db.execute("INSERT INTO run_notes (run_id, id, position, hash) VALUES (?, ?, ?, ?)",
                   (run_id, note_id, position, key))
    db.execute("DROP TABLE notes")
    db.execute("ALTER TABLE run_notes RENAME TO notes")
    db.execute("CREATE INDEX notes_by_position ON notes (run_id, position)")

    for rowid, record in _pages(db, "summaries", "record"):
        db.execute("UPDATE summaries SET record = ? WHERE rowid = ?", (pack(record), rowid))

    db.execute("ALTER TABLE scores ADD COLUMN failed INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE scores ADD COLUMN detail BLOB")
    db.execute(f"UPDATE scores SET failed = {_OLD_FAILED_SCORE}")
    for rowid, record in _pages(db, "scores", "record"):
        detail = pydantic_core.from_json(record).get("detail") or {}
        db.execute("UPDATE scores SET detail = ? WHERE rowid = ?", (pack_detail(detail), rowid))
    db.execute("DROP INDEX IF EXISTS scores_by_metric")
    db.execute("ALTER TABLE scores DROP COLUMN record")


def _pages(db: sqlite3.Connection, table: str, column: str, size: int = 2000) -> Iterator[tuple[int, Any]]:
    """(rowid, value) of every row, a page at a time (a large store is never read whole)."""
    last = 0
    while True:
        rows = db.execute(f"SELECT rowid, {column} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                          (last, size)).fetchall()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]
