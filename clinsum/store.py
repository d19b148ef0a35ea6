"""The SQLite store: every record lands here as it is made.

One file (default ``./clinsum.db``), WAL mode so readers never block the
writer, schema changed only by numbered migration functions (``PRAGMA
user_version`` records how far a file has been migrated). Each summary and the
scores of one evaluator are written in one transaction, so a run killed at any
instant, even by ``kill -9``, leaves only whole records behind and resumes
where it stopped.

Writes fail loudly: any SQLite error while writing (disk full, read-only file,
locked past the busy timeout) raises ``StoreWriteError`` naming the file, also
when it happens in a flush scheduled on the event loop (the flush cancels the
task that batches the writes, which then raises the error instead of
finishing). What was not written is not reported as written: the run resumes
from what the file holds.

Credentials never reach the store: run configs are stored through
``clinsum.redaction.redact`` (secrets by key name, passwords and key-like query
parameters in URLs, replaced by ``"***"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from clinsum.errors import StoreError, StoreWriteError
from clinsum.records import Note, Rating, Summary
from clinsum.redaction import redact  # noqa: F401  (where callers have imported it from)
from clinsum.store_codec import m004_compact, pack_summary, unpack, unpack_summary
from clinsum.store_runs import _INSERT_SUMMARY, RunRecords, now
from clinsum.store_scores import PAGE, ScoreRecords, _Recent, m007_score_rows

DEFAULT_PATH = "clinsum.db"


class NotesNotStored(StoreError):
    """A run made with ``store_notes = false``: its notes' text must be given again."""


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run several statements inside the caller's transaction (``executescript`` would commit)."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _m001_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,          -- running | finished | interrupted | failed
            kind TEXT NOT NULL,            -- run | score
            config TEXT NOT NULL,          -- the full run config, secrets redacted
            clinsum_version TEXT NOT NULL
        );
        CREATE TABLE notes (
            run_id TEXT NOT NULL REFERENCES runs(id),
            id TEXT NOT NULL,
            position INTEGER NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (run_id, id)
        );
        CREATE TABLE summaries (
            run_id TEXT NOT NULL REFERENCES runs(id),
            note_id TEXT NOT NULL,
            system TEXT NOT NULL,
            ok INTEGER NOT NULL,
            record TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, note_id, system)
        );
        CREATE TABLE scores (
            run_id TEXT NOT NULL REFERENCES runs(id),
            note_id TEXT NOT NULL,
            system TEXT NOT NULL,
            evaluator TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            version TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (run_id, note_id, system, evaluator, metric)
        );
        CREATE INDEX scores_by_metric ON scores (metric, system);
        CREATE TABLE ratings (
            note_id TEXT NOT NULL,
            system TEXT NOT NULL,
            rater TEXT NOT NULL,
            dimension TEXT NOT NULL,
            value REAL NOT NULL,
            record TEXT NOT NULL,
            source TEXT NOT NULL,
            imported_at TEXT NOT NULL,
            PRIMARY KEY (note_id, system, rater, dimension)
        );
        CREATE TABLE response_cache (
            key TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            response TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """
    )


def _m002_batches(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE batches (
            run_id TEXT NOT NULL REFERENCES runs(id),
            system TEXT NOT NULL,
            batch_id TEXT NOT NULL,        -- the provider's batch id, to resume without resubmitting
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, system)
        )
        """,
    )


def _m003_run_owner(db: sqlite3.Connection) -> None:
    # host:pid of the process running a run: a run marked running whose process is gone
    # (killed, or stopped by a disk too full to record it) is reported interrupted
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")


def _m004_ratings_of_summaries(db: sqlite3.Connection) -> None:
    """Key ratings by the summary they rate: run, note and system (``''`` = not tied to a run).

    Ratings stored before this migration are kept untied; ``clinsum agreement``
    joins them only where one run holds that note and system, never by guess.
    """
    _script(
        db,
        """
        CREATE TABLE ratings_by_summary (
            run_id TEXT NOT NULL,          -- '' for a rating not tied to a run (older imports)
            note_id TEXT NOT NULL,
            system TEXT NOT NULL,
            rater TEXT NOT NULL,
            dimension TEXT NOT NULL,
            value REAL NOT NULL,
            rated_at TEXT,
            record TEXT NOT NULL,
            source TEXT NOT NULL,
            imported_at TEXT NOT NULL,
            PRIMARY KEY (run_id, note_id, system, rater, dimension)
        );
        INSERT INTO ratings_by_summary (run_id, note_id, system, rater, dimension, value, rated_at,
                                        record, source, imported_at)
            SELECT '', note_id, system, rater, dimension, value, NULL, record, source, imported_at
            FROM ratings;
        DROP TABLE ratings;
        ALTER TABLE ratings_by_summary RENAME TO ratings;
        CREATE INDEX ratings_by_note ON ratings (note_id, system)
        """,
    )


def _m005_compact(db: sqlite3.Connection) -> None:
    # notes once by content hash, compressed summaries and score details (clinsum.store_codec)
    m004_compact(db)


