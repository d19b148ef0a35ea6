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

Since migration 8 (``clinsum.store_scores``), two further codecs, told apart from zlib's
streams (first byte 0x78) by their first byte:

- ``0x01``: a note, raw deflate with a preset dictionary shipped in the package
  (``store_notes_v1.zdict``, text that recurs across ACI-Bench's train notes, built by
  ``scripts/build_note_dictionary.py``, followed by the JSON of an empty note record):
  754 bytes instead of 1,296 with zlib alone, on visit notes the dictionary never saw.
  The file is frozen (its SHA-256 is checked): a new dictionary is a new marker, never
  an edit;
- ``0x02``: a summary, raw deflate with its note's stored record as the dictionary
  (after ``SUMMARY_SKELETON``, the JSON of an empty summary record):
  a summary repeats its note's words, so it takes a fraction of its bytes. Reading it
  needs that note, which stays in ``note_texts`` (never deleted); a run that keeps no
  note text (``store_notes = false``) stores its summaries with plain zlib.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic_core

from clinsum.errors import StoreError

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
    """A stored text as it was written (a summary packed with its note needs ``unpack_summary``)."""
    if not isinstance(value, bytes):
        return value
    if value[:1] == _WITH_NOTES_DICTIONARY:
        return _inflate(value[1:], notes_dictionary())
    if value[:1] == _WITH_ITS_NOTE:
        raise StoreError("a summary packed with its note's text is read with unpack_summary")
    return zlib.decompress(value).decode("utf-8")


NOTES_DICTIONARY = Path(__file__).with_name("store_notes_v1.zdict")
NOTES_DICTIONARY_SHA256 = "8eab1a07344029b8d7c3a2b66711f316101e41cc67968c7f70ef7e6ec0a7b4d8"
"""The bytes every note packed with marker 0x01 needs to be read again: never change them."""

SUMMARY_SKELETON = (
    b'{"schema_version":1,"note_id":"","system":"","text":"","usage":{"schema_version":1,"input_tokens":null,'
    b'"output_tokens":null,"cost_usd":null},"latency_s":null,"error":null,"request_id":null,"prompt_version":null,'
    b'"created_at":null,"metadata":{}}')
"""Part of the dictionary of marker 0x02: frozen like the notes dictionary."""

_WITH_NOTES_DICTIONARY = b"\x01"
_WITH_ITS_NOTE = b"\x02"


NOTE_SKELETON = b'{"schema_version":1,"id":"","text":"","reference":null,"key_concepts":null,"meta":{}}'
"""The JSON of an empty note record, last in the dictionary of marker 0x01: frozen with it."""


@functools.cache
def notes_dictionary() -> bytes:
    """The dictionary of marker 0x01: the shipped file, then ``NOTE_SKELETON``."""
    data = NOTES_DICTIONARY.read_bytes()
    if hashlib.sha256(data).hexdigest() != NOTES_DICTIONARY_SHA256:
        raise StoreError(f"{NOTES_DICTIONARY} is not the dictionary the store's notes were compressed with "
                         "(its SHA-256 differs); reinstall clinsum")
    return data + NOTE_SKELETON


def _deflate(data: bytes, dictionary: bytes) -> bytes:
    # memLevel 8, zlib's default: 9 takes twice as long to set up (16 µs against 8 for a short summary)
    # and wrote the same bytes for every note and summary of fixtures/aci_notes.jsonl; the reader
    # (``_inflate``) does not depend on it
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary)
    return packer.compress(data) + packer.flush()


def _inflate(data: bytes, dictionary: bytes) -> str:
    unpacker = zlib.decompressobj(-15, dictionary)
    return (unpacker.decompress(data) + unpacker.flush()).decode("utf-8")


def pack_note(record: str) -> bytes:
    """A note's JSON record, deflated with the shipped dictionary of clinical-note phrases."""
    return _WITH_NOTES_DICTIONARY + _deflate(record.encode("utf-8"), notes_dictionary())


def pack_summary(record: str, note_record: str | None) -> str | bytes:
    """A summary's JSON record, deflated with its note's record as dictionary when that is stored."""
    if note_record is None:
        return pack(record)
    return _WITH_ITS_NOTE + _deflate(record.encode("utf-8"), SUMMARY_SKELETON + note_record.encode("utf-8"))


def unpack_summary(value: str | bytes, note_record: str | None) -> str:
    """A stored summary record; ``note_record`` is its note's (needed by marker 0x02 only)."""
    if isinstance(value, bytes) and value[:1] == _WITH_ITS_NOTE:
        if note_record is None:
            raise StoreError("a summary was packed with its note's text, and that note is not in the store")
        return _inflate(value[1:], SUMMARY_SKELETON + note_record.encode("utf-8"))
    return unpack(value)


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
