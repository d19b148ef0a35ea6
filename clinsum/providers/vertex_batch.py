"""Large runs through Vertex AI batch prediction: stage, submit, poll, read results.

Gemini batch prediction bills 50% of the online price and reads its requests from
Cloud Storage. ``google-genai`` creates and reads the job
(``client.aio.batches.create/get``, the ``batchPredictionJobs`` resource) but does
not upload files, so the request file is staged here through the Cloud Storage
JSON API, on an authorized session of the same Application Default Credentials
(``google-auth``, already a dependency of ``google-genai``: nothing to add).

Layout under the ``batch_bucket`` option (``gs://BUCKET/PREFIX``), one folder per job::

    clinsum-batch-<time>-<rand>/requests.jsonl      one {"request": GenerateContentRequest} a line
    clinsum-batch-<time>-<rand>/output/prediction-model-.../predictions.jsonl   written by Vertex AI

The output does not keep the input's order; each output line echoes its request,
so every request carries its key as a request label (``labels.clinsum_key``) and
results are matched back by that label. A line whose ``status`` is not empty
failed; a request with no line at all (a job cancelled, expired or failed before
reaching it) comes back as a ``TransientError``. As with the Anthropic batch,
the job's resource name is the batch id: ``run(..., batch_id=...)`` collects an
existing job without resubmitting, and what the batch did not answer is the
caller's to call live (``prefill_cache`` leaves failures out of the cache).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from clinsum.errors import ConfigError, ProviderError, SetupError, TransientError
from clinsum.providers.base import Generation, Request
from clinsum.providers.common import classify_http, require
from clinsum.providers.vertex import ADC_FIX, SCOPES, convert_error

if TYPE_CHECKING:
    from clinsum.providers.vertex import VertexProvider

BATCH_DISCOUNT = 0.5
"""Gemini batch prediction is billed at 50% of the online price (Vertex AI pricing;
docs/multimodal/batch-prediction-gemini). Implicit-cache discounts are not modelled."""
LABEL = "clinsum_key"
"""The request label that carries each request's key through the job."""
STORAGE_URL = "https://storage.googleapis.com"
STORAGE_HINT = (
    "the Application Default Credentials and their IAM roles on the batch bucket "
    "(roles/storage.objectAdmin for you; the Vertex AI service agent must read and write it too)"
)

_ENDED_OK = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"}
_ENDED = _ENDED_OK | {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
# google-genai's own JOB_STATES_ENDED_VERTEX leaves PARTIALLY_SUCCEEDED out: a job in that
# state has ended and its output is there to read, so the states are listed here.
_GS_URI = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(.*))?$")
_HTTP_CODE = re.compile(r'"code"\s*:\s*(\d{3})')

Outcome = Generation | ProviderError


def label_for(key: str) -> str:
    """A label value (lowercase letters, digits, ``_-``, at most 63 characters) for any key, stable."""
    return "k" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def split_gs_uri(uri: str, *, option: str = "batch_bucket") -> tuple[str, str]:
    """``gs://bucket/some/path`` -> (``bucket``, ``some/path``); ConfigError naming ``option`` otherwise."""
    match = _GS_URI.match(uri.strip())
    if not match:
        raise ConfigError(f"{option} must be a Cloud Storage URI like 'gs://BUCKET/PREFIX', got {uri!r}")
    return match.group(1), (match.group(2) or "").strip("/")


@dataclass(frozen=True)
class JobStatus:
    """Where a batch prediction job stands, as the API reports it."""

    batch_id: str
    state: str
    """``JOB_STATE_PENDING``, ``JOB_STATE_RUNNING``, ``JOB_STATE_SUCCEEDED``, ..."""
    counts: dict[str, int] = field(default_factory=dict)
    """``completionStats``: successful, failed, incomplete."""
    output_dir: str | None = None
    """``outputInfo.gcsOutputDirectory``: where Vertex AI wrote the results."""
    error: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in _ENDED


