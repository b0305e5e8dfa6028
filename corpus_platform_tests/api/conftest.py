"""A real capture API server per test module: `python -m corpus_platform.api` in a subprocess on a free
127.0.0.1 port with its own CORPUS_HOME, spoken to over HTTP with httpx."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from corpus_platform.settings import REPO_ROOT

# name -> (key id, secret, role, app)
KEYS = {
    "shop": ("shop-key", "shop-secret-0123456789abcdef", "app", "shop"),
    "blog": ("blog-key", "blog-secret-0123456789abcdef", "app", "blog"),
    "admin": ("ops-key", "admin-secret-0123456789abcdef", "admin", None),
    "tiny": ("tiny-key", "tiny-secret-0123456789abcdef", "app", "tiny"),
}


def keys_env() -> str:
    return ",".join(":".join(p for p in (kid, secret, role, app) if p) for kid, secret, role, app in KEYS.values())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    home: Path
    proc: subprocess.Popen

    def client(self, who: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {KEYS[who][1]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)

    @property
    def landing(self) -> Path:
        return self.home / "landing" / "conversations"

    def records(self) -> list[dict]:
        """Every line of the files the API wrote (json.loads fails on a torn one)."""
        out = []
        for p in sorted(self.landing.rglob("*.jsonl*")):
            if not p.name.startswith(("interactions-", "feedback-")):
                continue
            data = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
            out += [json.loads(line) for line in data.splitlines()]
        return out


def start_server(home: Path, workers: int = 1, **env: str) -> Server:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = {
        **os.environ, "CORPUS_HOME": str(home), "CORPUS_API_KEYS": keys_env(), "CORPUS_API_HOST": "127.0.0.1",
        "CORPUS_API_PORT": str(port), "CORPUS_API_WORKERS": str(workers), "CORPUS_API_LOG_LEVEL": "warning",
        "CORPUS_API_ACCESS_LOG": "0", "CORPUS_API_RATE": "100000:100000", "CORPUS_API_KEY_RATES": "tiny-key=0.2:3",
        **env,
    }
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "corpus_platform.api"], env=full_env, cwd=REPO_ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API server exited {proc.returncode}: {(home / 'server.log').read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return Server(url, home, proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("API server did not start within 60 s")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Two uvicorn workers, so idempotency and appends are exercised across processes."""
    srv = start_server(tmp_path_factory.mktemp("api-home"), workers=2)
    yield srv
    stop_server(srv)


@pytest.fixture
def fresh_server(tmp_path):
    srv = start_server(tmp_path / "home")
    yield srv
    stop_server(srv)
