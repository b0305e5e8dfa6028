"""YouTube connector: videos published on one UTC day for a set of search queries, made into
(title + description → transcript) examples.

Why this shape: the Data API (googleapiclient) finds videos and their statistics but charges quota
(search.list 100 units, videos.list 1) against 10,000 units a day, so every call is charged to a
persistent `QuotaLedger` first and a backfill stops with `QuotaExhausted` before it overspends.
Transcripts come from youtube.com through youtube-transcript-api (no quota, but scraping), behind the
small `TranscriptFetcher` protocol. Everything fetched is appended to the partition's spool before
the checkpoint moves, and rows are built from the spool at the end, so a killed or quota-stopped run
resumes where it stopped and never pays for a page twice.

Example construction: user = video title, a blank line, then the description with URLs and
link/hashtag-only lines removed (cut at `prompt_description_chars`); assistant = the transcript with
caption cues ([Music], >>) removed and whitespace collapsed, cut to whole sentences within
`answer_max_chars` (or at a word boundary when the captions have no punctuation).
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator, Sequence

from corpus_platform.schema import examples_frame, make_example, quarantine_frame, quarantine_row, utcnow
from corpus_platform.sources.base import SourceBatch, SourceNotConfigured
from corpus_platform.sources.policy import BackoffPolicy, RateLimiter, RetriesExhausted, Retryable, retry
from corpus_platform.sources.quota import YOUTUBE_COSTS, QuotaExhausted, QuotaLedger
from corpus_platform.sources.state import PartitionState
from corpus_platform.sources.youtube_transcripts import (  # noqa: F401 - part of this module's API
    LibraryTranscriptFetcher, Transcript, TranscriptFetcher, TranscriptUnavailable,
)

SOURCE = "youtube"
YOUTUBE_ENV = ["YOUTUBE_API_KEY"]
VIDEOS_BATCH = 50  # videos.list takes at most 50 ids per call
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class YouTubeConfig:
    api_key: str = field(repr=False)
    queries: tuple[str, ...] = ()
    max_results_per_query: int = 50
    page_size: int = 50  # search.list maxResults (the API allows at most 50)
    daily_quota_units: int = 10_000
    discovery_url: str | None = None  # None: the discovery document shipped with googleapiclient
    transcript_languages: tuple[str, ...] = ("en",)
    answer_max_chars: int = 1500
    prompt_description_chars: int = 1000
    requests_per_second: float = 5.0  # Data API
    transcript_requests_per_second: float = 1.0  # youtube.com: be gentle with the site we scrape
    timeout_s: float = 30.0
    backoff: BackoffPolicy = BackoffPolicy()
    quota_api: str = "youtube"  # ledger key; use one per Google project when several keys are used



# --- secrets -----------------------------------------------------------------------------------------
@contextmanager
def scrubbed_logs(secret: str, names: Sequence[str]) -> Iterator[None]:
    """googleapiclient logs request URLs, key included, at DEBUG: mask the key on those loggers."""

    def scrub(record: logging.LogRecord) -> bool:
        if secret and secret in (message := record.getMessage()):
            record.msg, record.args = message.replace(secret, "***"), None
        return True

    loggers = [logging.getLogger(n) for n in names]
    for lg in loggers:
        lg.addFilter(scrub)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(scrub)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        except (TypeError, ValueError):
            return None


def _google_reason(exc: Any) -> str:
    try:
        return json.loads(exc.content)["error"]["errors"][0]["reason"]
    except Exception:  # noqa: BLE001 - a non-Google body: no reason
        return ""


def _classify(exc: Exception) -> Retryable | None:
    from googleapiclient.errors import HttpError

    if isinstance(exc, HttpError):
        status, reason = exc.resp.status, _google_reason(exc)
        if status in (429, 500, 502, 503, 504) or reason in ("rateLimitExceeded", "userRateLimitExceeded", "backendError"):
            return Retryable(f"HTTP {status} {reason}".strip(), retry_after_seconds(exc.resp.get("retry-after")))
        return None
    if isinstance(exc, (TimeoutError, ConnectionError, http.client.HTTPException)):
        return Retryable(f"{type(exc).__name__} (timeout or dropped connection)")
    return None


# --- fetching ----------------------------------------------------------------------------------------
class _Run:
    def __init__(self, config: YouTubeConfig, day: date, state: PartitionState, ledger: QuotaLedger,
                 transcripts: TranscriptFetcher, log: Any, sleep: Callable[[float], None]):
        self.config, self.day, self.state, self.ledger, self.transcripts = config, day, state, ledger, transcripts
        self.log, self.sleep, self.checkpoint = log, sleep, state.load_checkpoint()
        self.api_limiter = RateLimiter(config.requests_per_second)
        self.transcript_limiter = RateLimiter(config.transcript_requests_per_second)
        self.quarantine: list[dict[str, Any]] = []  # transcript failures of this run (not spooled: retried next run)
        self.service: Any = None

    def scrub(self, text: str) -> str:
        return text.replace(self.config.api_key, "***") if self.config.api_key else text

    def _service(self) -> Any:
        if self.service is None:
            import httplib2
            from googleapiclient.discovery import build

            c = self.config
            kw = {"discoveryServiceUrl": c.discovery_url, "static_discovery": False} if c.discovery_url else {}
            self.service = build("youtube", "v3", developerKey=c.api_key, http=httplib2.Http(timeout=c.timeout_s),
                                 cache_discovery=False, **kw)
        return self.service

    def call(self, name: str, make_request: Callable[[Any], Any]) -> dict[str, Any]:
        """One Data API call: charged to the ledger before each attempt, retried under the policy."""
        from googleapiclient.errors import HttpError

        c = self.config

        def attempt() -> dict[str, Any]:
            self.ledger.charge(c.quota_api, name, YOUTUBE_COSTS[name], limit=c.daily_quota_units)
            doc = make_request(self._service()).execute(num_retries=0)
            if not isinstance(doc, dict):  # googleapiclient hands back the raw text of a body it cannot parse
                raise Retryable("truncated or invalid JSON response")
            return doc

        def on_retry(n: int, exc: Exception, delay: float) -> None:
            self.log.warning(f"youtube {name} attempt {n} failed ({self.scrub(str(_classify(exc) or exc))}); "
                             f"retrying in {delay:.1f}s")

        failure: Exception
        try:
            return retry(attempt, c.backoff, classify=_classify, limiter=self.api_limiter, sleep=self.sleep,
                         on_retry=on_retry)
        except HttpError as exc:
            if _google_reason(exc) in ("quotaExceeded", "dailyLimitExceeded"):
                self.ledger.mark_exhausted(c.quota_api, limit=c.daily_quota_units)
                failure = QuotaExhausted(c.quota_api, self.ledger.today(), c.daily_quota_units, c.daily_quota_units,
                                         YOUTUBE_COSTS[name], name, detail="the API answered 403 quotaExceeded")
            else:
                failure = RuntimeError(self.scrub(f"youtube {name} failed: HTTP {exc.resp.status} "
                                                  f"{_google_reason(exc) or exc.reason}"))
        except RetriesExhausted as exc:
            failure = RetriesExhausted(self.scrub(f"youtube {name}: {exc}"))
        raise failure  # outside `except`: no chained client error (its URL holds the key) rides along

    def save(self, phase: str, **extra: Any) -> None:
        self.checkpoint.update(phase=phase, updated_at=utcnow().isoformat(), **extra)
        self.state.save_checkpoint(self.checkpoint)

    def search(self, spool: "_Spool") -> None:
        c, window = self.config, (f"{self.day.isoformat()}T00:00:00Z", f"{(self.day + timedelta(days=1)).isoformat()}T00:00:00Z")
        for query in c.queries:
            token, page, seen = "", 0, 0
            while seen < c.max_results_per_query:
                rec = spool.search.get((query, token))
                if rec is None:
                    size = min(c.page_size, 50, c.max_results_per_query - seen)
                    doc = self.call("search.list", lambda s, t=token, n=size: s.search().list(
                        part="snippet", q=query, type="video", order="date", maxResults=n, pageToken=t or None,
                        publishedAfter=window[0], publishedBefore=window[1]))
                    rec = {"kind": "search", "query": query, "page": page, "page_token": token,
                           "next_page_token": doc.get("nextPageToken") or "", "items": doc.get("items") or [],
                           "fetched_at": utcnow().isoformat()}
                    spool.add(rec)  # spooled before the checkpoint moves past it
                    self.save("search", search={**self.checkpoint.get("search", {}), query: {
                        "pages": page + 1, "next_page_token": rec["next_page_token"]}})
                seen, page, token = seen + len(rec["items"]), page + 1, rec["next_page_token"]
                if not token or not rec["items"]:
                    break

    def details(self, spool: "_Spool") -> None:
        todo = [v for v in spool.video_ids() if v not in spool.requested]
        for i in range(0, len(todo), VIDEOS_BATCH):
            ids = todo[i: i + VIDEOS_BATCH]
            doc = self.call("videos.list", lambda s, ids=ids: s.videos().list(
                part="snippet,contentDetails,statistics", id=",".join(ids), maxResults=len(ids)))
            spool.add({"kind": "videos", "ids": ids, "items": doc.get("items") or [], "fetched_at": utcnow().isoformat()})
            self.save("videos", videos_requested=len(spool.requested))

    def fetch_transcripts(self, spool: "_Spool") -> None:
        c = self.config
        for vid in spool.video_ids():
            item = spool.details.get(vid)
            if vid in spool.transcripts or item is None or _video_problem(item):
                continue

            def on_retry(n: int, exc: Exception, delay: float, vid: str = vid) -> None:
                self.log.warning(f"youtube transcript {vid} attempt {n} failed ({exc}); retrying in {delay:.1f}s")

            rec: dict[str, Any] = {"kind": "transcript", "video_id": vid, "fetched_at": utcnow().isoformat()}
            try:
                t = retry(lambda: self.transcripts.fetch(vid, c.transcript_languages), c.backoff,
                          limiter=self.transcript_limiter, sleep=self.sleep, on_retry=on_retry)
                rec.update(status="ok", segments=t.segments, language=t.language, language_code=t.language_code,
                           transcript_kind=t.kind)
            except TranscriptUnavailable as exc:
                rec.update(status="unavailable", reason=str(exc))
            except RetriesExhausted as exc:  # not spooled: the next run tries this video again
                self.quarantine.append(quarantine_row(source=SOURCE, day=self.day, file=f"youtube:transcript {vid}",
                                                      line=0, reason=f"transcript fetch failed: {exc}", raw=vid))
                continue
            spool.add(rec)
            self.save("transcripts", transcripts=len(spool.transcripts))


class _Spool:
    """The partition's spool, indexed; `add` appends to disk first, then to the index."""

    def __init__(self, state: PartitionState):
        self.state = state
        self.search: dict[tuple[str, str], dict[str, Any]] = {}
        self.requested: dict[str, str] = {}  # video id -> when videos.list was asked for it
        self.details: dict[str, dict[str, Any]] = {}
        self.transcripts: dict[str, dict[str, Any]] = {}
        for rec in state.read_spool():
            self._index(rec)

    def add(self, rec: dict[str, Any]) -> None:
        self.state.append([rec])
        self._index(rec)

    def _index(self, rec: dict[str, Any]) -> None:
        if rec["kind"] == "search":
            self.search.setdefault((rec["query"], rec["page_token"]), rec)
        elif rec["kind"] == "videos":
            self.requested.update(dict.fromkeys(rec["ids"], rec["fetched_at"]))
            self.details.update({i["id"]: i for i in rec["items"] if isinstance(i, dict) and isinstance(i.get("id"), str)})
        elif rec["kind"] == "transcript":
            self.transcripts[rec["video_id"]] = rec

    def pages(self) -> list[dict[str, Any]]:
        return sorted(self.search.values(), key=lambda r: (r["query"], r["page"]))

    def video_ids(self) -> list[str]:
        ids: dict[str, None] = {}
        for rec in self.pages():
            for item in rec["items"]:
                vid = (item.get("id") or {}).get("videoId") if isinstance(item, dict) else None
                if isinstance(vid, str) and vid:
                    ids[vid] = None
        return list(ids)


