"""``clinsum providers``: what is installed and configured, never a secret, never an SDK import."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ollama_fake import closed_port
from provider_fakes import local_server
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli import providers as providers_cli
from clinsum.cli.providers import module_installed, provider_statuses, safe_url
from clinsum.providers import registry

SECRET = "sk-ant-api03-SECRET-value-never-shown"


def _by_name(env: dict[str, str], home: Path) -> dict[str, providers_cli.ProviderStatus]:
    return {s.provider: s for s in provider_statuses(env, home)}


def test_every_registered_provider_is_listed(tmp_path: Path) -> None:
    assert list(_by_name({}, tmp_path)) == list(registry.available())


def test_credentials_are_reported_as_set_but_never_shown(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": SECRET, "ANTHROPIC_BASE_URL": "https://proxyuser:proxypass@gw.example.org/v1?key=k"}
    anthropic = _by_name(env, tmp_path)["anthropic"]
    assert anthropic.configured is True and anthropic.fix is None
    assert "ANTHROPIC_API_KEY set" in anthropic.detail
    assert "https://gw.example.org/v1" in anthropic.detail
    for leaked in (SECRET, "proxypass", "proxyuser", "key=k"):
        assert leaked not in anthropic.detail

    missing = _by_name({}, tmp_path)["anthropic"]
    assert missing.configured is False and missing.fix == "export ANTHROPIC_API_KEY=..."


def test_vertex_needs_an_adc_file(tmp_path: Path) -> None:
    vertex = _by_name({"GOOGLE_CLOUD_PROJECT": "demo-project"}, tmp_path)["vertex"]
    assert vertex.configured is False and vertex.fix == "gcloud auth application-default login"

    adc = tmp_path / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text('{"type": "authorized_user", "refresh_token": "do-not-print"}')
    vertex = _by_name({"GOOGLE_CLOUD_PROJECT": "demo-project", "GOOGLE_CLOUD_LOCATION": "europe-west4"},
                      tmp_path)["vertex"]
    assert vertex.configured is True and vertex.fix is None
    assert "project demo-project" in vertex.detail and "location europe-west4" in vertex.detail
    assert "do-not-print" not in vertex.detail

    pointed = _by_name({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json")}, tmp_path)["vertex"]
    assert pointed.configured is False and "points at no file" in pointed.detail


@pytest.mark.parametrize(("ollama_host", "shown", "local"), [
    (None, "http://127.0.0.1:11434", True),
    ("localhost:11500", "http://localhost:11500", True),
    ("http://[::1]:11434", "http://[::1]:11434", True),
    ("0.0.0.0", "http://0.0.0.0:11434", False),
    ("https://admin:hunter2@gpu-box.internal:443", "https://gpu-box.internal:443", False),
])
def test_ollama_host_and_offline_use(tmp_path: Path, ollama_host: str | None, shown: str, local: bool) -> None:
    env = {"OLLAMA_HOST": ollama_host} if ollama_host else {}
    ollama = _by_name(env, tmp_path)["ollama"]
    assert f"host {shown} " in ollama.detail
    assert ollama.local is local
    assert "hunter2" not in ollama.detail and "admin" not in ollama.detail
    assert (ollama.fix is None) is local


def test_missing_sdk_names_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers_cli, "module_installed", lambda name: name != "ollama")
    ollama = _by_name({}, tmp_path)["ollama"]
    assert ollama.sdk_installed is False
    assert ollama.fix == "pip install 'clinsum[ollama]'"
    assert module_installed("json") and not module_installed("no_such_module_for_clinsum")
    assert not module_installed("no_such_parent.child")


def test_langchain_tracing_is_flagged(tmp_path: Path) -> None:
    assert "LangSmith tracing is on" in _by_name({"LANGSMITH_TRACING": "true"}, tmp_path)["langchain"].detail
    assert "LangSmith" not in _by_name({}, tmp_path)["langchain"].detail


def test_safe_url_drops_userinfo_and_query() -> None:
    assert safe_url("http://u:p@h:1/x?token=t#f") == "http://h:1/x"


def test_command_table_and_json(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": SECRET, "HOME": str(tmp_path), "OLLAMA_HOST": "127.0.0.1:11434"}
    runner = CliRunner()
    table = runner.invoke(app, ["providers"], env=env, terminal_width=200)
    assert table.exit_code == 0, table.output
    assert SECRET not in table.output
    for name in registry.available():
        assert name in table.output
    as_json = runner.invoke(app, ["providers", "--format", "json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert [r["provider"] for r in rows] == list(registry.available())
    assert {r["provider"]: r["local"] for r in rows}["ollama"] is True
    assert SECRET not in as_json.stdout


def test_listing_imports_no_sdk() -> None:
    code = (
        "import sys; from clinsum.cli.providers import provider_statuses; provider_statuses(); "
        "print([m for m in ('anthropic', 'google.genai', 'langchain', 'langchain_core', 'ollama', 'httpx')"
        " if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def ollama_server() -> Iterator[HTTPServer]:
    with local_server() as server:
        yield server


def test_probe_reports_a_running_ollama_and_its_models(ollama_server: HTTPServer, tmp_path: Path) -> None:
    ollama_server.expect_request("/api/version").respond_with_json({"version": "0.6.8"})
    ollama_server.expect_request("/api/tags").respond_with_json(
        {"models": [{"name": "llama3.1:8b", "size": 4920753328}, {"name": "qwen2.5:7b", "size": 4683087332}]}
    )
    env = {"OLLAMA_HOST": f"http://127.0.0.1:{ollama_server.port}"}
    ollama = {s.provider: s for s in provider_statuses(env, tmp_path, probe=True)}["ollama"]
    assert ollama.configured is True and ollama.fix is None
    assert "running, Ollama 0.6.8, 2 model(s) pulled: llama3.1:8b, qwen2.5:7b" in ollama.detail
    assert _by_name(env, tmp_path)["ollama"].detail.endswith("not probed")  # no probe unless asked


def test_probe_reports_an_ollama_that_is_not_running(tmp_path: Path) -> None:
    env = {"OLLAMA_HOST": f"127.0.0.1:{closed_port()}"}
    result = CliRunner().invoke(app, ["providers", "--probe", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    ollama = {r["provider"]: r for r in json.loads(result.stdout)}["ollama"]
    assert ollama["configured"] is False
    assert "not reachable (ConnectError)" in ollama["detail"]
    assert ollama["fix"] == "start it with `ollama serve`"
