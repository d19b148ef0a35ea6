"""Large runs through Vertex AI batch prediction: stage, submit, poll, read results.

Gemini batch prediction bills 50% of the online price and reads its requests from
Cloud Storage or BigQuery. ``google-genai`` creates and reads the job
(``client.aio.batches.create/get``, the ``batchPredictionJobs`` resource) but
stages nothing, so the requests are staged here through the Cloud Storage JSON API
or a BigQuery load job, on an authorized session of the same Application Default
Credentials (``google-auth``, already a dependency of ``google-genai``).

One place per job, named ``clinsum-batch-<time>-<rand>``, under the provider's
``batch_bucket`` (``gs://BUCKET/PREFIX``: ``.../requests.jsonl`` in, ``.../output/``
out) or ``batch_bigquery`` (``bq://PROJECT.DATASET``: a table in, ``<table>_output``
out).

The output does not keep the input's order. Each request carries its key as a
request label (``labels.clinsum_key``, echoed with the request in every output
line) and, in BigQuery, as a ``clinsum_key`` column (copied to the output table);
results are matched back by it. A row whose ``status`` is not empty failed; a
request with no row (a job cancelled, expired or failed before reaching it) comes
back as a ``TransientError``. The submit, poll, collect and resume steps are
``providers.batch_job.BatchJob``'s, shared with the Anthropic batch; the job's resource name
is the batch id: ``run(..., batch_id=...)`` collects an existing job without
resubmitting, and what the batch did not answer is the caller's to call live
(``prefill_cache`` leaves failures out of the cache).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from clinsum.errors import ConfigError, FatalError, ProviderError, SetupError, TransientError
from clinsum.providers.base import Request
from clinsum.providers.batch_job import BatchJob, Outcome, Requests
from clinsum.providers.common import classify_http, require, retry_after_in
from clinsum.providers.vertex import ADC_FIX, SCOPES, convert_error

if TYPE_CHECKING:
    from clinsum.providers.vertex import VertexProvider

BATCH_DISCOUNT = 0.5
"""Gemini batch prediction is billed at 50% of the online price (Vertex AI pricing;
docs/multimodal/batch-prediction-gemini). Implicit-cache discounts are not modelled."""
LABEL = "clinsum_key"
"""The request label that carries each request's key through the job."""
KEY_COLUMN = "clinsum_key"
"""The same key as a column of a BigQuery input table (other columns are copied to the output)."""
STORAGE_URL = "https://storage.googleapis.com"
BIGQUERY_URL = "https://bigquery.googleapis.com"
LOAD_POLLS = 300
"""Seconds to wait for the BigQuery load job that stages the requests."""
STORAGE_HINT = (
    "the Application Default Credentials and their IAM roles on the batch bucket "
    "(roles/storage.objectAdmin for you; the Vertex AI service agent must read and write it too)"
)
BIGQUERY_HINT = (
    "the Application Default Credentials and their IAM roles on the batch dataset "
    "(roles/bigquery.dataEditor and roles/bigquery.jobUser for you; the Vertex AI service agent needs "
    "roles/bigquery.dataEditor on it too)"
)

_ENDED_OK = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"}
_ENDED = _ENDED_OK | {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
# google-genai's own JOB_STATES_ENDED_VERTEX leaves PARTIALLY_SUCCEEDED out: a job in that
# state has ended and its output is there to read, so the states are listed here.
_GS_URI = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(.*))?$")
_BQ_URI = re.compile(r"^bq://((?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9])\.(\w{1,1024})(?:\.([\w-]{1,1024}))?$")
"""``bq://project.dataset[.table]``; a project id has no dots except a domain-scoped ``example.com:project``."""
_HTTP_CODE = re.compile(r'"code"\s*:\s*(\d{3})')