def fetch_youtube(config: YouTubeConfig, day: date, state: PartitionState, ledger: QuotaLedger, *,
                  transcripts: TranscriptFetcher, log: Any = None,
                  sleep: Callable[[float], None] = time.sleep) -> SourceBatch:
    """Fetch (or resume) one UTC day's videos for `config.queries`; raises QuotaExhausted with what was kept."""
    if not config.api_key:
        raise SourceNotConfigured(SOURCE, YOUTUBE_ENV)
    if not config.queries:
        raise ValueError("YouTubeConfig.queries is empty: nothing to search for")
    run = _Run(config, day, state, ledger, transcripts, log or logger, sleep)
    spool = _Spool(state)
    with scrubbed_logs(config.api_key, ["googleapiclient.discovery", "googleapiclient.http", "googleapiclient.model"]):
        try:
            run.search(spool)
            run.details(spool)
        except QuotaExhausted as exc:
            run.save("quota_exhausted", quota_stopped={"used": exc.used, "limit": exc.limit, "day": exc.day.isoformat()})
            raise exc.resumable({"search pages": len(spool.search), "videos": len(spool.video_ids()),
                                 "with details": len(spool.requested), "transcripts": len(spool.transcripts)},
                                f"the spool of partition {day.isoformat()} ({state.spool_path})") from None
        run.fetch_transcripts(spool)
    rows, quarantine = _build(config, day, spool)
    run.save("done", examples=len(rows))
    run.log.info(f"youtube {day}: {len(rows)} examples, {len(quarantine) + len(run.quarantine)} quarantined, "
                 f"{ledger.used(config.quota_api)} of {config.daily_quota_units} quota units used today")
    return SourceBatch(examples=examples_frame(rows), quarantine=quarantine_frame(quarantine + run.quarantine))