def _m006_production(db: sqlite3.Connection) -> None:
    """Run names and tags; when production made each summary, and its metadata (for the monitor)."""
    _script(
        db,
        """
        ALTER TABLE runs ADD COLUMN name TEXT;
        ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';   -- JSON object KEY -> VALUE
        CREATE INDEX runs_by_name ON runs (name);
        ALTER TABLE summaries ADD COLUMN produced_at TEXT;   -- Summary.created_at in UTC, ISO 8601
        ALTER TABLE summaries ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
        CREATE INDEX summaries_by_produced_at ON summaries (produced_at)
        """,
    )


def _m007_score_rows(db: sqlite3.Connection) -> None:
    # scores as integer ids, details recomputed instead of stored where they can be (clinsum.store_scores)
    m007_score_rows(db)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_initial, _m002_batches, _m003_run_owner, _m004_ratings_of_summaries, _m005_compact, _m006_production,
    _m007_score_rows]
"""Migration N is ``MIGRATIONS[N-1]``; append, never edit one that has shipped."""



def _set_wal(db: sqlite3.Connection) -> None:
    """WAL mode, once per file; another process switching it at the same instant is waited for."""
    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        db.execute("PRAGMA journal_mode=WAL")




PAGE_SIZE = 16384
"""Bytes per page of a new store: a compressed note (about 1 kB) fills a 4 kB page badly, a
16 kB page wastes a few percent of it (measured with benchmarks/scale.py, see the README)."""



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


