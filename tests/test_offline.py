"""The offline guard refuses real outbound connections before they happen, and lets loopback through.

Every "outbound" attempt here targets 203.0.113.1 (TEST-NET-3, never routed), 2001:db8::1
(documentation range) or example.com, and the guard refuses it before the original
socket function runs, which the spies below prove: nothing is sent, nothing is resolved.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from ollama_fake import OllamaFake
from provider_fakes import local_http, local_http_server  # noqa: F401
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from clinsum.dispatch import Dispatcher
from clinsum.errors import ConfigError, FatalError
from clinsum.offline import (
    OfflineViolation,
    check_offline_providers,
    guard_installed,
    install_guard,
    is_loopback_host,
    offline_guard,
    uninstall_guard,
    violation_in,
)
from clinsum.providers.base import Request
from clinsum.providers.ollama import create as create_ollama

OUTSIDE_V4 = ("203.0.113.1", 80)
OUTSIDE_V6 = ("2001:db8::1", 80, 0, 0)




@pytest.fixture
def socket_spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Record every call that reaches the real connect/sendto/getaddrinfo (installed under the guard)."""
    calls: dict[str, list[Any]] = {"connect": [], "connect_ex": [], "sendto": [], "getaddrinfo": []}
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto, real_getaddrinfo = socket.socket.sendto, socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        calls["connect"].append(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        calls["connect_ex"].append(address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        calls["sendto"].append(args[-1])
        return real_sendto(self, data, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        calls["getaddrinfo"].append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def test_outbound_tcp_is_refused_before_connect(socket_spies: dict[str, list[Any]]) -> None:
    with offline_guard():
        with pytest.raises(OfflineViolation, match=r"refused to connect to 203\.0\.113\.1:80"):
            socket.create_connection(OUTSIDE_V4, timeout=1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(OfflineViolation):
            sock.connect(OUTSIDE_V4)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(OfflineViolation):
            sock.connect_ex(OUTSIDE_V4)
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock, pytest.raises(
            OfflineViolation, match=r"\[2001:db8::1\]:80"
        ):
            sock.connect(OUTSIDE_V6)
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock, pytest.raises(OfflineViolation):
            sock.connect(("::ffff:203.0.113.1", 80, 0, 0))  # IPv4-mapped is judged as IPv4
    assert socket_spies["connect"] == [] and socket_spies["connect_ex"] == []


def test_udp_send_and_name_lookup_are_refused_before_they_leave(socket_spies: dict[str, list[Any]]) -> None:
    with offline_guard():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(OfflineViolation):
            sock.sendto(b"patient note", ("203.0.113.1", 53))
        with pytest.raises(OfflineViolation, match=r"refused to resolve example\.com:443"):
            socket.getaddrinfo("example.com", 443)
        with pytest.raises(OfflineViolation):
            socket.gethostbyname("note-text-as-a-subdomain.example.com")
        with pytest.raises(OfflineViolation):
            socket.create_connection(("example.com", 80), timeout=1)
        assert all(info[4][0] in ("127.0.0.1", "::1") for info in socket.getaddrinfo("localhost", 80))
    assert socket_spies["sendto"] == []
    assert socket_spies["getaddrinfo"] == ["localhost"]  # the real resolver saw only localhost


def test_http_clients_are_refused_sync_and_async(socket_spies: dict[str, list[Any]]) -> None:
    async def fetch(url: str) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(url)

    with offline_guard():
        with pytest.raises(OfflineViolation):
            httpx.get("http://203.0.113.1/", timeout=2)
        with pytest.raises(OfflineViolation):
            httpx.get("https://example.com/", timeout=2)
        for url in ("http://203.0.113.1/", "https://example.com/"):
            with pytest.raises(BaseException) as caught:  # anyio may wrap it in an ExceptionGroup
                asyncio.run(fetch(url))
            assert isinstance(violation_in(caught.value), OfflineViolation)
    assert socket_spies["connect"] == []
    assert "example.com" not in socket_spies["getaddrinfo"]


def test_loopback_still_works_under_the_guard(local_http: HTTPServer) -> None:
    local_http.expect_request("/ping").respond_with_data("pong")
    with offline_guard():
        assert httpx.get(f"http://127.0.0.1:{local_http.port}/ping", timeout=5).text == "pong"
        assert httpx.get(f"http://localhost:{local_http.port}/ping", timeout=5).text == "pong"


def test_raw_connect_by_loopback_name_works(local_http: HTTPServer) -> None:
    with offline_guard(), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(("localhost", local_http.port))  # resolved in C: the guard checks the answers
        sock.sendall(b"GET /nothing HTTP/1.0\r\n\r\n")
        assert sock.recv(12).startswith(b"HTTP/1.")


def test_localhost_mapped_to_a_public_address_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                         socket_spies: dict[str, list[Any]]) -> None:
    def hosts_file_says(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.1", port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", hosts_file_says)  # as if /etc/hosts mapped localhost away
    with offline_guard():
        with pytest.raises(OfflineViolation, match="no loopback address"):
            socket.getaddrinfo("localhost", 80)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(
            OfflineViolation, match=r"203\.0\.113\.1"
        ):
            sock.connect(("localhost", 80))
    assert socket_spies["connect"] == []


def test_the_guard_is_removed_afterwards_and_nests() -> None:
    originals = (socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto,
                 socket.create_connection, socket.getaddrinfo, socket.gethostbyname)
    assert "connect" not in socket.socket.__dict__
    with offline_guard():
        assert guard_installed()
        assert socket.socket.connect is not originals[0]
        install_guard()  # nested: the inner uninstall must not lift the outer guard
        uninstall_guard()
        assert guard_installed()
        with pytest.raises(OfflineViolation):
            socket.getaddrinfo("example.com", 80)
    assert not guard_installed()
    assert (socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto,
            socket.create_connection, socket.getaddrinfo, socket.gethostbyname) == originals
    assert "connect" not in socket.socket.__dict__  # the inherited C method is back, not a copy
    with pytest.raises(OfflineViolation), offline_guard():
        socket.create_connection(OUTSIDE_V4)
    assert not guard_installed()  # removed even when the block raised


def test_violation_is_fatal_so_never_retried() -> None:
    assert issubclass(OfflineViolation, FatalError)
    assert not issubclass(OfflineViolation, OSError)  # libraries must not swallow it as a network error


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("http://localhost:11434", True), ("http://[::1]:11434/", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.5", False), ("0.0.0.0", False), ("example.com", False), ("localhost.evil.com", False),
    ("db.localhost", False), ("127.1", False),
    ("http://gpu-box:11434", False), ("", False), (None, False),
])
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


class _Stub:
    def __init__(self, spec: str, local: bool, host: str | None = None) -> None:
        self.spec, self.local, self.host = spec, local, host


def test_only_local_providers_pass_the_offline_check() -> None:
    check_offline_providers([_Stub("extractive:lead", True),
                             _Stub("ollama:llama3.1:8b", True, "http://127.0.0.1:11434")])
    with pytest.raises(ConfigError, match="'anthropic:claude-sonnet-4-5' sends requests off this machine"):
        check_offline_providers([_Stub("extractive:lead", True), _Stub("anthropic:claude-sonnet-4-5", False)])
    with pytest.raises(ConfigError, match="not a loopback host"):  # a provider that misjudges itself
        check_offline_providers([_Stub("ollama:llama3.1:8b", True, "http://10.1.2.3:11434")])


async def test_offline_evaluation_against_a_local_ollama(local_http: HTTPServer) -> None:
    fake = OllamaFake(local_http, lambda payload: "Summary: " + payload["messages"][-1]["content"][:40])
    with offline_guard():
        ollama = create_ollama("ollama:llama3.1:8b", {"host": f"http://127.0.0.1:{local_http.port}"})
        check_offline_providers([ollama])
        generation = await Dispatcher(None, base_delay_s=0).generate(
            ollama, Request(prompt="67M, 3 days of productive cough and fever; CXR: RLL consolidation.")
        )
    assert generation.text == "Summary: 67M, 3 days of productive cough and feve"
    assert generation.input_tokens and generation.output_tokens
    assert len(fake.requests) == 1


async def test_a_remote_ollama_under_the_guard_fails_with_the_violation(
    socket_spies: dict[str, list[Any]],
) -> None:
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    dispatcher = Dispatcher(None, base_delay_s=5, sleep=record)
    with offline_guard():
        for host in ("http://203.0.113.1:11434", "http://example.com:11434"):
            ollama = create_ollama("ollama:llama3.1:8b", {"host": host, "timeout_s": 2})
            with pytest.raises(OfflineViolation):
                await dispatcher.generate(ollama, Request(prompt="a note"))
    assert sleeps == [] and dispatcher.calls == 2  # fatal: the dispatcher did not back off and retry
    assert socket_spies["connect"] == []


# -- the command line: `clinsum run --offline` ----------------------------------------------------


def _notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.jsonl"
    notes = [
        {"id": "n1", "text": "58M with CHF and HTN, fatigue for 5 weeks. Plan: echo, continue lisinopril."},
        {"id": "n2", "text": "Knee pain after a fall. No fracture on X-ray. Plan: ice, NSAIDs, PT."},
    ]
    path.write_text("\n".join(json.dumps(n) for n in notes) + "\n")
    return path


def test_cli_run_offline_with_a_local_ollama(local_http: HTTPServer, tmp_path: Path,
                                             socket_spies: dict[str, list[Any]]) -> None:
    from clinsum.cli import app

    fake = OllamaFake(local_http, "Follow-up summary of the visit.")
    result = CliRunner().invoke(app, [
        "run", "--notes", str(_notes(tmp_path)), "--provider", "ollama:llama3.1:8b",
        "-o", f"host=http://127.0.0.1:{local_http.port}", "--offline", "--metric", "length",
        "--db", str(tmp_path / "clinsum.db"),
    ])
    assert result.exit_code == 0, result.output
    assert len(fake.requests) == 2
    assert not guard_installed()
    contacted = {address[0] for address in socket_spies["connect"] if isinstance(address, tuple)}
    assert contacted <= {"127.0.0.1"}

    from clinsum.store import Store

    store = Store.open(str(tmp_path / "clinsum.db"))
    run_id = store.latest_run_id()
    assert run_id is not None
    summaries = store.summaries(run_id)
    assert {s.note_id for s in summaries} == {"n1", "n2"}
    assert all(s.ok and s.text == "Follow-up summary of the visit." for s in summaries)
    assert all(s.usage.cost_usd == 0.0 and s.usage.input_tokens for s in summaries)


def test_cli_run_offline_refuses_a_remote_provider_before_any_connection(
    tmp_path: Path, socket_spies: dict[str, list[Any]],
) -> None:
    from clinsum.cli import app

    result = CliRunner().invoke(app, [
        "run", "--notes", str(_notes(tmp_path)), "--provider", "ollama:llama3.1:8b",
        "-o", "host=http://203.0.113.1:11434", "--offline", "--metric", "length",
        "--db", str(tmp_path / "clinsum.db"),
    ])
    assert result.exit_code != 0
    assert "ollama:llama3.1:8b" in result.output and "off this machine" in result.output
    assert socket_spies["connect"] == []
    assert not guard_installed()


def _summary_or_verdict(payload: dict[str, Any]) -> str:
    """A summary, or (when a JSON schema is asked for) a judge verdict scoring 4 on every attribute."""
    schema = payload.get("format")
    if not schema:
        return "58M with CHF and HTN; fatigue for 5 weeks; echo planned."
    names = schema["properties"]["attributes"]["properties"]
    return json.dumps({"errors": [], "attributes": {n: {"rationale": "Faithful to the note.", "score": 4}
                                                    for n in names}})


def test_cli_offline_run_with_an_ollama_judge(local_http: HTTPServer, tmp_path: Path,
                                             socket_spies: dict[str, list[Any]]) -> None:
    from clinsum.cli import app
    from clinsum.store import Store

    fake = OllamaFake(local_http, _summary_or_verdict)
    result = CliRunner().invoke(app, [
        "run", "--notes", str(_notes(tmp_path)), "--provider", "ollama:llama3.1:8b",
        "--judge", "ollama:qwen2.5:7b", "--metric", "length", "--offline", "--db", str(tmp_path / "c.db"),
    ], env={"OLLAMA_HOST": f"http://127.0.0.1:{local_http.port}"})
    assert result.exit_code == 0, result.output
    judged = [r for r in fake.requests if r.get("format")]
    assert {r["model"] for r in judged} == {"qwen2.5:7b"} and len(judged) == 2
    store = Store.open(str(tmp_path / "c.db"))
    run_id = store.latest_run_id()
    assert run_id is not None
    accurate = [s for s in store.scores(run_id) if s.metric == "judge_accurate"]
    assert sorted(s.note_id for s in accurate) == ["n1", "n2"]
    assert all(s.value == 4 for s in accurate)
    contacted = {address[0] for address in socket_spies["connect"] if isinstance(address, tuple)}
    assert contacted <= {"127.0.0.1"}


# -- `clinsum score --offline` through the library: evaluation.score -----------------------------


def _score_inputs() -> tuple[list[Any], list[Any]]:
    from clinsum.records import Note, Summary

    notes = [Note(id="n1", text="58M with CHF and HTN, fatigue for 5 weeks. Plan: echo.")]
    return notes, [Summary(note_id="n1", system="production", text="58M, CHF, HTN; echo planned.")]


@pytest.mark.parametrize("judge", ["anthropic:claude-sonnet-4-5", "vertex:gemini-2.5-flash"])
async def test_score_offline_refuses_a_remote_judge_before_any_call_and_says_offline(
    judge: str, tmp_path: Path, socket_spies: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clinsum import evaluation
    from clinsum.config import RunConfig
    from clinsum.store import Store

    for variable in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    config = RunConfig(metrics=["length", "judge"], judge={"judges": [judge]}, offline=True)  # type: ignore[arg-type]
    store = Store.open(tmp_path / "c.db")
    notes, summaries = _score_inputs()
    with pytest.raises(ConfigError) as caught:
        await evaluation.score(config, store, notes, summaries)
    assert str(caught.value).startswith(f"offline mode: '{judge}' would send notes off this machine")
    assert "API_KEY" not in str(caught.value)  # offline first, not "set the key"
    assert store.latest_run_id() is None  # refused before the run was even recorded
    assert socket_spies["connect"] == [] and socket_spies["getaddrinfo"] == []
    assert not guard_installed()


async def test_score_offline_refuses_a_judge_on_a_remote_ollama_host(
    tmp_path: Path, socket_spies: dict[str, list[Any]],
) -> None:
    from clinsum import evaluation
    from clinsum.config import RunConfig
    from clinsum.store import Store

    config = RunConfig(metrics=["judge"], offline=True, judge={  # type: ignore[arg-type]
        "judges": ["ollama:qwen2.5:7b"], "provider_options": {"*": {"host": "http://203.0.113.1:11434"}}})
    notes, summaries = _score_inputs()
    with pytest.raises(ConfigError, match=r"'ollama:qwen2\.5:7b' sends requests off this machine"):
        await evaluation.score(config, Store.open(tmp_path / "c.db"), notes, summaries)
    assert socket_spies["connect"] == []


async def test_score_offline_with_a_local_judge_runs_under_the_guard(local_http: HTTPServer,
                                                                     tmp_path: Path) -> None:
    from clinsum import evaluation
    from clinsum.config import RunConfig
    from clinsum.store import Store

    guarded: list[bool] = []

    def answer(payload: dict[str, Any]) -> str:
        guarded.append(guard_installed())
        return _summary_or_verdict(payload)

    OllamaFake(local_http, answer)
    config = RunConfig(metrics=["judge"], offline=True, judge={  # type: ignore[arg-type]
        "judges": ["ollama:qwen2.5:7b"],
        "provider_options": {"*": {"host": f"http://127.0.0.1:{local_http.port}"}}})
    store = Store.open(tmp_path / "c.db")
    notes, summaries = _score_inputs()
    run_id = await evaluation.score(config, store, notes, summaries)
    assert guarded == [True]  # the judge was asked while the socket guard was on
    assert not guard_installed()
    assert [s.value for s in store.scores(run_id) if s.metric == "judge_accurate"] == [4]


def test_run_offline_with_a_keyless_remote_provider_says_offline_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, socket_spies: dict[str, list[Any]],
) -> None:
    from clinsum.cli import app

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    result = CliRunner().invoke(app, [
        "run", "--notes", str(_notes(tmp_path)), "--provider", "anthropic:claude-sonnet-4-5",
        "--offline", "--metric", "length", "--db", str(tmp_path / "c.db")])
    assert result.exit_code != 0
    assert "offline mode: 'anthropic:claude-sonnet-4-5' would send notes off this machine" in result.output
    assert "ANTHROPIC_API_KEY" not in result.output
    assert socket_spies["connect"] == []