# --- rows ----------------------------------------------------------------------------------------------
def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _video_problem(item: dict[str, Any]) -> str | None:
    for f in ("snippet.title", "snippet.publishedAt", "snippet.channelTitle"):
        if not isinstance(_get(item, f), str):
            return f"videos.list item lacks {f}"
    return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def duration_seconds(iso: str | None) -> int | None:
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", iso or "")
    return None if not iso or m is None else sum(int(v or 0) * k for v, k in zip(m.groups(), (86400, 3600, 60, 1)))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else (text[:limit].rsplit(" ", 1)[0] or text[:limit]).rstrip()


def prompt_text(title: str, description: str, limit: int) -> str:
    lines = [re.sub(r"https?://\S+", "", ln).strip() for ln in description.splitlines()]
    kept = [ln for ln in lines if not ln or re.search(r"\w", re.sub(r"#\w+", "", ln))]  # keep paragraph breaks
    desc = _cut(re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip(), limit)
    return f"{title.strip()}\n\n{desc}" if desc else title.strip()


def answer_text(segments: list[str], limit: int) -> str:
    text = re.sub(r"\[[^\]]{0,40}\]|>>", " ", " ".join(segments))
    text = re.sub(r"\s+", " ", text).strip()
    out = ""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if len(out) + len(sentence) + 1 > limit:
            break
        out = f"{out} {sentence}".strip()
    return out or _cut(text, limit)


