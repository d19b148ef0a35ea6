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
import logging
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clinsum.errors import StoreError, StoreWriteError
from clinsum.records import Rating
from clinsum.redaction import redact  # noqa: F401  (where callers have imported it from)
from clinsum.store_anchors import AnchorRecords
from clinsum.store_codec import m004_compact
from clinsum.store_runs import RunRecords, now
from clinsum.store_scores import INSERT_NAME, ScoreRecords, _Recent, m008_score_rows
from clinsum.store_texts import NotesNotStored, TextRecords, as_json, utc_iso, valid_unicode  # noqa: F401

log = logging.getLogger(__name__)

DEFAULT_PATH = "clinsum.db"

CACHE_LOOKUP = 500
"""Keys looked up in the response cache per query (``cached_responses``), well under SQLite's
limit on parameters (999 before SQLite 3.32)."""


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


def _m007_anchor_judgings(db: sqlite3.Connection) -> None:
    """Judgings of fixed anchor sets (judge drift, ``clinsum monitor --anchors``): who judged, what, when."""
    _script(
        db,
        """
        CREATE TABLE anchor_judgings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            judged_at TEXT NOT NULL,
            anchors_hash TEXT NOT NULL,
            n_anchors INTEGER NOT NULL,
            judge_version TEXT NOT NULL,     -- rubric, prompt, specs: the judge spec a reference must share
            judges TEXT NOT NULL,            -- JSON list of provider specs, never their options
            models TEXT NOT NULL,            -- JSON spec -> model the provider reported
            rubric TEXT NOT NULL,
            reference_id INTEGER REFERENCES anchor_judgings (id),
            drifted INTEGER                  -- NULL: a reference, nothing compared
        );
        CREATE INDEX anchor_judgings_by_set ON anchor_judgings (anchors_hash, judge_version, id);
        CREATE TABLE anchor_scores (
            judging_id INTEGER NOT NULL REFERENCES anchor_judgings (id),
            anchor_id TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (judging_id, anchor_id, metric)
        )
        """,
    )


def _m008_score_rows(db: sqlite3.Connection) -> None:
    # scores as integer ids, details recomputed instead of stored where they can be (clinsum.store_scores)
    m008_score_rows(db)


def _m009_produced_at_index(db: sqlite3.Connection) -> None:
    # only production summaries carry produced_at: an index entry for every NULL of an evaluation run
    # costs ~64 bytes a summary and answers no query (those of store_runs ask produced_at IS NOT NULL)
    _script(db, """
        DROP INDEX summaries_by_produced_at;
        CREATE INDEX summaries_by_produced_at ON summaries (produced_at) WHERE produced_at IS NOT NULL
    """)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_initial, _m002_batches, _m003_run_owner, _m004_ratings_of_summaries, _m005_compact, _m006_production,
    _m007_anchor_judgings, _m008_score_rows, _m009_produced_at_index]
"""Migration N is ``MIGRATIONS[N-1]``; append, never edit one that has shipped."""



def _set_wal(db: sqlite3.Connection) -> None:
    """WAL mode, once per file; another process switching it at the same instant is waited for."""
    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        db.execute("PRAGMA journal_mode=WAL")




PAGE_SIZE = 8192
"""Bytes per page of a new store (an existing one keeps its own). Measured with
``benchmarks/scale.py --sizes 1000 10000 --configs cores``, store bytes a summary at 1,000 and
10,000 summaries: 4 kB pages 1,823 and 1,738 (compressed notes of ~850 B fill them badly),
8 kB 1,810 and 1,643, 16 kB 1,982 and 1,632 (every table and index takes at least one page,
which a small store pays for)."""



def _grouped(pending: Iterable[tuple[str, list[tuple[Any, ...]], bool]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Queued writes as few ``executemany`` calls: the statements written in any order first,
    one call per statement; then the others in the order queued, a run of one statement in one call.
    Rows keep their queued order within each statement, so a later row replaces an earlier one
    as it would have."""
    first: dict[str, list[tuple[Any, ...]]] = {}
    then: list[tuple[str, list[tuple[Any, ...]]]] = []
    for sql, rows, any_order in pending:
        if any_order:
            first.setdefault(sql, []).extend(rows)
        elif then and then[-1][0] == sql:
            then[-1][1].extend(rows)
        else:
            then.append((sql, list(rows)))
    return [*first.items(), *then]


class Store(RunRecords, TextRecords, ScoreRecords, AnchorRecords):
    """Records of runs, notes, summaries, scores, ratings and the response cache."""

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db = db
        self.path = path
        self._pending: list[tuple[str, list[tuple[Any, ...]], bool]] = []
        self._flush_scheduled = False
        self._batching = 0
        self._batch_task: asyncio.Task[Any] | None = None
        self.write_failure: StoreWriteError | None = None
        """The first write that failed in a scheduled flush; every later write raises it."""
        self.keep_details = os.environ.get("CLINSUM_STORE_DETAILS", "") == "1"
        self._runs_keeping_notes: dict[str, bool] = {}
        self._sources_written: set[tuple[str, str, str]] = set()
        self._name_ids: dict[str, int] = {}
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
            for sql, rows in _grouped(pending):
                self.db.executemany(sql, rows)
        self._learn_names_written(name for sql, rows, _ in pending if sql == INSERT_NAME for (name,) in rows)

    def _learn_names_written(self, names: Iterable[str]) -> None:
        """``learn_names`` after a commit: if reading the ids fails, later scores look their names
        up in SQL as before (what was committed stays committed, and is not reported as failed)."""
        try:
            self.learn_names(names)
        except sqlite3.Error as exc:
            log.info("%s: name ids not remembered (%s); scores will look them up", self.path, exc)

    def _scheduled_flush(self) -> None:
        """The flush the event loop runs; a failure stops the batching task instead of vanishing."""
        try:
            self.flush()
        except Exception as exc:  # kept and re-raised in the batching task, never lost in the loop
            self.write_failure = exc if isinstance(exc, StoreWriteError) else StoreWriteError(
                f"{self.path}: cannot write to the store: {type(exc).__name__}: {exc}")
            if self._batch_task is not None and not self._batch_task.done():
                self._batch_task.cancel()

    def _write(self, sql: str, rows: list[tuple[Any, ...]], *, any_order: bool = False) -> None:
        """Write ``rows`` with ``sql`` now, or, batching, in the next flush's transaction.

        ``any_order``: the statement's effect does not depend on the other statements of a
        flush, nor theirs on it coming after them (an ``INSERT OR IGNORE`` of names, an
        ``INSERT OR REPLACE`` into a table no other batched statement touches): a flush writes
        such statements first, all rows of one statement in one ``executemany``, in the order
        they were queued (``_grouped``)."""
        if self.write_failure is not None:
            raise self.write_failure
        if not self._batching:
            with self._transaction():
                self.db.executemany(sql, rows)
            if sql == INSERT_NAME:
                self._learn_names_written(name for (name,) in rows)
            return
        self._pending.append((sql, rows, any_order))
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

    def cached_responses(self, keys: Sequence[str]) -> dict[str, str]:
        """Key -> cached response, for those of ``keys`` the cache holds (a query per 500 keys)."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), CACHE_LOOKUP):
            chunk = keys[start:start + CACHE_LOOKUP]
            found.update(self.db.execute(f"SELECT key, response FROM response_cache WHERE key IN "
                                         f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return found

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
