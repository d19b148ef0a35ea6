"""Judgings of fixed anchor sets in the store (judge drift, ``clinsum monitor --anchors``).

The anchor part of ``clinsum.store.Store`` (mixed into it; uses its connection and transactions).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from clinsum.errors import StoreError
from clinsum.records import AnchorJudging

_ANCHOR_COLUMNS = "id, judged_at, anchors_hash, n_anchors, judge_version, judges, models, rubric, reference_id, drifted"


def _anchor_judging(row: tuple[Any, ...]) -> AnchorJudging:
    judging_id, judged_at, anchors_hash, n_anchors, judge_version, judges, models, rubric, reference, drifted = row
    return AnchorJudging(id=judging_id, judged_at=judged_at, anchors_hash=anchors_hash, n_anchors=n_anchors,
                         judge_version=judge_version, judges=json.loads(judges), models=json.loads(models),
                         rubric=rubric, reference_id=reference, drifted=None if drifted is None else bool(drifted))



class AnchorRecords:
    """Anchor judgings and their values."""

    db: sqlite3.Connection
    path: str

    if TYPE_CHECKING:  # provided by the other parts of Store
        def _transaction(self) -> AbstractContextManager[None]:
            ...

    def add_anchor_judging(self, judging: AnchorJudging) -> int:
        """Store one judging of an anchor set with all its values, in one transaction; its id."""
        with self._transaction():
            cursor = self.db.execute(
                "INSERT INTO anchor_judgings (judged_at, anchors_hash, n_anchors, judge_version, judges, models, "
                "rubric, reference_id, drifted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (judging.judged_at, judging.anchors_hash, judging.n_anchors, judging.judge_version,
                 json.dumps(judging.judges), json.dumps(judging.models), judging.rubric, judging.reference_id,
                 None if judging.drifted is None else int(judging.drifted)))
            judging_id = cursor.lastrowid
            assert judging_id is not None
            self.db.executemany(
                "INSERT INTO anchor_scores (judging_id, anchor_id, metric, value) VALUES (?, ?, ?, ?)",
                [(judging_id, anchor, metric, value) for anchor, values in judging.values.items()
                 for metric, value in values.items()])
        return judging_id

    def anchor_judgings(self, anchors_hash: str | None = None, judge_version: str | None = None
                        ) -> list[AnchorJudging]:
        """Stored anchor judgings, oldest first (values not loaded); optionally of one set by one judge."""
        clauses = [(c, v) for c, v in (("anchors_hash = ?", anchors_hash), ("judge_version = ?", judge_version))
                   if v is not None]
        where = ("WHERE " + " AND ".join(c for c, _ in clauses)) if clauses else ""
        rows = self.db.execute(
            f"SELECT {_ANCHOR_COLUMNS} FROM anchor_judgings {where} ORDER BY id", tuple(v for _, v in clauses))
        return [_anchor_judging(row) for row in rows]

    def anchor_judging(self, judging_id: int) -> AnchorJudging:
        """One stored anchor judging with its values; ``StoreError`` when there is none with that id."""
        row = self.db.execute(f"SELECT {_ANCHOR_COLUMNS} FROM anchor_judgings WHERE id = ?",
                              (judging_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no anchor judging {judging_id} (see the judge_drift part of "
                             "`clinsum monitor --anchors ... --format json`)")
        values: dict[str, dict[str, float]] = {}
        for anchor, metric, value in self.db.execute(
                "SELECT anchor_id, metric, value FROM anchor_scores WHERE judging_id = ? ORDER BY anchor_id, metric",
                (judging_id,)):
            values.setdefault(anchor, {})[metric] = value
        return _anchor_judging(row).model_copy(update={"values": values})
