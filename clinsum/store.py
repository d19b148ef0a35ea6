"""The SQLite store: every record lands here as it is made.

One file (default ``./clinsum.db``), WAL mode so readers never block the
writer, schema changed only by numbered migration functions (``PRAGMA
user_version`` records how far a file has been migrated). Each summary and the
scores of one evaluator are written in one transaction, so a run killed at any
instant, even by ``kill -9``, leaves only whole records behind and resumes
where it stopped.

Credentials never reach the store: run configs are stored through
``clinsum.redaction.redact`` (secrets by key name, passwords and key-like query
parameters in URLs, replaced by ``"***"``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clinsum.errors import StoreError
from clinsum.records import Note, Rating, Score, Summary
from clinsum.redaction import redact

DEFAULT_PATH = "clinsum.db"


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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_initial, _m002_batches]
"""Migration N is ``MIGRATIONS[N-1]``; append, never edit one that has shipped."""



def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """Records of runs, notes, summaries, scores, ratings and the response cache."""

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db = db
        self.path = path
        self._pending: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._flush_scheduled = False
        self._batching = 0

    @classmethod
    def open(cls, path: str | Path = DEFAULT_PATH) -> Store:
        path = str(path)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
        store = cls(db, path)
        store._migrate()
        return store

    def close(self) -> None:
        self.flush()
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
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            self.flush()

    def flush(self) -> None:
        """Write every queued record, all in one transaction."""
        self._flush_scheduled = False
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        with self._transaction():
            for sql, rows in pending:
                self.db.executemany(sql, rows)

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not self._batching:
            with self._transaction():
                self.db.executemany(sql, rows)
            return
        self._pending.append((sql, rows))
        if not self._flush_scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
                self._flush_scheduled = True
            except RuntimeError:  # no loop running: write now
                self.flush()

    def _migrate(self) -> None:
        current = self.db.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: written by a newer clinsum (schema {current}, this one knows "
                f"{len(MIGRATIONS)}); upgrade clinsum"
            )
        for number in range(current + 1, len(MIGRATIONS) + 1):
            with self._transaction():
                MIGRATIONS[number - 1](self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- runs -----------------------------------------------------------------

    def create_run(self, run_id: str, config: dict[str, Any], *, kind: str, version: str,
                   notes: Iterable[Note]) -> None:
        """Record a new run with its notes, in one transaction."""
        with self._transaction():
            self.db.execute(
                "INSERT INTO runs (id, created_at, status, kind, config, clinsum_version) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (run_id, now(), kind, json.dumps(redact(config), sort_keys=True), version),
            )
            self.db.executemany(
                "INSERT INTO notes (run_id, id, position, record) VALUES (?, ?, ?, ?)",
                [(run_id, n.id, i, n.model_dump_json()) for i, n in enumerate(notes)],
            )

    def set_status(self, run_id: str, status: str) -> None:
        finished = now() if status != "running" else None
        self.db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                        (status, finished, run_id))

    def run(self, run_id: str) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT id, created_at, finished_at, status, kind, config, clinsum_version FROM runs "
            "WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no run '{run_id}' (see `clinsum runs`)")
        return self._run_dict(row)

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its systems and counts."""
        rows = self.db.execute(
            "SELECT id, created_at, finished_at, status, kind, config, clinsum_version FROM runs "
            "ORDER BY created_at DESC, rowid DESC").fetchall()
        return [self._run_dict(row) for row in rows]

    def _run_dict(self, row: tuple[Any, ...]) -> dict[str, Any]:
        self.flush()
        run_id = row[0]
        systems = [s for (s,) in self.db.execute(
            "SELECT DISTINCT system FROM summaries WHERE run_id = ? ORDER BY system", (run_id,))]
        notes = self.db.execute("SELECT COUNT(*) FROM notes WHERE run_id = ?", (run_id,)).fetchone()[0]
        summaries, failed = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(1 - ok), 0) FROM summaries WHERE run_id = ?",
            (run_id,)).fetchone()
        return {"id": run_id, "created_at": row[1], "finished_at": row[2], "status": row[3],
                "kind": row[4], "config": json.loads(row[5]), "clinsum_version": row[6],
                "systems": systems, "notes": notes, "summaries": summaries, "failed": failed}

    def latest_run_id(self) -> str | None:
        row = self.db.execute("SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
        return row[0] if row else None

    # -- notes, summaries, scores ---------------------------------------------

    def notes(self, run_id: str) -> list[Note]:
        return [Note.model_validate_json(r) for (r,) in self.db.execute(
            "SELECT record FROM notes WHERE run_id = ? ORDER BY position", (run_id,))]

    def add_summary(self, run_id: str, summary: Summary) -> None:
        """Store a summary; a later attempt for the same note and system replaces a failed one."""
        self._write(
            "INSERT OR REPLACE INTO summaries (run_id, note_id, system, ok, record, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(run_id, summary.note_id, summary.system, int(summary.ok), summary.model_dump_json(), now())],
        )

    def summaries(self, run_id: str) -> list[Summary]:
        self.flush()
        return [Summary.model_validate_json(r) for (r,) in self.db.execute(
            "SELECT s.record FROM summaries s JOIN notes n ON n.run_id = s.run_id AND n.id = s.note_id "
            "WHERE s.run_id = ? ORDER BY s.system, n.position", (run_id,))]

    def add_scores(self, run_id: str, scores: Iterable[Score]) -> None:
        """Store the scores of one evaluator for one summary, all or none."""
        rows = [(run_id, s.note_id, s.system, s.evaluator, s.metric, s.value, s.version,
                 s.model_dump_json()) for s in scores]
        self._write(
            "INSERT OR REPLACE INTO scores (run_id, note_id, system, evaluator, metric, value, "
            "version, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def scored(self, run_id: str) -> set[tuple[str, str, str]]:
        """(note_id, system, evaluator) triples that already have scores in a run."""
        self.flush()
        return set(self.db.execute(
            "SELECT DISTINCT note_id, system, evaluator FROM scores WHERE run_id = ?", (run_id,)))

    def scores(self, run_id: str | None = None) -> list[Score]:
        """Scores of one run, or of all runs with the latest per note, system, evaluator and metric."""
        self.flush()
        args: tuple[str, ...] = ()
        if run_id is not None:
            query, args = "SELECT record FROM scores WHERE run_id = ? ORDER BY rowid", (run_id,)
        else:
            query, args = (
                "SELECT s.record FROM scores s JOIN runs r ON r.id = s.run_id "
                "WHERE NOT EXISTS (SELECT 1 FROM scores t JOIN runs q ON q.id = t.run_id "
                "  WHERE t.note_id = s.note_id AND t.system = s.system AND t.evaluator = s.evaluator "
                "  AND t.metric = s.metric AND q.rowid > r.rowid) ORDER BY s.rowid", args)
        return [Score.model_validate_json(r) for (r,) in self.db.execute(query, args)]

    # -- ratings --------------------------------------------------------------

    def add_ratings(self, ratings: Iterable[Rating], source: str) -> int:
        """Insert or replace human ratings (keyed by note, system, rater, dimension)."""
        rows = [(r.note_id, r.system, r.rater, r.dimension, r.value, r.model_dump_json(), source, now())
                for r in ratings]
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO ratings (note_id, system, rater, dimension, value, record, "
                "source, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def ratings(self) -> list[Rating]:
        return [Rating.model_validate_json(r) for (r,) in self.db.execute(
            "SELECT record FROM ratings ORDER BY note_id, system, rater, dimension")]

    # -- provider batches -----------------------------------------------------

    def batch_id(self, run_id: str, system: str) -> str | None:
        row = self.db.execute("SELECT batch_id FROM batches WHERE run_id = ? AND system = ?",
                              (run_id, system)).fetchone()
        return row[0] if row else None

    def save_batch_id(self, run_id: str, system: str, batch_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO batches (run_id, system, batch_id, created_at) VALUES (?, ?, ?, ?)",
                        (run_id, system, batch_id, now()))

    # -- response cache -------------------------------------------------------

    def cached_response(self, key: str) -> str | None:
        row = self.db.execute("SELECT response FROM response_cache WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def cache_response(self, key: str, provider: str, response: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO response_cache (key, provider, response, created_at) "
            "VALUES (?, ?, ?, ?)", (key, provider, response, now()))
