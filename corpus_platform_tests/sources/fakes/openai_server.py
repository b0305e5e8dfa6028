"""A local OpenAI-compatible chat-completions server in the real wire format, for the synthetic source.

Why: the connector runs the real `openai` client (with its own retries off), so the tests need a
server that answers like api.openai.com / vLLM / llama.cpp: `chat.completion` objects with `usage`,
errors in OpenAI's `{"error": {message, type, param, code}}` shape, 429 with Retry-After, 5xx, slow
replies (client timeouts), truncated bodies, and malformed model output. Requests are recorded so a
test can prove a rerun made zero calls.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

ERRORS: dict[int, dict[str, Any]] = {
    400: {"message": "Invalid value for 'response_format'.", "type": "invalid_request_error", "param": "response_format",
          "code": None},
    401: {"message": "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
          "type": "invalid_request_error", "param": None, "code": "invalid_api_key"},
    429: {"message": "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again "
                     "in 20s.", "type": "requests", "param": None, "code": "rate_limit_exceeded"},
    500: {"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error",
          "param": None, "code": None},
    503: {"message": "The engine is currently overloaded, please try again later", "type": "server_error",
          "param": None, "code": None},
}
INSUFFICIENT_QUOTA = {"message": "You exceeded your current quota, please check your plan and billing details.",
                      "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}


@dataclass
class Error:
    status: int
    retry_after: str | None = None
    body: dict[str, Any] | None = None  # default: ERRORS[status]


@dataclass
class Delay:
    seconds: float


TRUNCATE, BLOCK, NO_USAGE, NO_CHOICES, LENGTH = "truncate", "block", "no_usage", "no_choices", "length"


def default_content(prompt: str) -> str:
    return json.dumps({"instruction": f"Explain {prompt}", "response": f"Here is a clear explanation of {prompt}."})


class FakeOpenAI:
    """`content_for[substring]` answers prompts containing it (e.g. malformed output for one item, every run)."""

    def __init__(self, responder: Callable[[str], str] = default_content):
        self.responder = responder
        self.content_for: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (path, body); bodies hold no key
        self.auth_seen: set[str] = set()
        self._plan: deque[Any] = deque()
        self._lock = threading.Lock()
        self.arrived, self.release = threading.Event(), threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def plan(self, *actions: Any) -> None:
        """Queue actions for the next chat-completion requests (None = answer normally)."""
        self._plan.extend(actions)

    @property
    def count(self) -> int:
        return len(self.requests)

    def handle(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        if not path.endswith("/chat/completions"):
            return 404, {}, json.dumps({"error": {"message": f"Unknown path {path}", "type": "invalid_request_error",
                                                  "param": None, "code": "unknown_url"}}).encode()
        body = json.loads(raw)
        with self._lock:
            self.requests.append((path, body))
            n = len(self.requests)
            self.auth_seen.add(headers.get("Authorization", ""))
            action = self._plan.popleft() if self._plan else None
        if not headers.get("Authorization", "").startswith("Bearer "):
            return 401, {}, json.dumps({"error": ERRORS[401]}).encode()
        if action == BLOCK:
            self.arrived.set()
            self.release.wait(30)
        elif isinstance(action, Delay):
            time.sleep(action.seconds)
        elif isinstance(action, Error):
            extra = {"retry-after": action.retry_after} if action.retry_after else {}
            return action.status, {"x-request-id": f"req_{n}", **extra}, json.dumps(
                {"error": action.body or ERRORS[action.status]}).encode()
        prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        content = next((c for s, c in self.content_for.items() if s in prompt), None) or self.responder(prompt)
        finish = "stop"
        if action == LENGTH:
            content, finish = content[: len(content) // 2], "length"
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        completion_tokens = len(content.split())
        doc: dict[str, Any] = {
            "id": f"chatcmpl-fake{n:06d}", "object": "chat.completion", "created": 1714560000 + n,
            "model": body["model"], "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
        }
        if action == NO_USAGE:
            del doc["usage"]
        if action == NO_CHOICES:
            doc["choices"] = []
        payload = json.dumps(doc).encode()
        if action == TRUNCATE:
            payload = payload[: len(payload) // 2]
        return 200, {"x-request-id": f"req_{n}", "openai-processing-ms": "12"}, payload


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, payload = fake.handle(urlsplit(self.path).path, self.headers, raw)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out or was killed
                pass

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    try:
        yield fake
    finally:
        fake.close()
