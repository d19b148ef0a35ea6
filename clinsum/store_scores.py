"""Scores in the store: one compact row per metric, details recomputed where they can be.

A run with the default metrics writes ten scores per summary. Stored as text they
repeated the run id, note id, system, evaluator, metric and version in every row
and in its key, and the coverage evidence (concepts recalled, missed, supported,
with their spans) took more bytes than the note itself. Since migration 8:

- a note's hash is kept as its 16 bytes, not 32 hex digits;
- summaries are a table without rowid, keyed by (run, note, system): the key was
  stored twice before, in the row and in its index;
- ``score_rows`` holds integer ids of those strings (``names``, each string once per
  store), the value, whether the row records a failure, and the detail, in a table
  keyed by (run, note, system, evaluator, metric) with no rowid: about 31 bytes a
  score before its detail. The view ``scores`` shows the rows with their strings, as
  the table of that name did before (``DELETE FROM scores`` works through a trigger);
- a detail that is a deterministic function of the note, the summary and the
  evaluator (``clinsum.store_details.RECOMPUTED``: concept coverage and facts) is
  not stored when the run keeps its notes' text: the row is marked ``recompute``,
  ``detail_sources`` records the evaluator version and lexicon it was made with, and
  readers get it recomputed (``clinsum.store_details``). Failures, judge answers and
  every other detail are stored in full. A run made with ``store_notes = false``
  cannot recompute, so it stores its details, compressed.

Readers ask for details or not: ``scores(run_id, details=False)`` reads values only
(leaderboards, gates, comparisons), the default recomputes what was not stored.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from clinsum.records import Score
from clinsum.store_codec import pack_detail, unpack_detail

if TYPE_CHECKING:
    from clinsum.store import Store
    from clinsum.store_details import Recomputer

SCORE_VIEW = """
CREATE VIEW scores AS
SELECT r.name AS run_id, n.name AS note_id, y.name AS system, e.name AS evaluator, m.name AS metric,
       s.value AS value, v.name AS version, s.failed AS failed, s.recompute AS recompute, s.detail AS detail
FROM score_rows s JOIN names r ON r.id = s.run JOIN names n ON n.id = s.note JOIN names y ON y.id = s.system
     JOIN names e ON e.id = s.evaluator JOIN names m ON m.id = s.metric JOIN names v ON v.id = s.version;
CREATE TRIGGER scores_delete INSTEAD OF DELETE ON scores BEGIN
    DELETE FROM score_rows WHERE run = (SELECT id FROM names WHERE name = OLD.run_id)
        AND note = (SELECT id FROM names WHERE name = OLD.note_id)
        AND system = (SELECT id FROM names WHERE name = OLD.system)
        AND evaluator = (SELECT id FROM names WHERE name = OLD.evaluator)
        AND metric = (SELECT id FROM names WHERE name = OLD.metric);