def _build(c: YouTubeConfig, day: date, spool: _Spool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    queries: dict[str, list[str]] = {}
    found: dict[str, dict[str, Any]] = {}  # the first search result of each video
    for rec in spool.pages():
        for i, item in enumerate(rec["items"], 1):
            vid = _get(item, "id.videoId")
            if not isinstance(vid, str) or not vid:
                quarantine.append(quarantine_row(
                    source=SOURCE, day=day, file=f"youtube:search.list q={rec['query']} page={rec['page'] + 1}",
                    line=i, reason="search result lacks id.videoId", raw=json.dumps(item, sort_keys=True)))
            elif rec["query"] not in queries.setdefault(vid, []):
                queries[vid].append(rec["query"])
                found.setdefault(vid, item)
    for vid in spool.video_ids():
        item, tr = spool.details.get(vid), spool.transcripts.get(vid)
        if item is not None and (problem := _video_problem(item)):
            quarantine.append(quarantine_row(source=SOURCE, day=day, file=f"youtube:videos.list id={vid}", line=0,
                                             reason=problem, raw=json.dumps(item, sort_keys=True)))
            continue
        if item is None and vid not in spool.requested or item is not None and tr is None:
            continue  # not fetched (quarantined transcript failure this run)
        snippet = (item or found.get(vid) or {}).get("snippet") or {}
        meta: dict[str, Any] = {
            "video_id": vid, "url": f"https://www.youtube.com/watch?v={vid}", "queries": queries.get(vid, []),
            "title": snippet.get("title"), "channel": snippet.get("channelTitle"), "channel_id": snippet.get("channelId"),
            "author": snippet.get("channelTitle"), "published_at": snippet.get("publishedAt"),
            "created_at": snippet.get("publishedAt"), "duration": _get(item, "contentDetails.duration"),
            "duration_s": duration_seconds(_get(item, "contentDetails.duration")),
            "views": _int(_get(item, "statistics.viewCount")), "likes": _int(_get(item, "statistics.likeCount")),
            "comments": _int(_get(item, "statistics.commentCount")),
            "construction": f"user: title + description (<= {c.prompt_description_chars} chars); "
                            f"assistant: transcript prefix, whole sentences (<= {c.answer_max_chars} chars)",
        }
        messages = [{"role": "user", "content": prompt_text(snippet.get("title") or "", snippet.get("description") or "",
                                                             c.prompt_description_chars)}]
        collected = (tr or {}).get("fetched_at") or spool.requested.get(vid)
        if item is None:
            meta["drop_reason"] = "video_unavailable"  # found by search, gone (private/removed) by videos.list
        elif tr["status"] != "ok":
            meta.update(drop_reason="no_transcript", transcript_error=tr.get("reason"))
        else:
            answer = answer_text(tr["segments"], c.answer_max_chars)
            meta.update(transcript_kind=tr["transcript_kind"], language=tr["language_code"],
                        language_name=tr["language"], transcript_chars=sum(len(s) for s in tr["segments"]),
                        answer_chars=len(answer))
            messages += [{"role": "assistant", "content": answer}] if answer else []
            meta.update({} if answer else {"drop_reason": "empty_transcript"})
        rows.append(make_example(source=SOURCE, source_id=vid, day=day, messages=messages, metadata=meta,
                                 collected_at=datetime.fromisoformat(collected) if collected else None))
    return rows, quarantine
