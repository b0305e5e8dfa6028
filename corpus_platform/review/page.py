"""The review page: one queued example at a time, its messages and its whole decision record; Keep,
Reject (with a reason) or Edit the response. `python -m corpus_platform.review` (`make review`) serves it.

Why its own server on 127.0.0.1 and not a router of the capture API: the capture API is the write path
for apps, keyed per app and possibly exposed beyond the host (CORPUS_API_HOST); the review page shows raw
user content to a person at this machine and needs no app keys. So it binds 127.0.0.1 only and asks
for a per-launch token (in the URL it prints, sent back as a header on every API call: no other site or
local process that has not seen the URL can read examples or post verdicts; a request naming another
Host is refused, which also defeats DNS rebinding).

Why it never writes the warehouse: DuckDB has one writer, and Dagster runs hold the warehouse while they
materialize. The page reads it through short read-only connections (a snapshot of the pending queue,
reloaded only when the warehouse file changed; while a run holds the file, the last snapshot is served)
and appends verdicts to the journal (journal.py), which the next `dataset_splits` or `review_queue`
materialization imports.
"""

# No `from __future__ import annotations`: FastAPI must see the body model's type, not a string.

import getpass
import hmac
import json
import os
import secrets
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, Optional

import duckdb
from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from corpus_platform.review.content import KEY, example_content, last_assistant, untrainable, with_keys
from corpus_platform.review.journal import (append_verdict, identity_of, journal_path, latest_by_example, make_verdict,
                                            read_verdicts)
from corpus_platform.review.queue import pending_queue
from corpus_platform.review.static import APP_CSS, APP_JS, PAGE_HTML
from corpus_platform.warehouse import connect
from corpus_platform.settings import Layout

TOKEN_HEADER = "X-Review-Token"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class WarehouseBusy(RuntimeError):
    """The warehouse could not be opened read-only (a run holds it) and there is no snapshot yet."""


@dataclass
class Snapshot:
    items: list[dict[str, Any]] = field(default_factory=list)  # pending queue rows with content, in review order
    agreement: list[dict[str, Any]] = field(default_factory=list)
    note: Optional[str] = None  # why there is nothing to show, if so

    def find(self, example_id: str, source: str, day: str) -> Optional[dict[str, Any]]:
        return next((i for i in self.items if (i["example_id"], i["source"], i["date"]) == (example_id, source, day)), None)


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return value