def label_for(key: str) -> str:
    """A label value (lowercase letters, digits, ``_-``, at most 63 characters) for any key, stable."""
    return "k" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def split_gs_uri(uri: str, *, option: str = "batch_bucket") -> tuple[str, str]:
    """``gs://bucket/some/path`` -> (``bucket``, ``some/path``); ConfigError naming ``option`` otherwise."""
    match = _GS_URI.match(uri.strip())
    if not match:
        raise ConfigError(f"{option} must be a Cloud Storage URI like 'gs://BUCKET/PREFIX', got {uri!r}")
    return match.group(1), (match.group(2) or "").strip("/")


def split_bq_dataset(uri: str) -> tuple[str, str]:
    """``bq://project.dataset`` -> (project, dataset); ConfigError naming ``batch_bigquery`` otherwise."""
    match = _BQ_URI.match(uri.strip())
    if not match or match.group(3):
        raise ConfigError(f"batch_bigquery must be a BigQuery dataset like 'bq://PROJECT.DATASET', got {uri!r}")
    return match.group(1), match.group(2)


def split_bq_table(uri: str) -> tuple[str, str, str]:
    match = _BQ_URI.match(uri.strip())
    if not match or not match.group(3):
        raise TransientError(f"malformed BigQuery table in the batch job: {uri!r}")
    return match.group(1), match.group(2), match.group(3)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class JobStatus:
    """Where a batch prediction job stands, as the API reports it."""

    batch_id: str
    state: str
    """``JOB_STATE_PENDING``, ``JOB_STATE_RUNNING``, ``JOB_STATE_SUCCEEDED``, ..."""
    counts: dict[str, int] = field(default_factory=dict)
    """``completionStats``: successful, failed, incomplete."""
    output_dir: str | None = None
    """``outputInfo.gcsOutputDirectory``: where Vertex AI wrote the results (Cloud Storage)."""
    output_table: str | None = None
    """``bq://project.dataset.table`` the results were written to (BigQuery)."""
    error: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in _ENDED


class GoogleHttp:
    """Calls to a Google REST API on an authorized session of the ADC, errors classified like the SDK's."""

    def __init__(self, credentials: Any, *, timeout_s: float, service: str, hint: str) -> None:
        transport = require("google.auth.transport.requests", "vertex")
        self.session = transport.AuthorizedSession(credentials)
        self.timeout_s = timeout_s
        self.service = service
        self.hint = hint

    async def call(self, method: str, url: str, **kwargs: Any) -> bytes:
        requests = require("requests", "vertex")
        try:
            response = await asyncio.to_thread(self.session.request, method, url, timeout=self.timeout_s, **kwargs)
        except requests.Timeout:
            raise TransientError(f"{self.service} did not answer in time") from None
        except requests.RequestException as exc:
            raise TransientError(f"cannot reach {self.service} ({type(exc).__name__}: {exc})") from exc
        except Exception as exc:  # google-auth refresh and credential errors
            raise convert_error(exc) from exc
        if response.status_code >= 300:
            try:
                body = response.json()
                message = body["error"]["message"]
            except (ValueError, KeyError, TypeError):
                body, message = None, response.text[:200] or response.reason
            raise classify_http(response.status_code, f"{self.service}: {message}",
                                retry_after_in(response.headers, body), credentials=self.hint)
        content: bytes = response.content
        return content

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            body: dict[str, Any] = json.loads(await self.call(method, url, **kwargs))
        except ValueError as exc:
            raise TransientError(f"malformed response from {self.service} ({exc})") from exc
        return body


