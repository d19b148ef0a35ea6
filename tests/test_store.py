from __future__ import annotations

import re
import sqlite3

import pytest

from clinsum.errors import StoreError, StoreWriteError
from clinsum.records import Note, Rating, Score, Summary
from clinsum.store import MIGRATIONS, Store, redact


def note(i: int) -> Note:
    return Note(id=f"n{i}", text=f"Patient {i} denies chest pain.")


def test_migrations_are_numbered_and_applied_once(tmp_path):
    path = tmp_path / "s.db"
    Store.open(path).close()
    store = Store.open(path)  # reopening applies nothing twice
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_from_a_newer_clinsum_is_refused(tmp_path):
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer clinsum"):
        Store.open(path)


def test_run_round_trip_and_newest_first(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r1", {"notes": "a"}, kind="run", version="0", notes=[note(1), note(2)])
    store.create_run("r2", {"notes": "b"}, kind="score", version="0", notes=[note(3)])
    store.add_summary("r1", Summary(note_id="n1", system="x", text="ok"))
    store.add_summary("r1", Summary(note_id="n2", system="x", error="TransientError: boom"))
    assert [r["id"] for r in store.runs()] == ["r2", "r1"]
    r1 = store.run("r1")
    assert (r1["notes"], r1["systems"], r1["failed"], r1["status"]) == (2, ["x"], 1, "running")
    assert [n.id for n in store.notes("r1")] == ["n1", "n2"]
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.run("nope")


def test_a_retried_summary_replaces_the_failed_one(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=[note(1)])
    store.add_summary("r", Summary(note_id="n1", system="x", error="boom"))
    store.add_summary("r", Summary(note_id="n1", system="x", text="fine"))
    [summary] = store.summaries("r")
    assert summary.ok and summary.text == "fine"


def test_scores_of_all_runs_keep_the_latest(tmp_path):
    store = Store.open(tmp_path / "s.db")
    for run_id, value in (("a", 0.1), ("b", 0.9)):
        store.create_run(run_id, {}, kind="run", version="0", notes=[note(1)])
        store.add_scores(run_id, [Score(note_id="n1", system="x", metric="m", value=value,
                                        evaluator="e", version="1")])
    assert [s.value for s in store.scores()] == [0.9]
    assert [s.value for s in store.scores("a")] == [0.1]
    assert store.scored("a") == {("n1", "x", "e")}


def test_ratings_upsert_on_their_key(tmp_path):
    store = Store.open(tmp_path / "s.db")
    rating = Rating(note_id="n1", system="x", rater="dr-a", dimension="accurate", value=3)
    store.add_ratings([rating], source="f.csv")
    store.add_ratings([rating.model_copy(update={"value": 4.0})], source="f.csv")
    assert [r.value for r in store.ratings()] == [4.0]


def test_credentials_never_reach_the_store(tmp_path):
    path = tmp_path / "s.db"
    store = Store.open(path)
    config = {"providers": [{"spec": "anthropic:m", "options": {"api_key": "sk-secret", "temperature": 0}}],
              "headers": {"Authorization": "Bearer abc"}, "judge": {"options": {"client_secret": "s3cr3t-client"}}}
    store.create_run("r", config, kind="run", version="0", notes=[note(1)])
    stored = store.run("r")["config"]
    assert stored["providers"][0]["options"] == {"api_key": "***", "temperature": 0}
    assert stored["headers"] == {"Authorization": "***"} and stored["judge"]["options"] == {"client_secret": "***"}
    # Not only the config as read back: no byte of any file of the store holds a secret.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    assert b"anthropic:m" in raw  # the files read are the ones the run went to
    assert b"sk-secret" not in raw and b"Bearer abc" not in raw and b"s3cr3t-client" not in raw
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))  # after the WAL checkpoint too
    assert b"anthropic:m" in raw and b"sk-secret" not in raw
    assert redact({"token": "", "temperature": 0.2}) == {"token": "", "temperature": 0.2}


