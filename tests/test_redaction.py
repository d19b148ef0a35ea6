"""Credentials never reach the store, and ordinary options are never mistaken for them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.redaction import is_secret_key, redact, redact_url
from clinsum.store import Store


@pytest.mark.parametrize("key", ["api_key", "apiKey", "x-api-key", "token", "refresh_token", "password",
                                 "client_secret", "Authorization", "private_key", "aws_secret_access_key",
                                 "credentials", "ANTHROPIC_AUTH_TOKEN"])
def test_secret_keys_are_masked(key: str) -> None:
    assert is_secret_key(key)
    assert redact({key: "s3cr3t"}) == {key: "***"}


@pytest.mark.parametrize("key", ["max_output_tokens", "max_tokens", "token_limit", "num_ctx", "keywords",
                                 "monkey", "key_concepts", "temperature", "secretary_notes_field"])
def test_ordinary_options_are_kept(key: str) -> None:
    assert not is_secret_key(key)
    assert redact({key: 300}) == {key: 300}


@pytest.mark.parametrize(("url", "stored"), [
    ("https://bob:hunter2@llm.example.org/v1", "https://***@llm.example.org/v1"),
    ("https://gen.example.org/v1?key=AIzaSyXX&region=eu", "https://gen.example.org/v1?key=***&region=eu"),
    ("https://h/x?api_key=1&token=2&sig=3&X-Amz-Signature=4&access%5Ftoken=5&q=a+b%2F",
     "https://h/x?api_key=***&token=***&sig=***&X-Amz-Signature=***&access%5Ftoken=***&q=a+b%2F"),
    ("http://127.0.0.1:11434", "http://127.0.0.1:11434"),
])
def test_urls_lose_passwords_and_key_like_query_values(url: str, stored: str) -> None:
    assert redact_url(url) == stored
    assert redact({"options": {"base_url": url}}) == {"options": {"base_url": stored}}


def test_a_bare_host_with_userinfo_and_urls_inside_text() -> None:
    assert redact({"host": "bob:pw@10.0.0.5:11434"}) == {"host": "***@10.0.0.5:11434"}
    assert redact(["see https://u:p@h/x?token=1 then"]) == ["see https://***@h/x?token=*** then"]


def test_credentials_in_urls_never_reach_the_store_file(tmp_path: Path) -> None:
    from clinsum.records import Note

    store = Store.open(tmp_path / "s.db")
    config = {"providers": [{"spec": "langchain:openai:gpt-4o", "options": {
        "base_url": "https://alice:pa55word@proxy.example.org/v1?api_key=sk-live-123&deployment=a"}}]}
    store.create_run("r", config, kind="run", version="0", notes=[Note(id="n", text="t")])
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"pa55word" not in raw and b"sk-live-123" not in raw
    stored = Store.open(tmp_path / "s.db").run("r")["config"]["providers"][0]["options"]["base_url"]
    assert stored == "https://***@proxy.example.org/v1?api_key=***&deployment=a"


def test_a_run_with_max_output_tokens_resumes(tmp_path: Path) -> None:
    """``max_output_tokens`` used to be masked as a secret ("token"), so the stored config could
    not be read back and ``--resume`` failed."""
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": f"n{i}", "text": f"Patient {i} denies chest pain. Plan: ECG."})
                             + "\n" for i in range(3)))
    db = tmp_path / "c.db"
    first = CliRunner().invoke(app, ["run", "--notes", str(notes), "-p", "extractive:lead",
                                     "-o", "max_output_tokens=300", "--metric", "length", "--db", str(db)])
    assert first.exit_code == 0, first.output
    store = Store.open(db)
    run_id = store.latest_run_id()
    assert run_id is not None
    assert store.run(run_id)["config"]["providers"][0]["options"] == {"max_output_tokens": 300}
    store.close()
    with sqlite3.connect(db) as connection:  # as if the run had stopped before note n1
        connection.execute("DELETE FROM summaries WHERE note_id = 'n1'")
    resumed = CliRunner().invoke(app, ["run", "--resume", run_id, "--db", str(db)])
    assert resumed.exit_code == 0, resumed.output
    assert sorted(s.note_id for s in Store.open(db).summaries(run_id)) == ["n0", "n1", "n2"]
