"""HTTP-level fakes of the Anthropic and Vertex AI APIs, served on 127.0.0.1 to the real SDKs.

The bodies follow each provider's documented response shapes:
- Anthropic Messages API: https://platform.claude.com/docs/en/api/messages (Message object,
  error envelope ``{"type": "error", "error": {"type", "message"}}``, ``request-id`` and
  ``retry-after`` headers).
- Vertex AI ``generateContent``: https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest
  (``candidates[].content.parts[].text``, ``usageMetadata``, ``modelVersion``, ``responseId``;
  errors as ``{"error": {"code", "message", "status"}}``).

Import both fixtures in a test module:
``from provider_fakes import local_http, local_http_server  # noqa: F401``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@contextmanager
def local_server() -> Iterator[HTTPServer]:
    """A threaded fake server on 127.0.0.1 (threaded: a slow handler cannot stall it)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


@pytest.fixture(scope="module")
def local_http_server() -> Iterator[HTTPServer]:
    """One fake server per test module (stopping a server costs 0.5 s)."""
    with local_server() as server:
        yield server


_slow_done = threading.Condition()
_slow_active = 0
"""``slow`` handlers still sleeping, across the server's threads."""


def _wait_for_slow_handlers(timeout_s: float = 10.0) -> None:
    """Block until no ``slow`` handler is still sleeping (its request would be logged late)."""
    with _slow_done:
        _slow_done.wait_for(lambda: _slow_active == 0, timeout=timeout_s)


@pytest.fixture
def local_http(local_http_server: HTTPServer) -> Iterator[HTTPServer]:
    """The module's fake server, with no expectations or log left from an earlier test.

    A client that timed out leaves its ``slow`` handler sleeping; the next test
    starts only when it has finished, so a late request never lands in its log.
    """
    local_http_server.clear()
    yield local_http_server
    _wait_for_slow_handlers()
    local_http_server.clear()


def slow(response: Response, seconds: float):  # type: ignore[no-untyped-def]
    """A handler that answers only after ``seconds`` (to trigger client timeouts)."""

    def handler(_request: Request) -> Response:
        global _slow_active
        with _slow_done:
            _slow_active += 1
        try:
            time.sleep(seconds)
            return response
        finally:
            with _slow_done:
                _slow_active -= 1
                _slow_done.notify_all()

    return handler


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


# --- Anthropic -------------------------------------------------------------------------------

ANTHROPIC_MODEL_ID = "claude-sonnet-5-5"


def anthropic_message(
    content: list[dict[str, Any]],
    *,
    input_tokens: int = 2095,
    output_tokens: int = 503,
    stop_reason: str = "end_turn",
    model: str = ANTHROPIC_MODEL_ID,
) -> dict[str, Any]:
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def anthropic_text(text: str, **kwargs: Any) -> dict[str, Any]:
    return anthropic_message([{"type": "text", "text": text}], **kwargs)


def anthropic_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_err_1"}
    return json_response(body, status, {"request-id": "req_err_1", **(headers or {})})


# --- Vertex AI (google-genai in Vertex mode) --------------------------------------------------

VERTEX_PROJECT = "clinsum-test"
VERTEX_LOCATION = "us-central1"


def vertex_path(model: str, api_version: str = "v1") -> str:
    return (
        f"/{api_version}/projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}"
        f"/publishers/google/models/{model}:generateContent"
    )


def vertex_answer(
    text: str,
    *,
    prompt_tokens: int = 1200,
    candidates_tokens: int = 150,
    thoughts_tokens: int | None = None,
    finish_reason: str = "STOP",
    model_version: str = "gemini-2.5-flash",
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + (thoughts_tokens or 0),
    }
    if thoughts_tokens is not None:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": finish_reason,
                "avgLogprobs": -0.12,
            }
        ],
        "usageMetadata": usage,
        "modelVersion": model_version,
        "createTime": "2026-11-26T04:30:00.000000Z",
        "responseId": "vNq4aPq2IZiW7dcP0ci4oAQ",
    }


def vertex_error(
    status: int, grpc_status: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(
        {"error": {"code": status, "message": message, "status": grpc_status}}, status, headers
    )