class Store(RunRecords, ScoreRecords):
    """Records of runs, notes, summaries, scores, ratings and the response cache."""

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db = db
        self.path = path
        self._pending: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._flush_scheduled = False
        self._batching = 0
        self._batch_task: asyncio.Task[Any] | None = None
        self.write_failure: StoreWriteError | None = None
        """The first write that failed in a scheduled flush; every later write raises it."""
        self.keep_details = os.environ.get("CLINSUM_STORE_DETAILS", "") == "1"
        self._runs_keeping_notes: dict[str, bool] = {}
        self._sources_written: set[tuple[str, str, str]] = set()
        self._recent_summaries = _Recent()
        self._note_records: OrderedDict[tuple[str, str], str | None] = OrderedDict()

    @classmethod
    def open(cls, path: str | Path = DEFAULT_PATH, *, must_exist: bool = False,
             busy_timeout_s: float = 30.0) -> Store:
        """Open (or create) the store at ``path``; ``must_exist`` refuses to create one.

        Read-only commands open with ``must_exist`` so that a mistyped ``--db`` is an
        error naming the file, not a new empty store. Several processes may open or
        create the same file at once: SQLite's busy timeout makes each wait for the
        other's lock, and the schema is created under a write lock (``_migrate``).
        """
        path = str(path)
        if must_exist and not Path(path).is_file():
            raise StoreError(f"{path}: no such store (give --db the path of an existing store)")
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # a new file only: an existing one keeps its own
            _set_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            folder = Path(path).resolve().parent
            hint = "" if os.access(folder, os.W_OK) else (
                f"; {folder} is read-only, and SQLite writes its -wal and -shm files beside the store")
            raise StoreError(f"{path}: cannot open the store: {exc}{hint}") from exc
        store = cls(db, path)
        try:
            store._migrate()
        except BaseException:
            db.close()
            raise
        return store

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()

    @contextmanager
    def batched_writes(self) -> Iterator[None]:
        """Group summary and score writes made in one turn of the event loop into one transaction.

        Inside an event loop, each write is queued and a flush is scheduled for the
        loop's next turn, so the tasks that finish together share one commit. The
        response cache is never deferred: a paid-for answer is on disk before the
        runner sees it, so a run killed before a flush regenerates its summary from
        the cache, without a new call.
        """
        outer = self._batching == 0
        if outer:
            try:
                self._batch_task = asyncio.current_task()
            except RuntimeError:  # no loop running
                self._batch_task = None
        self._batching += 1
        try:
            yield
        except asyncio.CancelledError:
            if self.write_failure is not None:  # cancelled by a failed scheduled flush
                raise self.write_failure from None
            raise
        finally:
            self._batching -= 1
            if outer:
                self._batch_task = None
            self.flush()

    def flush(self) -> None:
        """Write every queued record, all in one transaction (none of them if it fails)."""
        self._flush_scheduled = False
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        with self._transaction():
            for sql, rows in pending:
                self.db.executemany(sql, rows)

    def _scheduled_flush(self) -> None:
        """The flush the event loop runs; a failure stops the batching task instead of vanishing."""
        try:
            self.flush()
        except Exception as exc:  # kept and re-raised in the batching task, never lost in the loop
            self.write_failure = exc if isinstance(exc, StoreWriteError) else StoreWriteError(
                f"{self.path}: cannot write to the store: {type(exc).__name__}: {exc}")
            if self._batch_task is not None and not self._batch_task.done():
                self._batch_task.cancel()

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self.write_failure is not None:
            raise self.write_failure
        if not self._batching:
            with self._transaction():
                self.db.executemany(sql, rows)
            return
        self._pending.append((sql, rows))
        if not self._flush_scheduled:
            try:
                asyncio.get_running_loop().call_soon(self._scheduled_flush)
                self._flush_scheduled = True
            except RuntimeError:  # no loop running: write now
                self.flush()

    def _execute_write(self, sql: str, args: tuple[Any, ...]) -> None:
        """One statement in autocommit; a failure raises ``StoreWriteError``."""
        try:
            self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    def _write_error(self, exc: sqlite3.Error) -> StoreWriteError:
        return StoreWriteError(f"{self.path}: cannot write to the store: {exc}")

    def _migrate(self) -> None:
        """Bring the schema up to date, under the write lock.

        The version is read again once the lock is held: of two processes creating
        the same new store, the second waits for the first, then finds nothing to do.
        """
        if self._schema_version() == len(MIGRATIONS):
            return
        with self._transaction():
            current = self._schema_version()
            for number in range(current + 1, len(MIGRATIONS) + 1):
                MIGRATIONS[number - 1](self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    def _schema_version(self) -> int:
        try:
            current: int = self.db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: written by a newer clinsum (schema {current}, this one knows "
                f"{len(MIGRATIONS)}); upgrade clinsum"
            )
        return current

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction; any SQLite failure in it is a ``StoreWriteError`` and rolls back."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._write_error(exc) from exc
            raise

    # -- notes, summaries, scores ---------------------------------------------

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
        self._write(_INSERT_SUMMARY, [self._summary_row(run_id, summary)])

    def _summary_row(self, run_id: str, summary: Summary) -> tuple[Any, ...]:
        """A summary as stored: its record deflated with its note's (when that is stored) as dictionary."""
        produced = utc_iso(summary.created_at) if summary.created_at is not None else None
        self._recent_summaries.add((run_id, summary.note_id, summary.system))
        record = pack_summary(as_json(summary), self._note_record(run_id, summary.note_id))
        return (run_id, summary.note_id, summary.system, int(summary.ok), record, now(),
                produced, json.dumps(summary.metadata, sort_keys=True))

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
        counts = (self._summary_of(r, note).usage.output_tokens for r, note in rows)
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

    # -- ratings --------------------------------------------------------------

    def add_ratings(self, ratings: Iterable[Rating], source: str) -> int:
        """Insert or replace human ratings (keyed by run, note, system, rater, dimension), all or none."""
        rows = [(r.run_id or "", r.note_id, r.system, r.rater, r.dimension, r.value, r.rated_at,
                 r.model_dump_json(), source, now()) for r in ratings]
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO ratings (run_id, note_id, system, rater, dimension, value, "
                "rated_at, record, source, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def ratings(self, run_id: str | None = None) -> list[Rating]:
        """Stored ratings; with ``run_id``, those tied to that run and those tied to none."""
        where, args = ("WHERE run_id IN (?, '')", (run_id,)) if run_id is not None else ("", ())
        return [Rating.model_validate_json(r) for (r,) in self.db.execute(
            f"SELECT record FROM ratings {where} ORDER BY run_id, note_id, system, rater, dimension", args)]

    def runs_holding(self) -> dict[tuple[str, str], list[str]]:
        """(note_id, system) -> the runs holding a summary or a score of it, oldest run first."""
        self.flush()
        held: dict[tuple[str, str], list[str]] = {}
        for run_id, note_id, system in self.db.execute(
                "SELECT h.run_id, h.note_id, h.system FROM (SELECT run_id, note_id, system FROM summaries "
                "UNION SELECT run_id, note_id, system FROM scores) h JOIN runs r ON r.id = h.run_id "
                "ORDER BY r.rowid"):
            held.setdefault((note_id, system), []).append(run_id)
        return held

    # -- provider batches -----------------------------------------------------

    def batch_id(self, run_id: str, system: str) -> str | None:
        row = self.db.execute("SELECT batch_id FROM batches WHERE run_id = ? AND system = ?",
                              (run_id, system)).fetchone()
        return row[0] if row else None

    def save_batch_id(self, run_id: str, system: str, batch_id: str) -> None:
        self._execute_write(
            "INSERT OR REPLACE INTO batches (run_id, system, batch_id, created_at) VALUES (?, ?, ?, ?)",
            (run_id, system, batch_id, now()))

    # -- response cache -------------------------------------------------------

    def cached_response(self, key: str) -> str | None:
        row = self.db.execute("SELECT response FROM response_cache WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def has_cached(self, provider: str) -> bool:
        """Whether any answer of ``provider`` (a spec) is cached: if not, no request of it can be."""
        return self.db.execute("SELECT 1 FROM response_cache WHERE provider = ? LIMIT 1",
                               (provider,)).fetchone() is not None

    def cache_response(self, key: str, provider: str, response: str) -> None:
        self._execute_write(
            "INSERT OR REPLACE INTO response_cache (key, provider, response, created_at) "
            "VALUES (?, ?, ?, ?)", (key, provider, response, now()))

    def forget_response(self, key: str) -> None:
        """Drop a cached answer (one that turned out unusable, so that it is asked again)."""
        self._execute_write("DELETE FROM response_cache WHERE key = ?", (key,))