def _json_obj(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_snapshot(con: duckdb.DuckDBPyConnection) -> Snapshot:
    """The pending queue with each example's content, raw metadata and decision record."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'corpus'").fetchall()}
    if "review_queue" not in tables:
        return Snapshot(note="The warehouse has no review queue yet: materialize review_queue (make review builds it).")
    queue = pending_queue(con)
    agreement = [{k: _jsonable(v) for k, v in r.items()}
                 for r in con.execute("SELECT * FROM corpus.review_agreement ORDER BY stage, rule").pl().iter_rows(named=True)]
    if queue.height == 0:
        return Snapshot(agreement=agreement, note="The review queue is empty: materialize review_queue for today's batch.")
    keys = queue.select(KEY).unique(maintain_order=True)
    content = example_content(con, keys)
    decisions = with_keys(con, keys, """
        SELECT d.example_id, d.source, d.date, d.stage, d.decision, d.rule, d.score, d.threshold, d.duplicate_of, d.decided_at
        FROM corpus.decisions d JOIN _review_keys k USING (example_id, source, date)
        ORDER BY d.decided_at, CASE d.stage WHEN 'filter' THEN 1 WHEN 'dedup' THEN 2 WHEN 'score' THEN 3 WHEN 'cluster' THEN 4
                 WHEN 'judge' THEN 5 WHEN 'review' THEN 6 WHEN 'decontaminate' THEN 7 WHEN 'cap' THEN 8 WHEN 'split' THEN 9 END""")
    raw_meta = with_keys(con, keys, """
        SELECT r.example_id, r.source, r.date, any_value(r.metadata)::VARCHAR AS raw_metadata
        FROM corpus.raw_examples r JOIN _review_keys k USING (example_id, source, date) GROUP BY ALL""")
    by_key: dict[tuple, list[dict]] = {}
    for d in decisions.iter_rows(named=True):
        by_key.setdefault((d["example_id"], d["source"], d["date"]), []).append(
            {k: (v.isoformat(sep=" ") if k == "decided_at" and v is not None else v)
             for k, v in d.items() if k not in KEY})
    rows = queue.join(content, on=KEY, how="inner").join(raw_meta, on=KEY, how="left")
    items = []
    for r in rows.iter_rows(named=True):
        messages = [{"role": m["role"], "content": m["content"]} for m in (r["messages"] or [])]
        index, response = last_assistant(messages)
        items.append({
            "example_id": r["example_id"], "source": r["source"], "date": r["date"].isoformat(),
            "queue": {k: _jsonable(r[k]) for k in ("queued_on", "priority", "reason", "kind", "stage", "decision", "rule", "score",
                                                   "threshold", "score_band", "stratum")},
            "messages": messages, "response_index": index, "response": response, "untrainable": untrainable(messages),
            "found_in": r["found_in"], "pii_masked_here": bool(r["pii_masked_here"]),
            "quality_score": r["quality_score"], "score_detail": _json_obj(r["score_detail"]),
            "metadata": _json_obj(r["metadata"]),
            "subject": identity_of(r["raw_metadata"]),
            "decisions": by_key.get((r["example_id"], r["source"], r["date"]), []),
        })
    return Snapshot(items=items, agreement=agreement)


class ReviewStore:
    """Snapshots of the warehouse (read-only, reloaded when its files change) and the verdict journal."""

    def __init__(self, home: Path):
        self.layout = Layout(Path(home))
        self.journal = journal_path(self.layout.home)
        self._lock = threading.Lock()
        self._snapshot: Optional[Snapshot] = None
        self._stamp: Any = None
        self._journal_stamp: Any = None
        self._verdicts: dict[tuple[str, str, str], dict] = {}
        self.stale: Optional[str] = None  # why the snapshot may be out of date

    def _files_stamp(self) -> Any:
        out = []
        for p in (self.layout.warehouse, self.layout.warehouse.with_name(self.layout.warehouse.name + ".wal")):
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def snapshot(self) -> Snapshot:
        with self._lock:
            stamp = self._files_stamp()
            if self._snapshot is not None and stamp == self._stamp:
                return self._snapshot
            if stamp[0] is None:
                self._snapshot, self._stamp = Snapshot(note=f"No warehouse at {self.layout.warehouse}: run make demo."), stamp
                return self._snapshot
            with ExitStack() as stack:
                try:  # under the warehouse's file lock: a step holds it only while its session is open
                    con = stack.enter_context(connect(self.layout.warehouse, read_only=True))
                except duckdb.Error as e:  # a writer that does not take the lock
                    if self._snapshot is not None:
                        self.stale = f"showing the queue as last read: the warehouse is busy ({type(e).__name__})"
                        return self._snapshot
                    raise WarehouseBusy(f"the warehouse is busy (a run is writing it); retry in a moment: {e}") from e
                self._snapshot = load_snapshot(con)
            self._stamp, self.stale = stamp, None
            return self._snapshot

    def verdicts(self) -> dict[tuple[str, str, str], dict]:
        """The latest journal verdict per example (reloaded when the journal changes)."""
        with self._lock:
            try:
                st = self.journal.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self._journal_stamp:
                self._verdicts = latest_by_example(read_verdicts(self.journal)) if stamp else {}
                self._journal_stamp = stamp
            return self._verdicts

    def pending(self) -> list[dict[str, Any]]:
        done = self.verdicts()
        return [i for i in self.snapshot().items if (i["example_id"], i["source"], i["date"]) not in done]


class VerdictIn(BaseModel):
    example_id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=64)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    verdict: Literal["keep", "reject", "edit"]
    reviewer: str = Field(min_length=1, max_length=100)
    reason: Optional[str] = Field(default=None, max_length=500)
    edited_response: Optional[str] = Field(default=None, max_length=50_000)


def create_review_app(home: Optional[Path] = None, token: Optional[str] = None) -> FastAPI:
    """The page and its JSON API over CORPUS_HOME's warehouse and verdict journal.

    `token` (default: CORPUS_REVIEW_TOKEN, else a random one) must come back in the X-Review-Token header
    of every API call; the page reads it from the `token` query parameter of the URL it was opened with."""
    layout = Layout(Path(home)) if home else Layout.from_env()
    token = token or os.environ.get("CORPUS_REVIEW_TOKEN") or secrets.token_urlsafe(24)
    store = ReviewStore(layout.home)
    app = FastAPI(title="corpus_platform review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token, app.state.store = token, store
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)

    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def authorized(x_review_token: Optional[str] = Header(default=None, alias=TOKEN_HEADER)) -> None:
        if not x_review_token or not hmac.compare_digest(x_review_token.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong review token: open the URL that `make review` printed")

    def snapshot() -> Snapshot:
        try:
            return store.snapshot()
        except WarehouseBusy as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "2"}) from e

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/review")

    @app.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE_HTML)

    @app.get("/review/static/app.js", include_in_schema=False)
    def app_js() -> Response:
        return Response(APP_JS, media_type="text/javascript; charset=utf-8")

    @app.get("/review/static/app.css", include_in_schema=False)
    def app_css() -> Response:
        return Response(APP_CSS, media_type="text/css; charset=utf-8")

    @app.get("/review/api/session", dependencies=[Depends(authorized)])
    def session() -> dict[str, Any]:
        try:
            reviewer = getpass.getuser()
        except Exception:  # no login name (containers)
            reviewer = ""
        return {"reviewer": reviewer, "home": str(layout.home), "journal": str(store.journal)}

    @app.get("/review/api/next", dependencies=[Depends(authorized)])
    def next_item(skip: list[str] = Query(default=[], max_length=500)) -> dict[str, Any]:
        """The first pending example of the queue (skipping the ids in `skip`), with counts."""
        snap = snapshot()
        pending = store.pending()
        skipped = set(skip)
        item = next((i for i in pending if i["example_id"] not in skipped), None)
        return {"item": item, "pending": len(pending), "queued": len(snap.items),
                "reviewed": len(store.verdicts()), "note": snap.note, "stale": store.stale}

    @app.post("/review/api/verdicts", status_code=201, dependencies=[Depends(authorized)])
    def post_verdict(body: VerdictIn) -> dict[str, Any]:
        item = snapshot().find(body.example_id, body.source, body.date)
        if item is None:
            raise HTTPException(404, "this example is not in the review queue (reload the page)")
        if body.verdict == "keep" and item["untrainable"]:
            raise HTTPException(422, f"this example cannot be trained on as it is ({item['untrainable']}): "
                                     "edit the response or reject it")
        try:
            record = make_verdict(example_id=body.example_id, source=body.source, day=body.date, verdict=body.verdict,
                                  reviewer=body.reviewer, reason=body.reason, edited_response=body.edited_response,
                                  original_response=item["response"], subject=item["subject"])
        except ValueError as e:
            raise HTTPException(422, str(e)) from e
        append_verdict(store.journal, record)
        return {"verdict_id": record["verdict_id"], "verdict": record["verdict"], "example_id": record["example_id"],
                "pending": len(store.pending())}

    @app.get("/review/api/agreement", dependencies=[Depends(authorized)])
    def agreement() -> dict[str, Any]:
        """Agreement per rule as of the last import, and how many journal verdicts await the next import."""
        snap = snapshot()
        return {"rows": snap.agreement, "journal_verdicts": len(store.verdicts())}

    return app


def review_url(port: int, token: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/review?token={token}"

