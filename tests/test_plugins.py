"""Plugin providers are first-class: listed as what they are, built like built-ins, and can batch."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from clinsum import evaluation
from clinsum.cli.providers import provider_statuses
from clinsum.config import RunConfig
from clinsum.errors import ProviderError
from clinsum.providers import registry
from clinsum.providers.base import BaseProvider, BatchCapable, Generation, Request
from clinsum.records import Note
from clinsum.store import Store


class FakeBatch:
    def __init__(self, provider: BatchedPlugin) -> None:
        self.provider = provider

    async def run(self, items: Iterable[tuple[str, Request]], *, batch_id: str | None = None,
                  on_submitted: Callable[[str], None] | None = None,
                  on_poll: Callable[[Any], None] | None = None) -> dict[str, Generation | ProviderError]:
        items = list(items)
        self.provider.batched.append([request.note.id for _, request in items if request.note])
        if batch_id is None and on_submitted is not None:
            on_submitted("plugin-batch-1")
        return {key: Generation(text=f"batched summary of {request.note.id if request.note else '?'}")
                for key, request in items}


class BatchedPlugin(BaseProvider):
    """A third-party provider with the batch interface."""

    local = True

    def __init__(self, spec: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(spec, options)
        self.live: list[Request] = []
        self.batched: list[list[str]] = []
        BUILT.append(self)

    async def generate(self, request: Request) -> Generation:
        self.live.append(request)
        return Generation(text="live summary")

    def batch(self, *, poll_interval_s: float, max_wait_s: float | None) -> FakeBatch:
        return FakeBatch(self)


BUILT: list[BatchedPlugin] = []


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A clean in-process registry for this test only."""
    fresh: dict[str, Any] = {}
    monkeypatch.setattr(registry, "_REGISTERED", fresh)
    BUILT.clear()
    return fresh


def test_a_registered_plugin_is_listed_as_itself_with_what_it_declares(plugins: dict[str, Any],
                                                                       tmp_path: Path) -> None:
    registry.register("batchy", BatchedPlugin)
    registry.register("extractive", BatchedPlugin)  # takes a built-in's name: create() builds the plugin
    statuses = {s.provider: s for s in provider_statuses({}, tmp_path)}
    for name in ("batchy", "extractive"):
        status = statuses[name]
        assert status.origin == "registered" and status.local is True
        assert "can batch" in status.detail and "copies sentences" not in status.detail
    assert isinstance(registry.create("extractive:x"), BatchedPlugin)
    assert statuses["anthropic"].origin == "built in"


def test_an_entry_point_plugin_is_listed_without_being_imported(plugins: dict[str, Any], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "clinsum_plugin_demo.py"
    package.write_text("raise RuntimeError('a listing must not import a plugin')\n")
    dist = tmp_path / "clinsum_plugin_demo-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clinsum-plugin-demo\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[clinsum.providers]\ndemo = clinsum_plugin_demo:create\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    statuses = {s.provider: s for s in provider_statuses({}, tmp_path)}
    demo = statuses["demo"]
    assert demo.origin == "entry point clinsum-plugin-demo 1.2"
    assert demo.target == "clinsum_plugin_demo:create" and demo.sdk_installed is True
    assert "clinsum_plugin_demo" not in sys.modules  # listing looked, it did not import


async def test_a_plugin_with_the_batch_interface_batches(plugins: dict[str, Any], tmp_path: Path) -> None:
    registry.register("batchy", BatchedPlugin)
    assert isinstance(BatchedPlugin("batchy:m"), BatchCapable)
    BUILT.clear()
    notes = [Note(id=f"n{i}", text=f"Patient {i} denies chest pain.") for i in range(3)]
    store = Store.open(tmp_path / "c.db")
    config = RunConfig(providers=["batchy:m"], metrics=["length"], batch=True)  # type: ignore[list-item]
    run_id = await evaluation.run(config, store, notes=notes)
    (provider,) = BUILT
    assert provider.batched == [["n0", "n1", "n2"]]
    assert provider.live == []  # every summary came from the batch, through the response cache
    assert sorted(s.text for s in store.summaries(run_id)) == [f"batched summary of n{i}" for i in range(3)]
    assert store.batch_id(run_id, "batchy:m") == "plugin-batch-1"
