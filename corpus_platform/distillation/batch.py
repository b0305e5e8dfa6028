"""The OpenAI Batch API's JSONL files: requests to upload, results to ingest.

Request lines (https://platform.openai.com/docs/guides/batch):
    {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...chat completion request...}}
Output (and error-file) lines:
    {"id": "batch_req_...", "custom_id": "...", "response": {"status_code": 200, "request_id": "...",
     "body": {...chat.completion...}} | null, "error": {"code": "...", "message": "..."} | null}

`custom_id` encodes what the answer belongs to: `<instruction_hash>:<teacher>:<model>` (the hash is hex and
teacher names cannot hold ':', so the model may). Output lines come back in any order; a line that is
not JSON, lacks a custom_id, or names a custom_id the reader does not know is reported with its line
number, never dropped silently.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from corpus_platform.distillation.teachers import Answer, parse_completion

BATCH_URL = "/v1/chat/completions"
MAX_REQUESTS_PER_FILE = 50_000  # the Batch API's limit per input file (and 200 MB)


def custom_id(instruction_hash: str, teacher: str, model: str) -> str:
    if ":" in teacher:
        raise ValueError(f"teacher name {teacher!r} holds ':'")
    return f"{instruction_hash}:{teacher}:{model}"


def parse_custom_id(value: str) -> tuple[str, str, str]:
    """(instruction_hash, teacher, model); ValueError for anything this platform did not write."""
    parts = value.split(":", 2) if isinstance(value, str) else []
    if len(parts) != 3 or not all(parts) or not all(c in "0123456789abcdef" for c in parts[0]):
        raise ValueError(f"custom_id {value!r} is not <instruction_hash>:<teacher>:<model>")
    return parts[0], parts[1], parts[2]


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    body: dict[str, Any]

    def line(self) -> dict[str, Any]:
        return {"custom_id": self.custom_id, "method": "POST", "url": BATCH_URL, "body": self.body}


def write_batch_requests(path: Path | str, requests: Iterable[BatchRequest]) -> int:
    """Write requests as Batch API input JSONL (atomically: a temp file renamed); returns lines written.
    Refuses duplicate custom_ids and more than MAX_REQUESTS_PER_FILE lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for r in requests:
                if r.custom_id in seen:
                    raise ValueError(f"duplicate custom_id {r.custom_id!r}")
                seen.add(r.custom_id)
                n += 1
                if n > MAX_REQUESTS_PER_FILE:
                    raise ValueError(f"more than {MAX_REQUESTS_PER_FILE} requests for one batch file")
                fh.write(json.dumps(r.line(), ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def read_batch_requests(path: Path | str) -> list[BatchRequest]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                doc = json.loads(line)
                out.append(BatchRequest(doc["custom_id"], doc["body"]))
    return out


@dataclass
class BatchResult:
    """One output line: `answer` is the parsed completion, or an error Answer whose reason says why."""

    custom_id: str
    line: int
    answer: Answer
    request_id: str | None = None


@dataclass
class Unreadable:
    line: int
    reason: str


def _error_reason(doc: dict[str, Any]) -> str | None:
    """Why a line is not a usable answer (None when it is a 200)."""
    error = doc.get("error")
    response = doc.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    if isinstance(error, dict) and (error.get("message") or error.get("code")):
        return f"batch error {error.get('code') or ''}: {error.get('message') or ''}".replace(" :", ":").strip()
    if not isinstance(response, dict):
        return "batch line has neither a response nor an error"
    if status != 200:
        body = response.get("body")
        inner = body.get("error") if isinstance(body, dict) else None
        message = inner.get("message") if isinstance(inner, dict) else None
        return f"batch request failed with HTTP {status}" + (f": {message}" if message else "")
    return None


def read_batch_results(path: Path | str) -> tuple[list[BatchResult], list[Unreadable]]:
    """Parse a Batch API output or error file: (results, lines that could not be read and why)."""
    results: list[BatchResult] = []
    bad: list[Unreadable] = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                doc = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                bad.append(Unreadable(n, f"not JSON: {exc}"))
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("custom_id"), str):
                bad.append(Unreadable(n, "no custom_id"))
                continue
            response = doc.get("response") if isinstance(doc.get("response"), dict) else {}
            reason = _error_reason(doc)
            if reason is None:
                answer = parse_completion(response.get("body"))
            else:
                answer = Answer("error", error=reason)
            answer.attempts = 1
            results.append(BatchResult(doc["custom_id"], n, answer, response.get("request_id")))
    return results, bad
