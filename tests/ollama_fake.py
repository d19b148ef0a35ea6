"""An Ollama-protocol server for tests: ``/api/chat`` answers in the documented shapes.

Built on pytest-httpserver (listens on 127.0.0.1 only). The reply shapes follow
https://github.com/ollama/ollama/blob/main/docs/api.md ("Generate a chat
completion", non-streaming): ``model``, ``created_at``, ``message``, ``done``,
``done_reason``, durations in nanoseconds, ``prompt_eval_count``, ``eval_count``;
errors are ``{"error": "..."}`` with an HTTP status.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from provider_fakes import json_response
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

Answer = Callable[[dict[str, Any]], str]


def chat_body(content: str, *, model: str = "llama3.1:8b", prompt_eval_count: int | None = 26,
              eval_count: int | None = 12, done_reason: str = "stop") -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "created_at": "2024-07-22T20:33:28.123648Z",
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": done_reason,
        "total_duration": 5191566416,
        "load_duration": 2154458,
        "prompt_eval_duration": 383809000,
        "eval_duration": 4799921000,
    }
    if prompt_eval_count is not None:
        body["prompt_eval_count"] = prompt_eval_count
    if eval_count is not None:
        body["eval_count"] = eval_count
    return body


def word_tokens(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


class OllamaFake:
    """Serve ``/api/chat`` from ``answer(request_json) -> content``; keep every request seen."""

    def __init__(self, server: HTTPServer, answer: Answer | str = "A summary.", *,
                 model: str = "llama3.1:8b", known_models: tuple[str, ...] | None = None) -> None:
        self.server = server
        self.answer = answer
        self.model = model
        self.known_models = known_models
        self.requests: list[dict[str, Any]] = []
        server.expect_request("/api/chat", method="POST").respond_with_handler(self.handle)

    @property
    def host(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def handle(self, request: Request) -> Response:
        payload = json.loads(request.get_data())
        self.requests.append(payload)
        if self.known_models is not None and payload["model"] not in self.known_models:
            return json_response(
                {"error": f"model \"{payload['model']}\" not found, try pulling it first"}, 404
            )
        content = self.answer(payload) if callable(self.answer) else self.answer
        prompt = " ".join(m["content"] for m in payload["messages"])
        num_ctx = (payload.get("options") or {}).get("num_ctx") or 2048
        prompt_tokens = min(word_tokens(prompt) + 10, num_ctx)  # Ollama truncates silently to num_ctx
        return json_response(chat_body(content, model=payload["model"], prompt_eval_count=prompt_tokens,
                                       eval_count=word_tokens(content)))


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
