"""In-process fake API servers for the live connectors (stdlib `http.server`, 127.0.0.1, ephemeral port).

Each fake speaks its API's real wire format so the real client libraries (praw/prawcore, apify-client)
run unmodified against it. `FakeServer` adds what the tests need on top: a log of every request (to
prove a resumed fetch never asks twice) and injectable faults (429 + Retry-After, 5xx, slow answers
that trip the client timeout, truncated JSON bodies, dropped connections, and a hang used to SIGKILL a
fetch mid-flight).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    """Misbehave on requests whose path matches `match` (a regex searched in the path, no query).

    kind: "status" (answer `status`, with `retry_after` as Retry-After if set), "slow" (wait `delay` s,
    then answer normally), "truncate" (a 200 whose JSON body is cut in half, Content-Length consistent),
    "close" (drop the connection without an answer), "hang" (block until the server is released or
    stopped; sets `FakeServer.hang_reached`). The first `after` matching requests pass untouched, then
    the next `times` misbehave (`times=None`: all of them).
    """

    match: str
    kind: str = "status"
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    after: int = 0
    times: int | None = 1
    method: str | None = None
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def applies(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if not re.search(self.match, path):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass
class Response:
    status: int
    body: Any  # JSON-serializable, or bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer:
    """Base: subclasses implement `route(method, path, query, headers, body) -> Response`."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, dict[str, list[str]], int | str]] = []  # method, path, query, status
        self.hang_reached = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "FakeServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                server._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- introspection ---------------------------------------------------------------------------
    def count(self, path_regex: str, *, method: str | None = None, ok_only: bool = False) -> int:
        with self._lock:
            return sum(
                1 for m, p, _, s in self.log
                if re.search(path_regex, p) and (method is None or m == method) and (not ok_only or s in (200, 201))
            )

    def counts(self, *, ok_only: bool = False) -> Counter:
        with self._lock:
            return Counter(f"{m} {p}" for m, p, _, s in self.log if not ok_only or s in (200, 201))

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    # -- plumbing --------------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> Response:
        raise NotImplementedError

    def _record(self, method: str, path: str, query: dict[str, list[str]], status: int | str) -> None:
        with self._lock:
            self.log.append((method, path, query, status))

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, parse_qs(parts.query)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        method = h.command
        with self._lock:
            fault = next((f for f in self.faults if f.applies(method, path)), None)
        if fault is not None and fault.kind == "close":
            self._record(method, path, query, "close")
            h.close_connection = True
            h.connection.shutdown(2)  # socket.SHUT_RDWR: the client sees a dropped connection
            return
        if fault is not None and fault.kind == "hang":
            self._record(method, path, query, "hang")
            self.hang_reached.set()
            self.release.wait(30)
            h.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._record(method, path, query, fault.status)
            self._send(h, Response(fault.status, {"error": {"type": "injected", "message": "injected failure"}}, headers))
            return
        if fault is not None and fault.kind == "slow":
            self._record(method, path, query, "slow")  # logged on arrival: the client has given up by the answer
            time.sleep(fault.delay)
        resp = self.route(method, path, query, h.headers, body)
        if fault is not None and fault.kind == "truncate" and resp.status == 200:
            raw = json.dumps(resp.body).encode()
            resp = Response(200, raw[: max(1, len(raw) // 2)], resp.headers)
        if fault is None or fault.kind != "slow":
            self._record(method, path, query, resp.status)
        self._send(h, resp)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, resp: Response) -> None:
        raw = resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode()
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(raw)))
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to answer
            pass
