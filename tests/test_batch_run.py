"""``clinsum run --batch``: Anthropic summaries through the Message Batches API, resumable."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from provider_fakes import anthropic_text, json_response, local_http, local_http_server  # noqa: F401
from pytest_httpserver import HTTPServer
from werkzeug import Request as WsgiRequest
from werkzeug import Response

from clinsum import evaluation
from clinsum.config import RunConfig
from clinsum.errors import TransientError
from clinsum.providers.common import cost_usd
from clinsum.records import Note
from clinsum.store import Store

NOTES = [Note(id=f"n{i}", text=f"Patient {i} reports knee pain; denies fever.") for i in range(4)]
BATCH = "msgbatch_01"


class BatchApi:
    """Message Batches endpoints: answers every request but the last, which expires."""

    def __init__(self, server: HTTPServer, *, ended_after_polls: int) -> None:
        self.created: list[list[dict[str, Any]]] = []
        self.polls = 0
        self.ended_after_polls = ended_after_polls
        server.expect_request("/v1/messages/batches", method="POST").respond_with_handler(self.create)
        server.expect_request(f"/v1/messages/batches/{BATCH}", method="GET").respond_with_handler(self.retrieve)
        server.expect_request(f"/v1/messages/batches/{BATCH}/results", method="GET").respond_with_handler(
            self.results)
        server.expect_request("/v1/messages", method="POST").respond_with_json(anthropic_text("live summary"))
        self.base = server.url_for("/").rstrip("/")

    def body(self, status: str) -> dict[str, Any]:
        return {"id": BATCH, "type": "message_batch", "processing_status": status,
                "request_counts": {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
                "ended_at": None, "created_at": "2026-11-26T05:00:00Z", "expires_at": "2026-11-27T05:00:00Z",
                "cancel_initiated_at": None, "archived_at": None,
                "results_url": f"{self.base}/v1/messages/batches/{BATCH}/results"}

    def create(self, request: WsgiRequest) -> Response:
        self.created.append(json.loads(request.get_data())["requests"])
        return json_response(self.body("in_progress"))

    def retrieve(self, _request: WsgiRequest) -> Response:
        self.polls += 1
        return json_response(self.body("ended" if self.polls > self.ended_after_polls else "in_progress"))

    def results(self, _request: WsgiRequest) -> Response:
        sent = self.created[-1]
        lines = [{"custom_id": r["custom_id"], "result": {"type": "succeeded", "message": anthropic_text(
            f"batched summary {i}", input_tokens=1000, output_tokens=200)}} for i, r in enumerate(sent[:-1])]
        lines.append({"custom_id": sent[-1]["custom_id"], "result": {"type": "expired"}})
        return Response("\n".join(json.dumps(line) for line in lines) + "\n", 200,
                        content_type="application/binary")


def config(base: str, **extra: Any) -> RunConfig:
    return RunConfig(providers=[{"spec": "anthropic:claude-sonnet-5-5", "options": {"base_url": base}}],  # type: ignore[list-item]
                     metrics=[], batch=True, batch_poll_s=0.01, **extra)


def test_a_batch_run_pays_batch_prices_and_resumes_without_resubmitting(tmp_path, local_http, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    api = BatchApi(local_http, ended_after_polls=3)
    store = Store.open(tmp_path / "s.db")

    # The batch is still running when the run stops waiting: the run is interrupted, the id kept.
    with pytest.raises(TransientError, match="resume later"):
        asyncio.run(evaluation.run(config(api.base, batch_max_wait_s=0.01), store, notes=NOTES))
    [run] = store.runs()
    assert run["status"] == "interrupted" and store.batch_id(run["id"], "anthropic:claude-sonnet-5-5") == BATCH
    assert len(api.created) == 1 and len(api.created[0]) == len(NOTES)

    # Resume collects the same batch: no second batch, one live call for the expired request.
    asyncio.run(evaluation.run(config(api.base), store, run_id=run["id"]))
    assert len(api.created) == 1
    summaries = store.summaries(run["id"])
    batched = [s for s in summaries if s.text.startswith("batched summary")]
    live = [s for s in summaries if s.text == "live summary"]
    assert len(batched) == 3 and len(live) == 1
    live_calls = [r for r, _ in local_http.log if r.path == "/v1/messages"]
    assert len(live_calls) == 1
    # Batch answers cost half the list price.
    list_price = cost_usd("anthropic", "claude-sonnet-5-5", 1000, 200)
    assert list_price and batched[0].usage.cost_usd == pytest.approx(0.5 * list_price)
    assert store.run(run["id"])["status"] == "finished"