class CloudStorage:
    """The three Cloud Storage JSON API calls a batch needs, on an authorized session.

    ``STORAGE_EMULATOR_HOST`` (the variable Google's own storage client reads) points it
    at an emulator or a test fake instead of storage.googleapis.com.
    """

    def __init__(self, credentials: Any, *, timeout_s: float, base_url: str | None = None) -> None:
        transport = require("google.auth.transport.requests", "vertex")
        self.session = transport.AuthorizedSession(credentials)
        self.timeout_s = timeout_s
        self.base_url = (base_url or os.environ.get("STORAGE_EMULATOR_HOST") or STORAGE_URL).rstrip("/")

    async def upload(self, uri: str, data: bytes) -> None:
        bucket, name = split_gs_uri(uri)
        url = f"{self.base_url}/upload/storage/v1/b/{bucket}/o"
        await self._call("POST", url, params={"uploadType": "media", "name": name}, data=data,
                         headers={"Content-Type": "application/jsonl"})

    async def list(self, uri: str) -> list[str]:
        """Every object name under the folder ``uri``, following pages."""
        bucket, prefix = split_gs_uri(uri)
        names: list[str] = []
        params = {"prefix": f"{prefix}/" if prefix else ""}
        while True:
            body = json.loads(await self._call("GET", f"{self.base_url}/storage/v1/b/{bucket}/o", params=params))
            names += [item["name"] for item in body.get("items", [])]
            token = body.get("nextPageToken")
            if not token:
                return names
            params = {**params, "pageToken": token}

    async def download(self, bucket: str, name: str) -> bytes:
        url = f"{self.base_url}/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
        return await self._call("GET", url, params={"alt": "media"})

    async def _call(self, method: str, url: str, **kwargs: Any) -> bytes:
        requests = require("requests", "vertex")
        try:
            response = await asyncio.to_thread(self.session.request, method, url, timeout=self.timeout_s, **kwargs)
        except requests.Timeout:
            raise TransientError("Cloud Storage did not answer in time") from None
        except requests.RequestException as exc:
            raise TransientError(f"cannot reach Cloud Storage ({type(exc).__name__}: {exc})") from exc
        except Exception as exc:  # google-auth refresh and credential errors
            raise convert_error(exc) from exc
        if response.status_code >= 300:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200] or response.reason
            raise classify_http(response.status_code, f"Cloud Storage: {message}",
                                response.headers.get("retry-after"), credentials=STORAGE_HINT)
        content: bytes = response.content
        return content