END
"""


def m008_score_rows(db: sqlite3.Connection) -> None:
    """Schema 7 → 8: scores as integer ids + value + detail; details kept as they were stored."""
    db.execute("CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
    db.execute("""CREATE TABLE score_rows (
        run INTEGER NOT NULL, note INTEGER NOT NULL, system INTEGER NOT NULL, evaluator INTEGER NOT NULL,
        metric INTEGER NOT NULL, version INTEGER NOT NULL, value REAL, failed INTEGER NOT NULL,
        recompute INTEGER NOT NULL DEFAULT 0,   -- 1: the detail is recomputed on read (clinsum.store_details)
        detail BLOB,                            -- with recompute, what is kept (store_details.kept)
        PRIMARY KEY (run, note, system, evaluator, metric)) WITHOUT ROWID""")
    db.execute("""CREATE TABLE detail_sources (
        run_id TEXT NOT NULL, evaluator TEXT NOT NULL, version TEXT NOT NULL,
        lexicon TEXT NOT NULL,                  -- the concept lexicon the dropped details were made with
        PRIMARY KEY (run_id, evaluator, version)) WITHOUT ROWID""")
    for column in ("run_id", "note_id", "system", "evaluator", "metric", "version"):
        db.execute(f"INSERT OR IGNORE INTO names (name) SELECT DISTINCT {column} FROM scores ORDER BY rowid")
    db.execute(f"""INSERT INTO score_rows (run, note, system, evaluator, metric, version, value, failed, detail)
        SELECT {_IDS.format(*(f"s.{c}" for c in _KEY_COLUMNS))}, s.value, s.failed, s.detail
        FROM scores s ORDER BY s.rowid""")
    db.execute("DROP TABLE scores")
    # a note's hash as its 16 bytes, not 32 hex digits (in notes, note_texts and its index)
    db.create_function("clinsum_unhex", 1, lambda text: bytes.fromhex(text) if isinstance(text, str) else text,
                       deterministic=True)
    db.execute("UPDATE note_texts SET hash = clinsum_unhex(hash)")
    db.execute("UPDATE notes SET hash = clinsum_unhex(hash)")
    # summaries keyed by (run, note, system) without a rowid: the key is the row, not a second copy in an index
    db.execute("""CREATE TABLE summaries_by_key (
        run_id TEXT NOT NULL REFERENCES runs(id), note_id TEXT NOT NULL, system TEXT NOT NULL,
        ok INTEGER NOT NULL, record BLOB NOT NULL, created_at TEXT NOT NULL, produced_at TEXT,
        metadata TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (run_id, note_id, system)) WITHOUT ROWID""")
    db.execute("INSERT INTO summaries_by_key SELECT run_id, note_id, system, ok, record, created_at, produced_at, "
               "metadata FROM summaries ORDER BY rowid")
    db.execute("DROP TABLE summaries")
    db.execute("ALTER TABLE summaries_by_key RENAME TO summaries")
    db.execute("CREATE INDEX summaries_by_produced_at ON summaries (produced_at)")
    for statement in SCORE_VIEW.split(";\nCREATE TRIGGER"):
        db.execute(statement if statement.lstrip().startswith("CREATE VIEW") else "CREATE TRIGGER" + statement)


_KEY_COLUMNS = ("run_id", "note_id", "system", "evaluator", "metric", "version")
_ID = "(SELECT id FROM names WHERE name = {})"
_IDS = ", ".join(_ID.replace("{}", f"{{{i}}}") for i in range(6))
_INSERT_ROW = ("INSERT OR REPLACE INTO score_rows (run, note, system, evaluator, metric, version, value, failed, "
               f"recompute, detail) VALUES ({_IDS.format(*'??????')}, ?, ?, ?, ?)")

_INSERT_ROW_BY_ID = ("INSERT OR REPLACE INTO score_rows (run, note, system, evaluator, metric, version, value, "
                     "failed, recompute, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_NAME = "INSERT OR IGNORE INTO names (name) VALUES (?)"

_READ = ("SELECT n.name, y.name, m.name, s.value, e.name, v.name, s.recompute, s.detail{extra} FROM score_rows s "
         "JOIN names n ON n.id = s.note JOIN names y ON y.id = s.system JOIN names e ON e.id = s.evaluator "
         "JOIN names m ON m.id = s.metric JOIN names v ON v.id = s.version")

PAGE = 1000


class ScoreRecords:
    """The score half of ``clinsum.store.Store`` (mixed into it; uses its connection and writes)."""

    db: sqlite3.Connection
    path: str

    if TYPE_CHECKING:  # provided by the other parts of Store
        def flush(self) -> None:
            ...

        def _write(self, sql: str, rows: list[tuple[Any, ...]], *, any_order: bool = False) -> None:
            ...

        def notes_stored(self, run_id: str) -> bool:
            ...

        def has_summary(self, run_id: str, note_id: str, system: str) -> bool:
            ...

    keep_details: bool = False
    """Store every detail, recomputable or not (``CLINSUM_STORE_DETAILS=1``; the tests compare both ways)."""

    _runs_keeping_notes: dict[str, bool]
    _sources_written: set[tuple[str, str, str]]
    _name_ids: dict[str, int]
    """Name -> id, for names committed to the file (``learn_names``)."""

    # -- writing ----------------------------------------------------------------

    def add_scores(self, run_id: str, scores: Iterable[Score]) -> None:
        """Store the scores of one evaluator for one summary, all or none."""
        from clinsum.evaluators.base import is_failure
        from clinsum.store_details import RECOMPUTED, kept, lexicon_id

        rows: list[tuple[Any, ...]] = []
        by_id: list[tuple[Any, ...]] = []
        names: dict[str, None] = {}
        sources: list[tuple[str, str, str, str]] = []
        ids = self._name_ids
        for s in scores:
            failed = is_failure(s)
            recompute = (s.evaluator in RECOMPUTED and not failed and not self.keep_details
                         and self._can_recompute(run_id, s.note_id, s.system))
            detail = pack_detail(kept(s) if recompute else s.detail)
            key = (run_id, s.note_id, s.system, s.evaluator, s.metric, s.version)
            try:  # names the file already holds: their ids, no lookup in SQL
                by_id.append((ids[run_id], ids[s.note_id], ids[s.system], ids[s.evaluator], ids[s.metric],
                              ids[s.version], s.value, int(failed), int(recompute), detail))
            except KeyError:
                names.update(dict.fromkeys(n for n in key if n not in ids))
                rows.append((*key, s.value, int(failed), int(recompute), detail))
            if recompute and (run_id, s.evaluator, s.version) not in self._sources_written:
                self._sources_written.add((run_id, s.evaluator, s.version))
                sources.append((run_id, s.evaluator, s.version, lexicon_id()))
        if sources:
            self._write("INSERT OR IGNORE INTO detail_sources (run_id, evaluator, version, lexicon) "
                        "VALUES (?, ?, ?, ?)", sources, any_order=True)
        if names:
            self._write(INSERT_NAME, [(n,) for n in names], any_order=True)
        if rows:
            self._write(_INSERT_ROW, rows)
        if by_id:
            self._write(_INSERT_ROW_BY_ID, by_id)

    def learn_names(self, names: Iterable[str]) -> None:
        """Remember the ids of ``names``, written by a transaction that has committed: a name
        keeps its id for good (``names`` rows are never updated or deleted), so later scores
        naming only these are written with their ids (``add_scores``)."""
        wanted = [n for n in dict.fromkeys(names) if n not in self._name_ids]
        for start in range(0, len(wanted), PAGE):
            chunk = wanted[start:start + PAGE]
            self._name_ids.update(self.db.execute(
                f"SELECT name, id FROM names WHERE name IN ({', '.join('?' * len(chunk))})", chunk).fetchall())

    def _can_recompute(self, run_id: str, note_id: str, system: str) -> bool:
        """Whether the note's text and the summary are in the store, to recompute a detail from."""
        if run_id not in self._runs_keeping_notes:
            self._runs_keeping_notes[run_id] = self.notes_stored(run_id)
        return self._runs_keeping_notes[run_id] and self.has_summary(run_id, note_id, system)

    def replace_scores(self, run_id: str, note_id: str, system: str, evaluator: str,
                       scores: Iterable[Score]) -> None:
        """Store the scores of one evaluator for one summary in place of all its earlier ones
        (those of its jury members ``evaluator:SPEC`` included), in the same transaction."""
        self._write(
            f"DELETE FROM score_rows WHERE run = {_ID.format('?')} AND note = {_ID.format('?')} "
            f"AND system = {_ID.format('?')} AND evaluator IN (SELECT id FROM names WHERE name = ? "
            "OR (name >= ? AND name < ?))",  # 'judge:' <= a member < 'judge;': a range on the index, no scan
            [(run_id, note_id, system, evaluator, evaluator + ":", evaluator + ";")])
        self.add_scores(run_id, scores)

    # -- reading ----------------------------------------------------------------

    def _run_key(self, run_id: str) -> int:
        row = self.db.execute("SELECT id FROM names WHERE name = ?", (run_id,)).fetchone()
        return -1 if row is None else int(row[0])

    def evaluations(self, run_id: str, note_id: str | None = None,
                    system: str | None = None) -> dict[tuple[str, str, str], bool]:
        """(note_id, system, evaluator) -> whether its stored scores are free of failure.

        The rule of ``clinsum.evaluators.base.is_failure``: a failed evaluation has
        ``failed: true`` in a score's detail, or an ``*_error`` metric. With ``note_id``
        and ``system``, those of one summary only.
        """
        one = note_id is not None and system is not None
        if not one:  # one summary's are looked up before its own writes: no flush needed
            self.flush()
        query = ("SELECT n.name, y.name, e.name, MAX(s.failed) FROM score_rows s JOIN names n ON n.id = s.note "
                 "JOIN names y ON y.id = s.system JOIN names e ON e.id = s.evaluator WHERE s.run = ? ")
        args: tuple[Any, ...] = (self._run_key(run_id),)
        if one:
            query += f"AND s.note = {_ID.format('?')} AND s.system = {_ID.format('?')} "
            args += (note_id, system)
        rows = self.db.execute(query + "GROUP BY s.note, s.system, s.evaluator", args)
        return {(n, s, e): not failed for n, s, e, failed in rows}

    def has_scores(self, run_id: str) -> bool:
        self.flush()
        return self.db.execute("SELECT 1 FROM score_rows WHERE run = ? LIMIT 1",
                               (self._run_key(run_id),)).fetchone() is not None

    def scored(self, run_id: str) -> set[tuple[str, str, str]]:
        """(note_id, system, evaluator) triples that already have scores in a run."""
        self.flush()
        return set(self.db.execute(
            "SELECT n.name, y.name, e.name FROM (SELECT DISTINCT note, system, evaluator FROM score_rows "
            "WHERE run = ?) s JOIN names n ON n.id = s.note JOIN names y ON y.id = s.system "
            "JOIN names e ON e.id = s.evaluator", (self._run_key(run_id),)))

    def scores(self, run_id: str | None = None, *, details: bool = True) -> list[Score]:
        """Scores of one run, or of all runs with the latest per note, system, evaluator and metric.

        ``details=False`` leaves out the details that are recomputed (values only, fast).
        """
        if run_id is not None:
            return list(self.iter_scores(run_id, details=details))
        return [score for _, score in self._scores_of_runs(None, latest=True, details=details)]

    def iter_scores(self, run_id: str, *, failed_only: bool = False, details: bool = True) -> Iterator[Score]:
        """The scores of one run, a page at a time (by note as first stored, system, evaluator, metric)."""
        self.flush()
        run = self._run_key(run_id)
        recomputer = self._recomputer(run_id) if details else None
        last: tuple[int, ...] = (-1, -1, -1, -1)
        while True:
            rows = self.db.execute(
                _READ.format(extra=", s.note, s.system, s.evaluator, s.metric") + " WHERE s.run = ? "
                "AND (s.note, s.system, s.evaluator, s.metric) > (?, ?, ?, ?) "
                f"{'AND s.failed = 1 ' if failed_only else ''}"
                "ORDER BY s.note, s.system, s.evaluator, s.metric LIMIT ?", (run, *last, PAGE)).fetchall()
            if not rows:
                return
            for row in rows:
                yield _score(row[:8], recomputer)
            last = tuple(rows[-1][8:])

    def scores_by_run(self, run_id: str | None = None, *, details: bool = True) -> list[tuple[str, Score]]:
        """(run id, score) for every score of one run, or of every run."""
        return list(self._scores_of_runs(run_id, latest=False, details=details))

    def _scores_of_runs(self, run_id: str | None, *, latest: bool,
                        details: bool) -> Iterator[tuple[str, Score]]:
        self.flush()
        where, args = ("WHERE s.run = ?", (self._run_key(run_id),)) if run_id is not None else ("", ())
        rank = ("ROW_NUMBER() OVER (PARTITION BY s.note, s.system, s.evaluator, s.metric ORDER BY o.rowid DESC)"
                if latest else "1")
        query = (f"SELECT * FROM ({_READ.format(extra=f', r.name, {rank} AS k')} JOIN names r ON r.id = s.run "
                 f"LEFT JOIN runs o ON o.id = r.name {where} "
                 "ORDER BY o.rowid, s.note, s.system, s.evaluator, s.metric) "
                 "WHERE k = 1")
        recomputers: dict[str, Recomputer | None] = {}
        for row in self.db.execute(query, args).fetchall():
            run = row[8]
            if run not in recomputers:
                recomputers[run] = self._recomputer(run) if details else None
            yield run, _score(row[:8], recomputers[run])

    def metric_values(self, run_id: str) -> Iterator[tuple[str, str, float | None]]:
        """(system, metric, value) of every score of a run: what a leaderboard needs, without details.

        One per note, system and metric (of two evaluators emitting the same metric, the one
        whose name was stored last).
        """
        self.flush()
        cursor = self.db.execute(
            "SELECT y.name, m.name, s.value FROM (SELECT system, metric, value, ROW_NUMBER() OVER "
            "(PARTITION BY note, system, metric ORDER BY evaluator DESC) AS k FROM score_rows WHERE run = ?) s "
            "JOIN names y ON y.id = s.system JOIN names m ON m.id = s.metric WHERE s.k = 1",
            (self._run_key(run_id),))
        while rows := cursor.fetchmany(PAGE):
            yield from rows

    def source_concepts(self, run_id: str) -> dict[tuple[str, str], int]:
        """(note_id, system) -> how many concepts the source had, behind ``concept_recall``
        (for the monitor's case mix; kept in the store even when the detail is recomputed)."""
        from clinsum.store_details import source_concepts

        self.flush()
        found: dict[tuple[str, str], int] = {}
        for note_id, system, detail in self.db.execute(
                "SELECT n.name, y.name, s.detail FROM score_rows s JOIN names n ON n.id = s.note "
                "JOIN names y ON y.id = s.system WHERE s.run = ? AND s.metric = "
                f"{_ID.format('?')}", (self._run_key(run_id), "concept_recall")):
            count = source_concepts(unpack_detail(detail))
            if count is not None:
                found[(note_id, system)] = count
        return found

    def _recomputer(self, run_id: str) -> Recomputer:
        """What recomputes the run's dropped details (a row marked ``recompute`` whose source is not
        recorded gets its detail recomputed and marked as made by an unknown lexicon, never left empty)."""
        from clinsum.store_details import Recomputer

        sources = self.db.execute("SELECT evaluator, version, lexicon FROM detail_sources WHERE run_id = ?",
                                  (run_id,)).fetchall()
        return Recomputer(cast("Store", self), run_id, {(e, v): lexicon for e, v, lexicon in sources})


def _score(row: tuple[Any, ...], recomputer: Recomputer | None) -> Score:
    note_id, system, metric, value, evaluator, version, recompute, detail = row
    score = Score(note_id=note_id, system=system, metric=metric, value=value, evaluator=evaluator,
                  version=version, detail=unpack_detail(detail))
    if recompute and recomputer is not None:
        return score.model_copy(update={"detail": recomputer.detail(score)})
    return score


class _Recent(OrderedDict[tuple[str, str, str], None]):
    """The last summaries written by this process (so that scores find them before a flush)."""

    def __init__(self, size: int = 4096) -> None:
        super().__init__()
        self.size = size

    def add(self, key: tuple[str, str, str]) -> None:
        self[key] = None
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)