def test_a_failed_batch_of_scores_writes_nothing(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=[note(1)])
    good = Score(note_id="n1", system="x", metric="m", value=1, evaluator="e", version="1")

    class NoVersion:
        """Serialises fine; the database refuses it (version is NOT NULL) after `good` is inserted."""
        note_id, system, evaluator, version, value, metric = "n1", "x", "e", None, 1.0, "m2"

        @property
        def detail(self) -> dict[str, object]:
            return {}

    with pytest.raises(StoreWriteError, match="NOT NULL constraint failed"):
        store.add_scores("r", [good, NoVersion()])  # type: ignore[list-item]
    assert store.scores("r") == []  # the first row was inserted, then rolled back with the second
    store.add_scores("r", [good])  # and the store is not left inside a transaction
    assert store.scores("r") == [good]
    store.close()
    assert Store.open(tmp_path / "s.db").scores("r") == [good]


def test_a_locked_store_raises_a_write_error_naming_the_file(tmp_path):
    import sqlite3

    from clinsum.errors import StoreWriteError
    from clinsum.records import Summary

    path = tmp_path / "s.db"
    Store.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock past the busy timeout
    store = Store.open(path, busy_timeout_s=0.1)
    with pytest.raises(StoreWriteError, match=re.escape(f"{path}: cannot write to the store: database is locked")):
        store.add_summary("r", Summary(note_id="n", system="x", text="t"))
    holder.execute("ROLLBACK")
    holder.close()
    store.close()


def test_a_model_answer_with_a_lone_surrogate_is_stored_with_a_replacement_character(tmp_path):
    from clinsum.records import Note, Summary

    store = Store.open(tmp_path / "s.db")
    store.create_run("r", {}, kind="run", version="0", notes=[Note(id="n", text="t")])
    store.add_summary("r", Summary(note_id="n", system="x", text="bad \udc80 text"))
    assert [s.text for s in store.summaries("r")] == ["bad \ufffd text"]


def test_must_exist_refuses_to_create_a_store(tmp_path):
    from clinsum.errors import StoreError

    with pytest.raises(StoreError, match=r"typo\.db: no such store"):
        Store.open(tmp_path / "typo.db", must_exist=True)
    assert not (tmp_path / "typo.db").exists()


def test_a_running_run_whose_process_is_gone_reads_as_interrupted(tmp_path):
    import socket
    import subprocess
    import sys

    store = Store.open(tmp_path / "s.db")
    for run_id in ("mine", "dead", "elsewhere"):
        store.create_run(run_id, {}, kind="run", version="0", notes=[])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.db.execute("UPDATE runs SET owner = ? WHERE id = 'dead'", (f"{socket.gethostname()}:{dead.stdout.strip()}",))
    store.db.execute("UPDATE runs SET owner = 'another-host:1' WHERE id = 'elsewhere'")
    assert {r["id"]: r["status"] for r in store.runs()} == {
        "mine": "running", "dead": "interrupted", "elsewhere": "running"}  # another host: cannot tell
    store.set_status("mine", "finished")
    assert store.run("mine")["status"] == "finished"


def test_a_pid_given_again_to_another_process_is_not_the_owner_of_a_run(tmp_path):
    """After a crash, the system may give the dead owner's pid to another process: that process is not
    the run's owner (its start time differs), so the run reads as interrupted and may be resumed; a
    live owner of this host is refused."""
    import socket
    import subprocess

    from clinsum.errors import ConfigError

    store = Store.open(tmp_path / "s.db")
    for run_id in ("reused", "live"):
        store.create_run(run_id, {}, kind="run", version="0", notes=[])
    other = subprocess.Popen(["sleep", "60"])
    try:
        host = socket.gethostname()
        store.db.execute("UPDATE runs SET owner = ? WHERE id = 'reused'", (f"{host}:{other.pid}:1",))
        with open(f"/proc/{other.pid}/stat", encoding="ascii") as handle:
            started = handle.read().rpartition(")")[2].split()[19]
        store.db.execute("UPDATE runs SET owner = ? WHERE id = 'live'", (f"{host}:{other.pid}:{started}",))
        assert store.run("reused")["status"] == "interrupted"
        store.claim("reused")  # its owner is gone: this process takes it
        assert store.run("reused")["status"] == "running"
        assert store.run("live")["status"] == "running"
        with pytest.raises(ConfigError, match="still running"):
            store.claim("live")
    finally:
        other.kill()
        other.wait()
    store.claim("live")  # its owner has ended now