class VertexBatch:
    """Send many requests of one Vertex AI provider as one batch prediction job."""

    def __init__(
        self,
        provider: VertexProvider,
        *,
        poll_interval_s: float = 60.0,
        max_wait_s: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        storage: CloudStorage | None = None,
    ) -> None:
        if not provider.options.batch_bucket:
            raise SetupError(
                f"Vertex AI batch prediction for '{provider.spec}' needs a Cloud Storage folder to stage its "
                "requests and results; fix: set batch_bucket = \"gs://BUCKET/PREFIX\" in the provider's options "
                "(or run without --batch)"
            )
        self.bucket = provider.options.batch_bucket.rstrip("/")
        split_gs_uri(self.bucket)
        self.provider = provider
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._storage = storage

    @property
    def storage(self) -> CloudStorage:
        if self._storage is None:
            self._storage = CloudStorage(self._credentials(), timeout_s=self.provider.options.timeout_s)
        return self._storage

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

    async def submit(self, items: Iterable[tuple[str, Request]]) -> str:
        """Stage the requests, create the job; returns its resource name (persist it to resume)."""
        requests = _requests_by_label(items)
        data = "".join(json.dumps(self.request_line(request, label), ensure_ascii=False) + "\n"
                       for label, (_, request) in requests.items()).encode("utf-8")
        folder = f"{self.bucket}/clinsum-batch-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
        await self.storage.upload(f"{folder}/requests.jsonl", data)
        try:
            job = await self.provider.client.aio.batches.create(
                model=self.provider.model,
                src=f"{folder}/requests.jsonl",
                config={"display_name": folder.rsplit("/", 1)[-1], "dest": f"{folder}/output"},
            )
        except Exception as exc:
            raise convert_error(exc, model=self.provider.model) from exc
        if not job.name:
            raise TransientError("malformed response from Vertex AI: the batch job has no name")
        name: str = job.name
        return name

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
        return JobStatus(
            batch_id=job.name or batch_id,
            state=getattr(job.state, "value", None) or str(job.state or "JOB_STATE_UNSPECIFIED"),
            counts=counts,
            output_dir=job.output_info.gcs_output_directory if job.output_info is not None else None,
            error=error,
        )

    async def wait(self, batch_id: str, on_poll: Callable[[JobStatus], None] | None = None) -> JobStatus:
        """Poll until the job has ended; TransientError if ``max_wait_s`` passes first."""
        waited = 0.0
        while True:
            state = await self.status(batch_id)
            if on_poll is not None:
                on_poll(state)
            if state.ended:
                return state
            if self.max_wait_s is not None and waited >= self.max_wait_s:
                raise TransientError(
                    f"batch job {batch_id} still {state.state} after {waited:.0f}s; "
                    "resume later with the same batch id"
                )
            await self._sleep(self.poll_interval_s)
            waited += self.poll_interval_s

    async def results(self, job: JobStatus, items: Iterable[tuple[str, Request]]) -> dict[str, Outcome]:
        """Every request's outcome, keyed by the caller's key; an ended job only.

        A job that failed or was cancelled may still have written the rows it finished:
        they are read too, and only the rest is reported missing.
        """
        requests = _requests_by_label(items)
        outcomes: dict[str, Outcome] = {}
        if job.output_dir:
            bucket, _ = split_gs_uri(job.output_dir)
            for name in sorted(await self.storage.list(job.output_dir)):
                if not name.endswith(".jsonl"):
                    continue
                text = (await self.storage.download(bucket, name)).decode("utf-8", errors="replace")
                for number, line in enumerate(text.splitlines(), start=1):
                    if line.strip():
                        self._read_line(line, f"gs://{bucket}/{name}:{number}", requests, outcomes)
        why = f"batch job {job.batch_id} ended {job.state}" + (f" ({job.error})" if job.error else "")
        for key, _ in requests.values():
            outcomes.setdefault(key, TransientError(f"{why} with no result for '{key}'"))
        return outcomes

    def _read_line(self, line: str, where: str, requests: Mapping[str, tuple[str, Request]],
                   outcomes: dict[str, Outcome]) -> None:
        try:
            row = json.loads(line)
            label = row["request"]["labels"][LABEL]
        except (ValueError, KeyError, TypeError):
            return  # not a line of ours (no key label), or not JSON: its request, if ours, is reported missing
        pair = requests.get(label)
        if pair is None:
            return  # a result for a request this caller did not send: not ours to store
        key, request = pair
        if isinstance(outcomes.get(key), Generation):
            return  # already answered (a row repeated across output files)
        outcomes[key] = self._outcome(row, request, where)

    def _outcome(self, row: dict[str, Any], request: Request, where: str) -> Outcome:
        status = row.get("status")
        if status:
            match = _HTTP_CODE.search(str(status))
            return classify_http(int(match.group(1)) if match else 500, f"batch row failed: {status}", None,
                                 credentials="the Vertex AI batch job's request", model=self.provider.model)
        types = require("google.genai.types", "vertex")
        try:
            response = types.GenerateContentResponse.model_validate(row["response"])
            generation = self.provider.to_generation(response, request, latency_s=None)
        except ProviderError as exc:
            return exc
        except (KeyError, TypeError, ValueError) as exc:
            return TransientError(f"malformed batch result at {where} ({type(exc).__name__}: {exc})")
        if generation.cost_usd is not None:
            generation = generation.model_copy(update={"cost_usd": generation.cost_usd * BATCH_DISCOUNT})
        return generation

    async def run(
        self,
        items: Iterable[tuple[str, Request]],
        *,
        batch_id: str | None = None,
        on_submitted: Callable[[str], None] | None = None,
        on_poll: Callable[[JobStatus], None] | None = None,
    ) -> dict[str, Outcome]:
        """Submit (unless ``batch_id`` resumes an existing job), wait, and read every outcome."""
        items = list(items)
        if batch_id is None:
            batch_id = await self.submit(items)
            if on_submitted is not None:
                on_submitted(batch_id)
        job = await self.wait(batch_id, on_poll)
        return await self.results(job, items)


def _requests_by_label(items: Iterable[tuple[str, Request]]) -> Mapping[str, tuple[str, Request]]:
    """label -> (caller's key, request); refuses duplicate keys and empty batches."""
    by_label: dict[str, tuple[str, Request]] = {}
    for key, request in items:
        label = label_for(key)
        if label in by_label:
            raise ConfigError(f"duplicate key '{key}' in one batch: every request needs its own key")
        by_label[label] = (key, request)
    if not by_label:
        raise ConfigError("an empty batch: nothing to send")
    return by_label
