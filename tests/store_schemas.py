"""A store as an older clinsum wrote it, for the migration tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clinsum.store import MIGRATIONS


def store_at_schema(path: Path | str, version: int) -> sqlite3.Connection:
    """A new SQLite file at ``path`` with the first ``version`` migrations applied, as that schema
    left it; an autocommit connection to it, for the test to write old rows with."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for number, migration in enumerate(MIGRATIONS[:version], start=1):
        migration(db)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute("COMMIT")
    return db
