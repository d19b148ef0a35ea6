"""Vertex AI batch prediction against HTTP-level fakes of its two services, through the real SDKs.

The fakes serve the documented shapes:
- the ``batchPredictionJobs`` resource (REST v1: ``name``, ``model``, ``state`` JOB_STATE_*,
  ``inputConfig.gcsSource.uris``, ``outputConfig.gcsDestination.outputUriPrefix``,
  ``outputInfo.gcsOutputDirectory``, ``completionStats`` with int64 counts as strings,
  ``error`` as a google.rpc.Status), created and read by google-genai's ``batches`` module;
- the Cloud Storage JSON API (``upload/storage/v1/b/B/o?uploadType=media&name=``,
  ``storage/v1/b/B/o?prefix=`` listing ``items``, ``storage/v1/b/B/o/NAME?alt=media``);
- the Gemini batch output file ``predictions.jsonl``: one line per request, in no particular
  order, each echoing its ``request`` (labels included), with ``status`` empty and a
  ``response`` on success, or a non-empty ``status`` on failure.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from provider_fakes import (  # noqa: F401
    VERTEX_LOCATION,
    VERTEX_PROJECT,
    json_response,
    local_http,
    local_http_server,
    vertex_answer,
    vertex_path,
)
from pytest_httpserver import HTTPServer
from test_provider_vertex import adc, fake_client, fake_credentials, write_adc_file  # noqa: F401
from werkzeug import Request as WsgiRequest
from werkzeug import Response

from clinsum import evaluation
from clinsum.config import RunConfig
from clinsum.errors import ConfigError, FatalError, SetupError, TransientError
from clinsum.providers import registry
from clinsum.providers.base import BatchCapable, Generation, Request
from clinsum.providers.common import cost_usd
from clinsum.providers.vertex import create
from clinsum.providers.vertex_batch import (
    BIGQUERY_HINT,
    KEY_COLUMN,
    LABEL,
    STORAGE_HINT,
    BigQueryStaging,
    CloudStorageStaging,
    GoogleHttp,
    VertexBatch,
    split_bq_dataset,
    split_bq_table,
)
from clinsum.records import Note
from clinsum.store import Store

MODEL = "gemini-2.5-flash"
BUCKET = "clinsum-batches"
JOBS = f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}/batchPredictionJobs"
JOB_ID = "5137340662307807232"
JOB_NAME = f"projects/123456789012/locations/{VERTEX_LOCATION}/batchPredictionJobs/{JOB_ID}"
DATASET = "clinsum_batches"
BQ = f"/bigquery/v2/projects/{VERTEX_PROJECT}"
SCHEMA = {"type": "object", "properties": {"accurate": {"type": "integer"}}, "required": ["accurate"]}

Answer = Callable[[int, dict[str, Any]], dict[str, Any] | None]
"""What the fake model does with input line i: an output row, or None to leave it out."""


def answered(i: int, request: dict[str, Any]) -> dict[str, Any]:
    text = f"batched summary {request['contents'][0]['parts'][0]['text']}"
    response = vertex_answer(text, prompt_tokens=1000, candidates_tokens=200, model_version=f"{MODEL}-001@default")
    response["trafficBreakdown"] = {"batch": 1}  # a field this SDK version does not know: must not break reading
    return {"status": "", "response": response}


def all_but_last_fails(n: int) -> Answer:
    def answer(i: int, request: dict[str, Any]) -> dict[str, Any]:
        if i < n - 1:
            return answered(i, request)
        return {"status": 'Bad Request: {"error": {"code": 400, "message": "Request contains an invalid '
                          'argument.", "status": "INVALID_ARGUMENT"}}'}
    return answer


class VertexBatchFake:
    """Vertex AI batch prediction and the Cloud Storage it reads and writes, on one fake server."""

    def __init__(self, server: HTTPServer, *, answer: Answer = answered, polls_until_done: int = 1,
                 final_state: str = "JOB_STATE_SUCCEEDED", error: str | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.created: list[dict[str, Any]] = []
        self.polls = 0
        self.answer = answer
        self.polls_until_done = polls_until_done
        self.final_state = final_state
        self.error = error
        self.rows: list[dict[str, Any]] = []
        self.finished = False
        self.output_info: dict[str, Any] | None = None
        server.expect_request(JOBS, method="POST").respond_with_handler(self.create)
        server.expect_request(re.compile(rf"^{JOBS}/\d+$"), method="GET").respond_with_handler(self.get)
        self.url = server.url_for("/").rstrip("/")
        self.serve_storage(server)

    def serve_storage(self, server: HTTPServer) -> None:
        server.expect_request(f"/upload/storage/v1/b/{BUCKET}/o", method="POST").respond_with_handler(self.upload)
        server.expect_request(f"/storage/v1/b/{BUCKET}/o", method="GET").respond_with_handler(self.list)
        server.expect_request(re.compile(rf"^/storage/v1/b/{BUCKET}/o/.+"), method="GET").respond_with_handler(
            self.download)

    # --- Cloud Storage JSON API ---
    def upload(self, request: WsgiRequest) -> Response:
        assert request.args["uploadType"] == "media"
        name = request.args["name"]
        self.objects[name] = request.get_data()
        return json_response({"kind": "storage#object", "id": f"{BUCKET}/{name}/1764633600000000", "name": name,
                              "bucket": BUCKET, "generation": "1764633600000000",
                              "contentType": request.content_type, "size": str(len(self.objects[name]))})

    def list(self, request: WsgiRequest) -> Response:
        prefix = request.args.get("prefix", "")
        items = [{"kind": "storage#object", "name": n, "bucket": BUCKET, "size": str(len(b))}
                 for n, b in sorted(self.objects.items()) if n.startswith(prefix)]
        # one object a page, so that following nextPageToken is exercised
        start = int(request.args.get("pageToken", "0"))
        body: dict[str, Any] = {"kind": "storage#objects", "items": items[start:start + 1]}
        if start + 1 < len(items):
            body["nextPageToken"] = str(start + 1)
        return json_response(body)

    def download(self, request: WsgiRequest) -> Response:
        assert request.args["alt"] == "media"
        name = request.path.removeprefix(f"/storage/v1/b/{BUCKET}/o/")
        if name not in self.objects:
            return json_response({"error": {"code": 404, "message": f"No such object: {BUCKET}/{name}"}}, 404)
        return Response(self.objects[name], 200, content_type="application/octet-stream")

    # --- batchPredictionJobs ---
    @property
    def input_uri(self) -> str:
        uris: list[str] = self.created[-1]["inputConfig"]["gcsSource"]["uris"]
        return uris[0]

    def object_name(self, uri: str) -> str:
        assert uri.startswith(f"gs://{BUCKET}/")
        return uri.removeprefix(f"gs://{BUCKET}/")

    def input_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.objects[self.object_name(self.input_uri)].decode().splitlines()]

    def job(self, state: str) -> dict[str, Any]:
        sent = self.created[-1]
        body: dict[str, Any] = {
            "name": JOB_NAME, "displayName": sent["displayName"], "model": sent["model"],
            "inputConfig": sent["inputConfig"], "outputConfig": sent["outputConfig"], "state": state,
            "createTime": "2026-12-02T00:40:00.000000Z", "updateTime": "2026-12-02T00:41:00.000000Z",
        }
        if state in {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_FAILED",
                     "JOB_STATE_CANCELLED"}:
            body["endTime"] = "2026-12-02T01:00:00.000000Z"
            output_info = self.finish()
            if output_info:
                body["outputInfo"] = output_info
            rows = self.rows
            ok = sum(1 for r in rows if not r.get("status"))
            body["completionStats"] = {"successfulCount": str(ok), "failedCount": str(len(rows) - ok),
                                       "incompleteCount": str(len(self.input_lines()) - len(rows))}
            if self.error:
                body["error"] = {"code": 13, "message": self.error}
        return body

    def finish(self) -> dict[str, Any] | None:
        """Run the fake model once (input line i -> self.answer(i, request)) and write what it answered."""
        if not self.finished:
            self.finished = True
            self.rows = []
            for i, line in enumerate(self.input_lines()):
                row = self.answer(i, line["request"])
                if row is not None:
                    self.rows.append({**line, "processed_time": "2026-12-02T00:59:00+00:00", **row})
            self.output_info = self.write_output(list(reversed(self.rows))) if self.rows else None
        return self.output_info

    def write_output(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """predictions.jsonl under the output prefix, each line its request echoed with status and response."""
        prefix = self.created[-1]["outputConfig"]["gcsDestination"]["outputUriPrefix"]
        out_dir = f"{prefix}/prediction-model-2026-12-02T00:40:00.000000Z"
        self.objects[self.object_name(out_dir) + "/predictions.jsonl"] = "".join(
            json.dumps(r) + "\n" for r in rows).encode()
        return {"gcsOutputDirectory": out_dir}

    def create(self, request: WsgiRequest) -> Response:
        self.created.append(json.loads(request.get_data()))
        self.polls = 0
        self.finished = False
        return json_response(self.job("JOB_STATE_PENDING"))

    def get(self, request: WsgiRequest) -> Response:
        assert request.path == f"{JOBS}/{JOB_ID}"
        self.polls += 1
        if self.polls <= self.polls_until_done:
            return json_response(self.job("JOB_STATE_RUNNING"))
        return json_response(self.job(self.final_state))


class BigQueryBatchFake(VertexBatchFake):
    """The same job API, staged in BigQuery (REST v2): a multipart load job, jobs.get, tables.get,
    tabledata.list (two rows a page; JSON columns as JSON text, as the API returns them)."""

    def serve_storage(self, server: HTTPServer) -> None:
        self.tables: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self.loads: list[dict[str, Any]] = []
        self.load_polls = 0
        self.load_error: dict[str, Any] | None = None
        server.expect_request(f"/upload{BQ}/jobs", method="POST").respond_with_handler(self.load)
        server.expect_request(re.compile(rf"^{BQ}/jobs/[\w-]+$"), method="GET").respond_with_handler(self.load_job)
        tables = rf"^{BQ}/datasets/{DATASET}/tables/\w+"
        server.expect_request(re.compile(tables + "$"), method="GET").respond_with_handler(self.table)
        server.expect_request(re.compile(tables + "/data$"), method="GET").respond_with_handler(self.table_data)

    def load(self, request: WsgiRequest) -> Response:
        assert request.args["uploadType"] == "multipart" and request.mimetype == "multipart/related"
        boundary = request.mimetype_params["boundary"].encode()
        _, config_part, data_part, end = request.get_data().split(b"--" + boundary)
        assert end.startswith(b"--")
        config = json.loads(config_part.partition(b"\r\n\r\n")[2])
        data = data_part.partition(b"\r\n\r\n")[2].removesuffix(b"\r\n")
        load = config["configuration"]["load"]
        self.loads.append(load)
        self.tables[load["destinationTable"]["tableId"]] = (
            load["schema"]["fields"], [json.loads(line) for line in data.decode().splitlines()])
        return json_response(self.job_resource("RUNNING"))

    def job_resource(self, state: str) -> dict[str, Any]:
        status: dict[str, Any] = {"state": state}
        if state == "DONE" and self.load_error:
            status["errorResult"] = self.load_error
        return {"kind": "bigquery#job", "id": f"{VERTEX_PROJECT}:US.job_1",
                "jobReference": {"projectId": VERTEX_PROJECT, "jobId": "job_1", "location": "US"},
                "configuration": {"load": self.loads[-1]}, "status": status}

    def load_job(self, request: WsgiRequest) -> Response:
        assert request.path == f"{BQ}/jobs/job_1" and request.args["location"] == "US"
        self.load_polls += 1
        return json_response(self.job_resource("DONE"))

    def table_of(self, uri: str) -> str:
        assert uri.startswith(f"bq://{VERTEX_PROJECT}.{DATASET}.")
        return uri.rsplit(".", 1)[1]

    def input_lines(self) -> list[dict[str, Any]]:
        return self.tables[self.table_of(self.created[-1]["inputConfig"]["bigquerySource"]["inputUri"])][1]

    def write_output(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        table = self.table_of(self.created[-1]["outputConfig"]["bigqueryDestination"]["outputUri"])
        fields = [{"name": "request", "type": "JSON"}, {"name": KEY_COLUMN, "type": "STRING"},
                  {"name": "status", "type": "STRING"}, {"name": "response", "type": "JSON"},
                  {"name": "processed_time", "type": "TIMESTAMP"}]
        self.tables[table] = (fields, rows)
        return {"bigqueryOutputDataset": f"bq://{VERTEX_PROJECT}.{DATASET}", "bigqueryOutputTable": table}

    def table(self, request: WsgiRequest) -> Response:
        name = request.path.rsplit("/", 1)[1]
        fields, rows = self.tables[name]
        return json_response({"kind": "bigquery#table", "schema": {"fields": fields}, "numRows": str(len(rows)),
                              "tableReference": {"projectId": VERTEX_PROJECT, "datasetId": DATASET, "tableId": name}})

    def table_data(self, request: WsgiRequest) -> Response:
        fields, rows = self.tables[request.path.rsplit("/", 2)[1]]
        start = int(request.args.get("pageToken", "0"))

        def cell(row: dict[str, Any], field: dict[str, Any]) -> Any:
            value = row.get(field["name"])
            return json.dumps(value) if field["type"] == "JSON" and value is not None else value

        body: dict[str, Any] = {"kind": "bigquery#tableDataList", "totalRows": str(len(rows)),
                                "rows": [{"f": [{"v": cell(r, f)} for f in fields]} for r in rows[start:start + 2]]}
        if start + 2 < len(rows):
            body["pageToken"] = str(start + 2)
        return json_response(body)


async def no_wait(_seconds: float) -> None:
    return None


def batch_for(server: HTTPServer, fake: VertexBatchFake, **options: Any) -> VertexBatch:
    if isinstance(fake, BigQueryBatchFake):
        options = {"batch_bigquery": f"bq://{VERTEX_PROJECT}.{DATASET}", **options}
        http = GoogleHttp(fake_credentials(), timeout_s=5.0, service="BigQuery", hint=BIGQUERY_HINT)
        staging: Any = BigQueryStaging(http, options["batch_bigquery"], base_url=fake.url, sleep=no_wait)
    else:
        options = {"batch_bucket": f"gs://{BUCKET}/clinsum/runs", **options}
        http = GoogleHttp(fake_credentials(), timeout_s=5.0, service="Cloud Storage", hint=STORAGE_HINT)
        staging = CloudStorageStaging(http, options["batch_bucket"], base_url=fake.url)
    provider = create(f"vertex:{MODEL}", options, client=fake_client(server))
    return VertexBatch(provider, poll_interval_s=0.0, staging=staging)


def items(n: int) -> list[tuple[str, Request]]:
    return [(f"key-{i}", Request(prompt=f"note {i}")) for i in range(n)]


async def test_submit_stages_the_requests_and_creates_the_documented_job(local_http: HTTPServer) -> None:
    fake = VertexBatchFake(local_http)
    batch = batch_for(local_http, fake, thinking_budget=0, seed=7)
    name = await batch.submit([("a", Request(prompt="note a", system="Summarize.")),
                               ("b", Request(prompt="note b", json_schema=SCHEMA, temperature=0.7))])
    assert name == JOB_NAME

    [sent] = fake.created
    assert sent["model"] == f"publishers/google/models/{MODEL}"
    assert sent["inputConfig"]["instancesFormat"] == "jsonl"
    [uri] = sent["inputConfig"]["gcsSource"]["uris"]
    assert re.match(rf"^gs://{BUCKET}/clinsum/runs/clinsum-batch-\d{{8}}-\d{{6}}-[0-9a-f]{{8}}/requests\.jsonl$", uri)
    assert sent["outputConfig"]["gcsDestination"]["outputUriPrefix"] == uri.removesuffix("/requests.jsonl") + "/output"

    a, b = fake.input_lines()
    assert a["request"]["contents"] == [{"role": "user", "parts": [{"text": "note a"}]}]
    assert a["request"]["systemInstruction"] == {"parts": [{"text": "Summarize."}]}
    assert a["request"]["generationConfig"] == {"temperature": 0.0, "maxOutputTokens": 8192, "seed": 7,
                                                "thinkingConfig": {"thinkingBudget": 0}}
    assert b["request"]["generationConfig"]["responseMimeType"] == "application/json"
    assert b["request"]["generationConfig"]["responseJsonSchema"] == SCHEMA
    assert b["request"]["generationConfig"]["temperature"] == 0.7
    labels = {a["request"]["labels"][LABEL], b["request"]["labels"][LABEL]}
    assert len(labels) == 2 and all(re.fullmatch(r"[a-z0-9_-]{1,63}", v) for v in labels)
    headers = [r.headers for r, _ in local_http.log if r.path.startswith("/upload/")]
    assert headers[0]["Authorization"] == "Bearer ya29.fake-token"


async def test_results_are_matched_by_label_not_order_and_cost_half(local_http: HTTPServer) -> None:
    fake = VertexBatchFake(local_http, answer=all_but_last_fails(4), polls_until_done=2)
    batch = batch_for(local_http, fake)
    submitted: list[str] = []
    polled: list[str] = []
    outcomes = await batch.run(items(4), on_submitted=submitted.append, on_poll=lambda s: polled.append(s.state))

    assert submitted == [JOB_NAME]
    assert polled == ["JOB_STATE_RUNNING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    for i in range(3):  # the output file is in reverse order: each answer still lands on its own key
        outcome = outcomes[f"key-{i}"]
        assert isinstance(outcome, Generation), outcome
        assert outcome.text == f"batched summary note {i}"
        assert outcome.input_tokens == 1000 and outcome.output_tokens == 200
        assert outcome.model == f"{MODEL}-001@default" and outcome.latency_s is None
        list_price = cost_usd("vertex", MODEL, 1000, 200)
        assert list_price and outcome.cost_usd == pytest.approx(0.5 * list_price)
    failed = outcomes["key-3"]
    assert isinstance(failed, FatalError) and "invalid argument" in str(failed)


async def test_unusable_rows_and_missing_rows_are_errors_not_answers(local_http: HTTPServer) -> None:
    def answer(i: int, request: dict[str, Any]) -> dict[str, Any] | None:
        if i == 0:
            return answered(i, request)
        if i == 1:  # cut off by the token limit: a truncated summary must not be stored as an answer
            return {"status": "", "response": vertex_answer("67M with CAP, started on", finish_reason="MAX_TOKENS")}
        return None  # never processed

    fake = VertexBatchFake(local_http, answer=answer, final_state="JOB_STATE_PARTIALLY_SUCCEEDED")
    outcomes = await batch_for(local_http, fake).run(items(3))
    assert isinstance(outcomes["key-0"], Generation)
    assert isinstance(outcomes["key-1"], FatalError) and "cut off" in str(outcomes["key-1"])
    assert isinstance(outcomes["key-2"], TransientError)
    assert "JOB_STATE_PARTIALLY_SUCCEEDED" in str(outcomes["key-2"])


async def test_a_failed_job_reports_its_error_for_every_request(local_http: HTTPServer) -> None:
    fake = VertexBatchFake(local_http, answer=lambda i, r: None, final_state="JOB_STATE_FAILED",
                           error="The service agent cannot read gs://clinsum-batches.")
    outcomes = await batch_for(local_http, fake).run(items(2))
    assert set(outcomes) == {"key-0", "key-1"}
    for outcome in outcomes.values():
        assert isinstance(outcome, TransientError)
        assert "JOB_STATE_FAILED" in str(outcome) and "service agent cannot read" in str(outcome)


async def test_waiting_stops_at_max_wait_and_a_resume_does_not_resubmit(local_http: HTTPServer) -> None:
    fake = VertexBatchFake(local_http, polls_until_done=3)
    batch = batch_for(local_http, fake)
    batch.max_wait_s = 0.0
    saved: list[str] = []
    with pytest.raises(TransientError, match="resume later"):
        await batch.run(items(2), on_submitted=saved.append)
    assert saved == [JOB_NAME] and len(fake.created) == 1

    batch.max_wait_s = None
    outcomes = await batch.run(items(2), batch_id=saved[0])
    assert len(fake.created) == 1
    assert all(isinstance(o, Generation) for o in outcomes.values())


async def test_storage_permission_error_is_fatal_and_names_the_bucket_roles(local_http: HTTPServer) -> None:
    fake = VertexBatchFake(local_http)
    local_http.clear()  # only the upload is served, and refused
    local_http.expect_request(f"/upload/storage/v1/b/{BUCKET}/o", method="POST").respond_with_response(
        json_response({"error": {"code": 403, "message": "caller does not have storage.objects.create access"}},
                      403))
    with pytest.raises(FatalError, match=r"roles/storage\.objectAdmin.*storage\.objects\.create"):
        await batch_for(local_http, fake).submit(items(1))
    assert not fake.created


async def test_bigquery_staging_loads_a_table_and_reads_the_output_table_by_key(local_http: HTTPServer) -> None:
    fake = BigQueryBatchFake(local_http, answer=all_but_last_fails(5))
    outcomes = await batch_for(local_http, fake).run(items(5))

    [load] = fake.loads
    assert load["sourceFormat"] == "NEWLINE_DELIMITED_JSON" and load["writeDisposition"] == "WRITE_EMPTY"
    assert load["destinationTable"]["projectId"] == VERTEX_PROJECT
    assert load["destinationTable"]["datasetId"] == DATASET
    table = load["destinationTable"]["tableId"]
    assert re.fullmatch(r"clinsum_batch_\d{8}_\d{6}_[0-9a-f]{8}", table)
    assert {f["name"]: f["type"] for f in load["schema"]["fields"]} == {KEY_COLUMN: "STRING", "request": "JSON"}
    assert fake.load_polls == 1  # RUNNING on insert, polled until DONE
    for row in fake.input_lines():
        assert row[KEY_COLUMN] == row["request"]["labels"][LABEL]
        assert row["request"]["contents"][0]["role"] == "user"

    [sent] = fake.created
    assert sent["inputConfig"] == {"instancesFormat": "bigquery",
                                   "bigquerySource": {"inputUri": f"bq://{VERTEX_PROJECT}.{DATASET}.{table}"}}
    assert sent["outputConfig"] == {"predictionsFormat": "bigquery", "bigqueryDestination": {
        "outputUri": f"bq://{VERTEX_PROJECT}.{DATASET}.{table}_output"}}

    # output rows come back reversed, over three pages, columns in another order than the input's
    for i in range(4):
        outcome = outcomes[f"key-{i}"]
        assert isinstance(outcome, Generation) and outcome.text == f"batched summary note {i}"
        list_price = cost_usd("vertex", MODEL, 1000, 200)
        assert list_price and outcome.cost_usd == pytest.approx(0.5 * list_price)
    assert isinstance(outcomes["key-4"], FatalError)


async def test_a_refused_bigquery_load_is_fatal_and_no_job_is_created(local_http: HTTPServer) -> None:
    fake = BigQueryBatchFake(local_http)
    fake.load_error = {"reason": "notFound", "message": f"Not found: Dataset {VERTEX_PROJECT}:{DATASET}"}
    with pytest.raises(FatalError, match=r"could not load.*notFound: Not found: Dataset"):
        await batch_for(local_http, fake).submit(items(2))
    assert not fake.created


def test_batch_needs_a_bucket_and_names_the_option(adc: pytest.MonkeyPatch) -> None:
    provider = create(f"vertex:{MODEL}", {"project": VERTEX_PROJECT})
    assert isinstance(provider, BatchCapable)
    with pytest.raises(SetupError, match=r'batch_bucket = "gs://BUCKET/PREFIX"'):
        provider.batch(poll_interval_s=1.0, max_wait_s=None)
    with pytest.raises(ConfigError, match="batch_bucket"):
        create(f"vertex:{MODEL}", {"project": VERTEX_PROJECT, "batch_bucket": "s3://not-gcs"})
    with pytest.raises(ConfigError, match="batch_bigquery"):
        create(f"vertex:{MODEL}", {"project": VERTEX_PROJECT, "batch_bigquery": "bq://project-only"})
    both = create(f"vertex:{MODEL}", {"project": VERTEX_PROJECT, "batch_bucket": f"gs://{BUCKET}",
                                      "batch_bigquery": f"bq://{VERTEX_PROJECT}.{DATASET}"})
    with pytest.raises(ConfigError, match="not both"):
        both.batch(poll_interval_s=1.0, max_wait_s=None)


# --- `clinsum run --batch` with a Vertex provider, interrupted and resumed -----------------------

NOTES = [Note(id=f"n{i}", text=f"Patient {i} reports knee pain; denies fever.") for i in range(4)]


def test_a_vertex_batch_run_pays_batch_prices_and_resumes_without_resubmitting(
    tmp_path: Any, local_http: HTTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = VertexBatchFake(local_http, answer=all_but_last_fails(len(NOTES)), polls_until_done=3)
    local_http.expect_request(vertex_path(MODEL), method="POST").respond_with_json(vertex_answer("live summary"))
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", write_adc_file(tmp_path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", VERTEX_PROJECT)
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", VERTEX_LOCATION)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
    spec = f"vertex:{MODEL}"
    options = {"base_url": local_http.url_for("/"), "api_version": "v1", "batch_bucket": f"gs://{BUCKET}/runs"}

    def config(**extra: Any) -> RunConfig:
        return RunConfig(providers=[{"spec": spec, "options": options}],  # type: ignore[list-item]
                         metrics=[], batch=True, batch_poll_s=0.01, **extra)

    store = Store.open(tmp_path / "s.db")
    with pytest.raises(TransientError, match="resume later"):
        asyncio.run(evaluation.run(config(batch_max_wait_s=0.01), store, notes=NOTES))
    [run] = store.runs()
    assert run["status"] == "interrupted" and store.batch_id(run["id"], spec) == JOB_NAME
    assert len(fake.created) == 1 and len(fake.input_lines()) == len(NOTES)
    uploads = [r for r, _ in local_http.log if r.path.startswith("/upload/")]
    assert uploads[0].headers["Authorization"] == "Bearer ya29.from-adc-file"

    asyncio.run(evaluation.run(config(), store, run_id=run["id"]))
    assert len(fake.created) == 1  # collected, not resubmitted
    summaries = store.summaries(run["id"])
    batched = [s for s in summaries if s.text.startswith("batched summary")]
    live = [s for s in summaries if s.text == "live summary"]
    assert len(batched) == 3 and len(live) == 1
    assert len([r for r, _ in local_http.log if r.path == vertex_path(MODEL)]) == 1
    list_price = cost_usd("vertex", MODEL, 1000, 200)
    assert list_price and batched[0].usage.cost_usd == pytest.approx(0.5 * list_price)
    assert store.run(run["id"])["status"] == "finished"


def test_registry_provider_keeps_its_adc_for_staging(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", write_adc_file(tmp_path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", VERTEX_PROJECT)
    provider = registry.create(f"vertex:{MODEL}", {"batch_bucket": f"gs://{BUCKET}"})
    assert getattr(provider, "credentials", None) is not None
    assert provider.credentials.token == "ya29.from-adc-file"  # type: ignore[attr-defined]


def test_a_missing_batch_bucket_stops_the_run_before_any_batch_is_sent(
    tmp_path: Any, local_http: HTTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", write_adc_file(tmp_path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", VERTEX_PROJECT)
    base = local_http.url_for("/").rstrip("/")
    config = RunConfig(providers=[{"spec": "anthropic:claude-sonnet-5-5", "options": {"base_url": base}},  # type: ignore[list-item]
                                  {"spec": f"vertex:{MODEL}", "options": {"base_url": base + "/"}}],
                       metrics=[], batch=True, batch_poll_s=0.01)
    with pytest.raises(SetupError, match="batch_bucket"):
        asyncio.run(evaluation.run(config, Store.open(tmp_path / "s.db"), notes=NOTES))
    assert not local_http.log  # the Anthropic batch listed first was not submitted either


def test_bigquery_uris_split_into_project_dataset_and_table() -> None:
    assert split_bq_table("bq://my-project.batches.table1") == ("my-project", "batches", "table1")
    assert split_bq_table("bq://example.com:my-project.ds.t_output") == ("example.com:my-project", "ds", "t_output")
    assert split_bq_dataset("bq://my-project.batches") == ("my-project", "batches")
    for bad in ("bq://my-project", "bq://my-project.batches.table1", "gs://bucket/x"):
        with pytest.raises(ConfigError, match="batch_bigquery"):
            split_bq_dataset(bad)
    with pytest.raises(TransientError):
        split_bq_table("bq://my-project.batches")
