"""Runs in the store: created with their notes and summaries, listed, selected by name and tags.

The run half of ``clinsum.store.Store`` (mixed into it; uses its connection and writes).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clinsum.errors import ConfigError, StoreError
from clinsum.records import Note, Summary
from clinsum.redaction import redact
from clinsum.store_codec import note_hash, pack_note

_FAILED_SCORE = "failed = 1"
"""A score that records a failed evaluation (``clinsum.evaluators.base.is_failure``, stored as it is written)."""

_INSERT_SUMMARY = ("INSERT OR REPLACE INTO summaries (run_id, note_id, system, ok, record, created_at, "
                   "produced_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


_RUN_COLUMNS = "id, created_at, finished_at, status, kind, config, clinsum_version, owner, name, tags"


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where unknown: with
    its pid it names one process, so a pid the system gave again to another process is not taken
    for the one that owned a run."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _this_process() -> str:
    started = _started(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}" + (f":{started}" if started else "")


def _owner_alive(owner: str | None) -> bool | None:
    """Whether the process named by ``owner`` (``host:pid`` or ``host:pid:start``) still runs; None
    when this cannot be known here (another host, no owner)."""
    host, pid, *start = (owner or "").split(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    # a pid that now belongs to a process started at another time is not the owner's: the owner ended
    return not (start and _started(int(pid)) not in (None, start[0]))


def _gone(owner: str | None) -> bool:
    """Whether the process that marked a run running has ended (known only on its own host)."""
    return _owner_alive(owner) is False


def _alive_here(owner: str | None) -> bool:
    """Whether ``owner`` is another process of this host that is still running."""
    return owner != _this_process() and _owner_alive(owner) is True


def how_to_finish(run_id: str, status: str, kind: str) -> str:
    """What completes a run that is not finished: waiting for one still running, resuming a stopped one."""
    if status == "running":
        return "it is still running: wait for it to finish"
    return f"`clinsum {kind} --resume {run_id}` finishes it"


class RunRecords:
    """Runs: their records, status and owner, and the queries that select them."""

    db: sqlite3.Connection
    path: str
    _runs_keeping_notes: dict[str, bool]

    if TYPE_CHECKING:  # provided by the other parts of Store
        def flush(self) -> None:
            ...

        def _transaction(self) -> AbstractContextManager[None]:
            ...

        def _execute_write(self, sql: str, args: tuple[Any, ...]) -> None:
            ...

        def _summary_row(self, run_id: str, summary: Summary) -> tuple[Any, ...]:
            ...

    def create_run(self, run_id: str, config: dict[str, Any], *, kind: str, version: str,
                   notes: Iterable[Note], summaries: Iterable[Summary] = (), store_notes: bool = True,
                   name: str | None = None, tags: dict[str, str] | None = None) -> None:
        """Record a new run with its notes (and the summaries it scores), in one transaction.

        Notes and summaries are read from their iterables as they are written, never held
        together. Each note is stored once by content (``note_texts``, shared by runs); with
        ``store_notes=False`` only its hash is kept, and the run's notes must be given again
        to resume it or to report on them. ``name`` and ``tags`` (``--name``, ``--tag
        KEY=VALUE``) let later commands select runs without knowing their ids
        (``clinsum runs --tag env=prod``, ``clinsum monitor``).
        """
        with self._transaction():
            self.db.execute(
                "INSERT INTO runs (id, created_at, status, kind, config, clinsum_version, owner, name, tags) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (run_id, now(), kind, json.dumps(redact(config), sort_keys=True), version, _this_process(),
                 name, json.dumps(tags or {}, sort_keys=True)),
            )
            for position, note in enumerate(notes):
                record = note.model_dump_json()
                key = bytes.fromhex(note_hash(record))  # 16 bytes, not 32 hex digits
                if store_notes and self.db.execute("SELECT 1 FROM note_texts WHERE hash = ?",
                                                   (key,)).fetchone() is None:  # a note stored once, packed once
                    self.db.execute("INSERT OR IGNORE INTO note_texts (hash, record) VALUES (?, ?)",
                                    (key, pack_note(record)))
                self.db.execute("INSERT INTO notes (run_id, id, position, hash) VALUES (?, ?, ?, ?)",
                                (run_id, note.id, position, key))
            self.db.executemany(_INSERT_SUMMARY, (self._summary_row(run_id, s) for s in summaries))
        self._runs_keeping_notes.pop(run_id, None)

    def claim(self, run_id: str) -> None:
        """Mark the run running by this process, in one write transaction; refuse a run that another
        live process of this host is running (a second process would pay for its calls again)."""
        with self._transaction():
            row = self.db.execute("SELECT status, owner FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is not None and row[0] == "running" and _alive_here(row[1]):
                raise ConfigError(f"run {run_id} is still running (process {row[1]}): wait for it to finish, "
                                  "or stop it (Ctrl-C, SIGTERM) and resume it then")
            self.db.execute("UPDATE runs SET status = 'running', finished_at = NULL, owner = ? WHERE id = ?",
                            (_this_process(), run_id))

    def set_status(self, run_id: str, status: str) -> None:
        running = status == "running"
        self._execute_write("UPDATE runs SET status = ?, finished_at = ?, owner = ? WHERE id = ?",
                            (status, None if running else now(), _this_process() if running else None, run_id))

    def run(self, run_id: str) -> dict[str, Any]:
        """The run with exactly this id (a prefix is resolved first, by ``resolve_run_id``)."""
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no run '{run_id}' (see `clinsum runs`)")
        return self._run_dict(row)

    def resolve_run_id(self, text: str) -> str:
        """The full id of the run whose id is ``text`` or starts with it (``clinsum show 20250101``);
        an unknown or ambiguous prefix is a StoreError (the ambiguous one lists the matches).

        Commands resolve what the user typed once, here, and use the full id from then on:
        every other lookup (``run``, ``scores``, ``summaries``...) takes exact ids only, so a
        prefix can never find the run and then miss its records."""
        if self.db.execute("SELECT 1 FROM runs WHERE id = ?", (text,)).fetchone():
            return text
        matches = [r for (r,) in self.db.execute(
            "SELECT id FROM runs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id", (text,))] if text else []
        if not matches:
            raise StoreError(f"{self.path}: no run '{text}' (see `clinsum runs`)")
        if len(matches) > 1:
            shown = ", ".join(matches[:10]) + (f" and {len(matches) - 10} more" if len(matches) > 10 else "")
            raise StoreError(f"{self.path}: run id prefix '{text}' is ambiguous: {shown}")
        return str(matches[0])

    def runs(self, *, name: str | None = None, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every run, newest first, with its systems and counts; only those with ``name`` and all ``tags`` if given."""
        query, args = f"SELECT {_RUN_COLUMNS} FROM runs WHERE 1 = 1", []
        if name is not None:
            query += " AND name = ?"
            args.append(name)
        for key, value in (tags or {}).items():
            query += " AND json_extract(tags, ?) = ?"
            args += [f'$."{key}"', value]
        rows = self.db.execute(query + " ORDER BY created_at DESC, rowid DESC", args).fetchall()
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
        failed_evaluations = self.db.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT note_id, system, CASE WHEN instr(evaluator, ':') > 0 "
            "THEN substr(evaluator, 1, instr(evaluator, ':') - 1) ELSE evaluator END FROM scores "
            f"WHERE run_id = ? AND {_FAILED_SCORE})",
            (run_id,)).fetchone()[0]
        empty = self.db.execute("SELECT COUNT(*) FROM scores WHERE run_id = ? AND metric = 'empty_summary' "
                                "AND value = 1", (run_id,)).fetchone()[0]
        status = row[3]
        if status == "running" and _gone(row[7]):
            status = "interrupted"  # its process ended without saying so (killed, or the disk was full)
        return {"id": run_id, "created_at": row[1], "finished_at": row[2], "status": status,
                "kind": row[4], "config": json.loads(row[5]), "clinsum_version": row[6],
                "name": row[8], "tags": json.loads(row[9]),
                "systems": systems, "notes": notes, "summaries": summaries, "failed": failed,
                "failed_evaluations": failed_evaluations, "empty": empty}

    def runs_with_summaries_between(self, since: str | None, until: str | None) -> list[str]:
        """Ids of runs holding a summary made in ``[since, until)`` (UTC ISO text, either end open)."""
        query, args = "SELECT DISTINCT run_id FROM summaries WHERE produced_at IS NOT NULL", []
        if since is not None:
            query += " AND produced_at >= ?"
            args.append(since)
        if until is not None:
            query += " AND produced_at < ?"
            args.append(until)
        return [r for (r,) in self.db.execute(query + " ORDER BY run_id", args)]

    def latest_run_id(self) -> str | None:
        row = self.db.execute("SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
        return row[0] if row else None