class CloudStorageStaging:
    """Requests staged as one JSONL object, results read from the job's output folder.

    Cloud Storage JSON API: ``objects.insert`` (media upload), ``objects.list`` (by
    prefix, paged), ``objects.get?alt=media``. ``STORAGE_EMULATOR_HOST`` (the variable
    Google's own storage client reads) points it at an emulator or a test fake.
    """

    def __init__(self, http: GoogleHttp, folder: str, *, base_url: str | None = None) -> None:
        self.http = http
        self.folder = folder.rstrip("/")
        split_gs_uri(self.folder)
        self.base_url = (base_url or os.environ.get("STORAGE_EMULATOR_HOST") or STORAGE_URL).rstrip("/")

    async def stage(self, name: str, lines: list[dict[str, Any]]) -> tuple[str, str]:
        """Upload the lines; returns (source, destination) for the job."""
        src = f"{self.folder}/{name}/requests.jsonl"
        bucket, object_name = split_gs_uri(src)
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
        await self.http.call("POST", f"{self.base_url}/upload/storage/v1/b/{bucket}/o", data=data,
                             params={"uploadType": "media", "name": object_name},
                             headers={"Content-Type": "application/jsonl"})
        return src, f"{self.folder}/{name}/output"

    async def rows(self, job: JobStatus) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        """(where, row) for every output line; row is None for a line that is not JSON."""
        if not job.output_dir:
            return
        bucket, prefix = split_gs_uri(job.output_dir)
        names: list[str] = []
        params = {"prefix": f"{prefix}/" if prefix else ""}
        while True:
            body = await self.http.json("GET", f"{self.base_url}/storage/v1/b/{bucket}/o", params=params)
            names += [item["name"] for item in body.get("items", []) if item["name"].endswith(".jsonl")]
            if not body.get("nextPageToken"):
                break
            params = {**params, "pageToken": body["nextPageToken"]}
        for name in sorted(names):
            url = f"{self.base_url}/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
            text = (await self.http.call("GET", url, params={"alt": "media"})).decode("utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    yield f"gs://{bucket}/{name}:{number}", _json_or_none(line)


class BigQueryStaging:
    """Requests staged as a BigQuery table (a load job), results read from the job's output table.

    The input table has the documented ``request`` JSON column plus a ``clinsum_key``
    column, which Vertex AI copies to the output table next to ``status`` and
    ``response``. BigQuery REST v2: a multipart load job, ``jobs.get`` until DONE,
    ``tables.get`` for the column order, ``tabledata.list`` paged.
    """

    def __init__(self, http: GoogleHttp, dataset: str, *, base_url: str | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.http = http
        self.project, self.dataset = split_bq_dataset(dataset)
        self.base_url = (base_url or BIGQUERY_URL).rstrip("/")
        self._sleep = sleep

    async def stage(self, name: str, lines: list[dict[str, Any]]) -> tuple[str, str]:
        table = name.replace("-", "_")
        load = {"configuration": {"load": {
            "destinationTable": {"projectId": self.project, "datasetId": self.dataset, "tableId": table},
            "sourceFormat": "NEWLINE_DELIMITED_JSON", "writeDisposition": "WRITE_EMPTY",
            "schema": {"fields": [{"name": KEY_COLUMN, "type": "STRING", "mode": "REQUIRED"},
                                  {"name": "request", "type": "JSON", "mode": "REQUIRED"}]}}}}
        data = "".join(json.dumps({KEY_COLUMN: line["request"]["labels"][LABEL], "request": line["request"]},
                                  ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
        boundary = f"clinsum{secrets.token_hex(8)}"
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(load)}\r\n"
                f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data \
            + f"\r\n--{boundary}--\r\n".encode()
        job = await self.http.json("POST", f"{self.base_url}/upload/bigquery/v2/projects/{self.project}/jobs",
                                   params={"uploadType": "multipart"}, data=body,
                                   headers={"Content-Type": f"multipart/related; boundary={boundary}"})
        reference = job.get("jobReference", {})
        for _ in range(LOAD_POLLS):
            status = job.get("status", {})
            if status.get("state") == "DONE":
                if status.get("errorResult"):
                    error = status["errorResult"]
                    raise FatalError(f"BigQuery could not load the batch requests into {self.dataset}.{table}: "
                                     f"{error.get('reason')}: {error.get('message')}")
                source = f"bq://{self.project}.{self.dataset}.{table}"
                return source, f"{source}_output"
            await self._sleep(1.0)
            job = await self.http.json(
                "GET", f"{self.base_url}/bigquery/v2/projects/{self.project}/jobs/{reference.get('jobId')}",
                params={"location": reference["location"]} if reference.get("location") else None)
        raise TransientError(f"the BigQuery load job {reference.get('jobId')} did not finish in {LOAD_POLLS}s")

    async def rows(self, job: JobStatus) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        if not job.output_table:
            return
        project, dataset, table = split_bq_table(job.output_table)
        url = f"{self.base_url}/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}"
        columns = [f["name"] for f in (await self.http.json("GET", url)).get("schema", {}).get("fields", [])]
        params: dict[str, str] = {}
        number = 0
        while True:
            page = await self.http.json("GET", f"{url}/data", params=params)
            for raw in page.get("rows", []):
                number += 1
                values = dict(zip(columns, (cell.get("v") for cell in raw.get("f", [])), strict=False))
                for column in ("request", "response"):  # JSON columns come back as JSON text
                    if isinstance(values.get(column), str):
                        values[column] = _json_or_none(values[column])
                yield f"{job.output_table} row {number}", values
            if not page.get("pageToken"):
                return
            params = {"pageToken": page["pageToken"]}


class Staging(Protocol):
    """Where a job's requests are put and its results read: Cloud Storage or BigQuery."""

    async def stage(self, name: str, lines: list[dict[str, Any]]) -> tuple[str, str]: ...

    def rows(self, job: JobStatus) -> AsyncIterator[tuple[str, dict[str, Any] | None]]: ...


class VertexBatch(BatchJob["VertexProvider", JobStatus]):
    """Send many requests of one Vertex AI provider as one batch prediction job."""

    discount = BATCH_DISCOUNT

    def __init__(
        self,
        provider: VertexProvider,
        *,
        poll_interval_s: float = 60.0,
        max_wait_s: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        staging: Staging | None = None,
    ) -> None:
        options = provider.options
        if not (options.batch_bucket or options.batch_bigquery) and staging is None:
            raise SetupError(
                f"Vertex AI batch prediction for '{provider.spec}' needs a place to stage its requests and "
                "results; fix: set batch_bucket = \"gs://BUCKET/PREFIX\" (or batch_bigquery = "
                "\"bq://PROJECT.DATASET\") in the provider's options, or run without --batch"
            )
        if options.batch_bucket and options.batch_bigquery:
            raise ConfigError(f"'{provider.spec}': set batch_bucket or batch_bigquery, not both")
        super().__init__(provider, poll_interval_s=poll_interval_s, max_wait_s=max_wait_s, sleep=sleep)
        self._staging = staging

    @property
    def staging(self) -> Staging:
        if self._staging is None:
            options = self.provider.options
            if options.batch_bigquery:
                http = GoogleHttp(self._credentials(), timeout_s=options.timeout_s, service="BigQuery",
                                  hint=BIGQUERY_HINT)
                self._staging = BigQueryStaging(http, options.batch_bigquery, sleep=self._sleep)
            else:
                assert options.batch_bucket is not None
                http = GoogleHttp(self._credentials(), timeout_s=options.timeout_s, service="Cloud Storage",
                                  hint=STORAGE_HINT)
                self._staging = CloudStorageStaging(http, options.batch_bucket)
        return self._staging

    def _credentials(self) -> Any:
        if self.provider.credentials is not None:
            return self.provider.credentials
        auth = require("google.auth", "vertex")
        auth_exceptions = require("google.auth.exceptions", "vertex")
        try:
            credentials, _ = auth.default(scopes=SCOPES)
        except auth_exceptions.DefaultCredentialsError as exc:
            raise SetupError(f"no Google Application Default Credentials ({exc}); fix: {ADC_FIX}") from exc
        return credentials

    def request_line(self, request: Request, label: str) -> dict[str, Any]:
        """One input line: the ``generateContent`` body the live call would send, plus the key label."""
        config = self.provider.config_for(request).model_dump(mode="json", by_alias=True, exclude_none=True)
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": request.prompt}]}]}
        system = config.pop("systemInstruction", None)
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        body["generationConfig"] = config
        body["labels"] = {LABEL: label}
        return {"request": body}

    def request_id(self, key: str) -> str:
        return label_for(key)

    async def _create(self, requests: Requests) -> str:
        """Stage the requests, create the job; returns its resource name (persist it to resume)."""
        lines = [self.request_line(request, label) for label, (_, request) in requests.items()]
        name = f"clinsum-batch-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
        src, dest = await self.staging.stage(name, lines)
        try:
            job = await self.provider.client.aio.batches.create(
                model=self.provider.model, src=src, config={"display_name": name, "dest": dest})
        except Exception as exc:
            raise convert_error(exc, model=self.provider.model) from exc
        if not job.name:
            raise TransientError("malformed response from Vertex AI: the batch job has no name")
        job_name: str = job.name
        return job_name

    async def status(self, batch_id: str) -> JobStatus:
        try:
            job = await self.provider.client.aio.batches.get(name=batch_id)
        except Exception as exc:
            raise convert_error(exc, model=self.provider.model) from exc
        stats = job.completion_stats
        counts = {} if stats is None else {
            k: v for k, v in (("successful", stats.successful_count), ("failed", stats.failed_count),
                              ("incomplete", stats.incomplete_count)) if v is not None}
        error = job.error.message if job.error is not None and job.error.message else None
        info = job.output_info
        table = info.bigquery_output_table if info is not None else None
        destination = job.dest.bigquery_uri if job.dest is not None else None
        if table and not table.startswith("bq://") and destination:
            # documented as a bare name (predictions_<time>) in the destination's dataset
            table = destination.rsplit(".", 1)[0] + "." + table
        state = getattr(job.state, "value", None) or str(job.state or "JOB_STATE_UNSPECIFIED")
        return JobStatus(
            batch_id=job.name or batch_id,
            state=state,
            counts=counts,
            output_dir=info.gcs_output_directory if info is not None else None,
            output_table=table or (destination if state in _ENDED_OK else None),
            error=error,
        )

    def _still(self, status: JobStatus) -> str:
        return f"batch job {status.batch_id} still {status.state}"

    async def _answers(self, job: JobStatus) -> AsyncIterator[tuple[str | None, Any, str]]:
        """Every output row; a job that failed or was cancelled may still have written the rows it
        finished: they are read too, and only the rest is reported missing."""
        async for where, row in self.staging.rows(job):
            if row is not None:  # a line that is not JSON: if it was ours, the request is reported missing
                yield _label_of(row), row, where

    def _no_answer(self, job: JobStatus, key: str) -> str:
        why = f"batch job {job.batch_id} ended {job.state}" + (f" ({job.error})" if job.error else "")
        return f"{why} with no result for '{key}'"

    def _outcome(self, answer: Any, request: Request, where: str) -> Outcome:
        row: dict[str, Any] = answer
        status = row.get("status")
        if status:
            match = _HTTP_CODE.search(str(status))
            return classify_http(int(match.group(1)) if match else 500, f"batch row failed: {status}", None,
                                 credentials="the Vertex AI batch job's request", model=self.provider.model)
        types = require("google.genai.types", "vertex")
        try:  # _from_response, as the SDK reads live answers: fields it does not know are dropped, not fatal
            response = types.GenerateContentResponse._from_response(response=row["response"], kwargs={})
            generation = self.provider.to_generation(response, request, latency_s=None)
        except ProviderError as exc:
            return exc
        except (KeyError, TypeError, ValueError) as exc:
            return TransientError(f"malformed batch result at {where} ({type(exc).__name__}: {exc})")
        return self.at_batch_price(generation)


def _label_of(row: dict[str, Any] | None) -> str | None:
    """The key a result row carries: the BigQuery column, else the request label."""
    if not isinstance(row, dict):
        return None
    if isinstance(row.get(KEY_COLUMN), str):
        return str(row[KEY_COLUMN])
    request = row.get("request")
    labels = request.get("labels") if isinstance(request, dict) else None
    label = labels.get(LABEL) if isinstance(labels, dict) else None
    return label if isinstance(label, str) else None
