"""A fake Apify API v2, close enough to the wire format that apify-client runs unmodified against it.

Reproduces what `ActorClient.start`, `RunClient.wait_for_finish` and `DatasetClient.list_items` call:
POST /v2/acts/{actorId}/runs and its /v2/actors/ alias (what apify-client 3.x calls) (`~` for `/` in the id; JSON input, gzip-encoded when large; 201 with the
run object: id, actId, status, defaultDatasetId, meta, options, stats, ...), GET /v2/actor-runs/{runId}
(`waitForFinish`; the run stays RUNNING for `polls_until_done` polls, then SUCCEEDED or `final_status`),
GET /v2/datasets/{id}/items (`offset`/`limit`; a JSON array with x-apify-pagination-total/-offset/-count/
-limit/-desc headers), Bearer-token auth with Apify's `{"error": {"type", "message"}}` error bodies.
The tweet-search actor is simulated: `conversation_id:<id>` terms return `conversations[id]`, any other
search returns `search_results`, capped by `maxItems`.
"""

from __future__ import annotations

import gzip
import json
import secrets
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from corpus_platform_tests.sources.fakes import FakeServer, Response

NO_LIMIT = 999_999_999_999  # what the API reports as the limit when none was asked


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id() -> str:
    return secrets.token_urlsafe(12)[:17]


class FakeApify(FakeServer):
    def __init__(self, *, token: str, polls_until_done: int = 0, final_status: str = "SUCCEEDED") -> None:
        super().__init__()
        self.token = token
        self.polls_until_done = polls_until_done
        self.final_status = final_status
        self.search_results: list[Any] = []
        self.conversations: dict[str, list[Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, list[Any]] = {}
        self.run_inputs: list[tuple[str, dict[str, Any]]] = []  # (actor id, input) per started run
        self._polls: dict[str, int] = {}

    def actor(self, actor_id: str, run_input: dict[str, Any]) -> list[Any]:
        terms = run_input.get("searchTerms") or []
        limit = int(run_input.get("maxItems") or NO_LIMIT)
        if terms and all(t.startswith("conversation_id:") for t in terms):
            items = [i for t in terms for i in self.conversations.get(t.split(":", 1)[1].strip(), [])]
        else:
            items = list(self.search_results)
        return items[:limit]

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> Response:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return Response(401, {"error": {"type": "token-not-valid", "message": "Authentication token is not valid."}})
        q = {k: v[-1] for k, v in query.items()}
        parts = [unquote(p) for p in path.split("/") if p]
        # the API reference documents /v2/acts/{id}/runs; apify-client 3.x calls the /v2/actors/ alias
        if method == "POST" and len(parts) == 4 and parts[0] == "v2" and parts[1] in ("acts", "actors") and parts[3] == "runs":
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return self._start(parts[2].replace("~", "/"), json.loads(body or b"{}"), q)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v2", "actor-runs"]:
            return self._get_run(parts[2])
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v2", "datasets"] and parts[3] == "items":
            return self._items(parts[2], q)
        return Response(404, {"error": {"type": "page-not-found", "message": "We have bad news: there is no API endpoint at this URL."}})

    def _start(self, actor_id: str, run_input: dict[str, Any], q: dict[str, str]) -> Response:
        run_id, dataset_id = _id(), _id()
        self.run_inputs.append((actor_id, run_input))
        self.datasets[dataset_id] = self.actor(actor_id, run_input)
        self.runs[run_id] = {
            "id": run_id, "actId": _id(), "userId": _id(), "actorTaskId": None, "startedAt": _now(),
            "finishedAt": None, "status": "RUNNING", "statusMessage": "Starting the crawler.",
            "isStatusMessageTerminal": False, "meta": {"origin": "API", "userAgent": "ApifyClient/python"},
            "stats": {"inputBodyLen": len(json.dumps(run_input)), "restartCount": 0, "resurrectCount": 0,
                      "computeUnits": 0.0},
            "options": {"build": "latest", "timeoutSecs": 3600, "memoryMbytes": 1024, "diskMbytes": 2048,
                        "maxItems": int(q["maxItems"]) if "maxItems" in q else None},
            "buildId": _id(), "exitCode": None, "defaultKeyValueStoreId": _id(), "defaultDatasetId": dataset_id,
            "defaultRequestQueueId": _id(), "buildNumber": "0.3.12", "containerUrl": f"https://{run_id.lower()}.runs.apify.net",
            "usageTotalUsd": 0.0,
        }
        self._polls[run_id] = self.polls_until_done
        return Response(201, {"data": self.runs[run_id]})

    def _get_run(self, run_id: str) -> Response:
        run = self.runs.get(run_id)
        if run is None:
            return Response(404, {"error": {"type": "record-not-found", "message": "Actor run was not found"}})
        if run["status"] == "RUNNING":
            if self._polls[run_id] <= 0:
                run.update(status=self.final_status, finishedAt=_now(), exitCode=0, statusMessage="Finished!",
                           isStatusMessageTerminal=True)
            self._polls[run_id] -= 1
        return Response(200, {"data": run})

    def _items(self, dataset_id: str, q: dict[str, str]) -> Response:
        items = self.datasets.get(dataset_id)
        if items is None:
            return Response(404, {"error": {"type": "record-not-found", "message": "Dataset was not found"}})
        offset = int(q.get("offset", 0))
        limit = int(q.get("limit", NO_LIMIT))
        page = items[offset:offset + limit]
        return Response(200, page, {
            "x-apify-pagination-total": str(len(items)), "x-apify-pagination-offset": str(offset),
            "x-apify-pagination-count": str(len(page)), "x-apify-pagination-limit": str(limit),
            "x-apify-pagination-desc": "false",
        })
