"""A local stand-in for the YouTube Data API v3 and youtube.com's caption endpoints, in their wire formats.

Why: the connector must be tested through the real client libraries (googleapiclient builds its
methods from a discovery document; youtube-transcript-api scrapes the watch page, the innertube player
API and timedtext XML), so this server speaks exactly those formats on 127.0.0.1. Each path can be
given a script of actions (errors in Google's JSON error format, truncated JSON, slow replies, a
blocking reply for crash tests); every request is recorded so tests can count calls and page tokens.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import pytest
import requests
from requests.adapters import HTTPAdapter

INNERTUBE_KEY = "AIzaFakeInnertubeKey0123"


def _params(**spec: dict[str, Any]) -> dict[str, Any]:
    return {name: {"location": "query", "type": "string", **extra} for name, extra in spec.items()}


def discovery_document(root_url: str) -> dict[str, Any]:
    """youtube v3's discovery document trimmed to search.list and videos.list (real paths and parameters)."""
    common = _params(alt={"default": "json", "enum": ["json", "media", "proto"]}, fields={}, key={},
                     prettyPrint={"default": "true", "type": "boolean"}, quotaUser={})
    search = _params(
        part={"repeated": True, "required": True}, q={}, channelId={}, pageToken={}, regionCode={},
        relevanceLanguage={}, type={"repeated": True},
        maxResults={"default": "5", "format": "uint32", "maximum": "50", "minimum": "0", "type": "integer"},
        order={"default": "relevance", "enum": ["searchSortUnspecified", "date", "rating", "viewCount",
                                                "relevance", "title", "videoCount"]},
        publishedAfter={"format": "google-datetime"}, publishedBefore={"format": "google-datetime"},
        safeSearch={"default": "moderate", "enum": ["safeSearchSettingUnspecified", "none", "moderate", "strict"]},
        videoCaption={"enum": ["videoCaptionUnspecified", "any", "closedCaption", "none"]},
    )
    videos = _params(
        part={"repeated": True, "required": True}, id={"repeated": True}, hl={}, pageToken={},
        chart={"enum": ["chartUnspecified", "mostPopular"]},
        maxResults={"default": "5", "format": "uint32", "maximum": "50", "minimum": "1", "type": "integer"},
    )

    def method(name: str, params: dict[str, Any], response: str) -> dict[str, Any]:
        return {"id": f"youtube.{name}.list", "path": f"youtube/v3/{name}", "flatPath": f"youtube/v3/{name}",
                "httpMethod": "GET", "parameterOrder": ["part"], "parameters": params,
                "response": {"$ref": response}}

    return {
        "kind": "discovery#restDescription", "discoveryVersion": "v1", "id": "youtube:v3", "name": "youtube",
        "version": "v3", "title": "YouTube Data API v3", "protocol": "rest", "canonicalName": "YouTube",
        "rootUrl": root_url, "mtlsRootUrl": root_url, "servicePath": "", "basePath": "", "baseUrl": root_url,
        "batchPath": "batch", "parameters": common,
        "resources": {"search": {"methods": {"list": method("search", search, "SearchListResponse")}},
                      "videos": {"methods": {"list": method("videos", videos, "VideoListResponse")}}},
        "schemas": {"SearchListResponse": {"id": "SearchListResponse", "type": "object"},
                    "VideoListResponse": {"id": "VideoListResponse", "type": "object"}},
    }


def google_error(code: int, reason: str, message: str, domain: str = "global") -> dict[str, Any]:
    status = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED",
              500: "INTERNAL", 503: "UNAVAILABLE"}.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": message, "status": status,
                      "errors": [{"message": message, "domain": domain, "reason": reason}]}}


QUOTA_EXCEEDED = google_error(403, "quotaExceeded", 'The request cannot be completed because you have exceeded your '
                              '<a href="/youtube/v3/getting-started#quota">quota</a>.', "youtube.quota")


@dataclass
class Error:
    status: int
    body: dict[str, Any]
    retry_after: str | None = None


def error(status: int, retry_after: str | None = None) -> Error:
    reason = {500: ("backendError", "Internal error encountered."),
              503: ("backendError", "The service is currently unavailable."),
              429: ("rateLimitExceeded", "Resource has been exhausted (e.g. check quota).")}[status]
    return Error(status, google_error(status, *reason), retry_after)


@dataclass
class Delay:
    seconds: float


TRUNCATE, BLOCK = "truncate", "block"


@dataclass
class Video:
    video_id: str
    title: str
    published_at: str  # RFC 3339, e.g. 2024-05-01T10:00:00Z
    queries: tuple[str, ...]
    description: str = ""
    channel: str = "Fake Channel"
    duration: str = "PT5M3S"
    views: int = 100
    likes: int | None = 10
    transcripts: dict[tuple[str, str], list[str]] | None = None  # {("manual"|"asr", lang): lines}
    drop: tuple[str, ...] = ()  # dotted fields removed from the videos.list resource ("snippet.title")
    search_drop: tuple[str, ...] = ()  # ... and from the search result ("id.videoId")
    listed: bool = True  # False: search finds it but videos.list does not return it (removed since)


def _drop(obj: dict[str, Any], dotted: tuple[str, ...]) -> dict[str, Any]:
    for path in dotted:
        *parents, leaf = path.split(".")
        node = obj
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return obj


class FakeYouTube:
    def __init__(self) -> None:
        self.videos: dict[str, Video] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.keys_seen: set[str] = set()
        self._plans: dict[str, deque[Any]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.arrived = threading.Event()  # a BLOCK action was reached
        self.release = threading.Event()  # lets blocked requests continue
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.discovery_url = f"{self.base_url}/$discovery/rest?version=v3"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def add(self, *videos: Video) -> None:
        for v in videos:
            self.videos[v.video_id] = v

    def plan(self, path: str, *actions: Any) -> None:
        """Queue actions for the next requests to `path` (None = answer normally)."""
        self._plans[path].extend(actions)

    def count(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p == path)

    def page_tokens(self) -> list[str]:
        """pageToken of every search.list request, '' for a first page, in request order."""
        return [q.get("pageToken", [""])[0] for _, p, q in self.requests if p == "/youtube/v3/search"]

    # --- request handling ---------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict, bytes]:
        with self._lock:
            self.requests.append((method, path, query))
            if path.startswith("/youtube/v3/"):
                self.keys_seen.update(query.get("key", []))
            action = self._plans[path].popleft() if self._plans[path] else None
        if action == BLOCK:
            self.arrived.set()
            self.release.wait(30)
        elif isinstance(action, Delay):
            time.sleep(action.seconds)
        elif isinstance(action, Error):
            headers = {"Retry-After": action.retry_after} if action.retry_after else {}
            return action.status, headers, json.dumps(action.body).encode()
        status, headers, payload = self._route(method, path, query, body)
        if action == TRUNCATE:
            payload = payload[: len(payload) // 2]
        return status, headers, payload

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict, bytes]:
        if path == "/$discovery/rest":
            return 200, {}, json.dumps(discovery_document(self.base_url + "/")).encode()
        if path in ("/youtube/v3/search", "/youtube/v3/videos"):
            if not query.get("key"):
                return 403, {}, json.dumps(google_error(403, "forbidden", "Method doesn't allow unregistered callers "
                                                        "(callers without established identity).")).encode()
            if not query.get("part"):
                return 400, {}, json.dumps(google_error(400, "required", "Required parameter: part")).encode()
            doc = self._search(query) if path.endswith("search") else self._videos(query)
            return 200, {}, json.dumps(doc).encode()
        if path == "/watch":
            html = f'<html><script>ytcfg.set({{"INNERTUBE_API_KEY": "{INNERTUBE_KEY}"}});</script></html>'
            return 200, {"Content-Type": "text/html"}, html.encode()
        if path == "/youtubei/v1/player":
            return 200, {}, json.dumps(self._player(json.loads(body)["videoId"])).encode()
        if path == "/api/timedtext":
            v = self.videos[query["v"][0]]
            kind = "asr" if query.get("kind") == ["asr"] else "manual"
            lines = (v.transcripts or {})[(kind, query["lang"][0])]
            xml = "".join(f'<text start="{i * 2.5:.2f}" dur="2.5">{escape(t)}</text>' for i, t in enumerate(lines))
            return 200, {"Content-Type": "text/xml"}, f'<?xml version="1.0" encoding="utf-8" ?><transcript>{xml}</transcript>'.encode()
        return 404, {}, json.dumps(google_error(404, "notFound", "Not Found")).encode()

    def _search(self, q: dict[str, list[str]]) -> dict[str, Any]:
        term = q.get("q", [""])[0]
        after = _ts(q["publishedAfter"][0]) if "publishedAfter" in q else None
        before = _ts(q["publishedBefore"][0]) if "publishedBefore" in q else None
        hits = [v for v in self.videos.values() if term in v.queries
                and (after is None or _ts(v.published_at) >= after) and (before is None or _ts(v.published_at) < before)]
        hits.sort(key=lambda v: (v.published_at, v.video_id), reverse=True)  # order=date: newest first
        size = int(q.get("maxResults", ["5"])[0])
        token = q.get("pageToken", [""])[0]
        offset = int(base64.urlsafe_b64decode(token).decode().split(":")[1]) if token else 0
        items = [_drop({"kind": "youtube#searchResult", "etag": f"e-{v.video_id}",
                        "id": {"kind": "youtube#video", "videoId": v.video_id},
                        "snippet": {"publishedAt": v.published_at, "channelId": f"UC{v.channel[:8]}",
                                    "title": v.title, "description": v.description[:160],
                                    "thumbnails": {}, "channelTitle": v.channel,
                                    "liveBroadcastContent": "none", "publishTime": v.published_at}}, v.search_drop)
                 for v in hits[offset: offset + size]]
        doc = {"kind": "youtube#searchListResponse", "etag": "etag-search", "regionCode": "US",
               "pageInfo": {"totalResults": len(hits), "resultsPerPage": size}, "items": items}
        if offset + size < len(hits):
            doc["nextPageToken"] = base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode()
        return doc

    def _videos(self, q: dict[str, list[str]]) -> dict[str, Any]:
        ids = [i for value in q.get("id", []) for i in value.split(",") if i]
        items = []
        for vid in ids:
            v = self.videos.get(vid)
            if v is None or not v.listed:
                continue
            stats = {"viewCount": str(v.views), "favoriteCount": "0", "commentCount": "3"}
            if v.likes is not None:
                stats["likeCount"] = str(v.likes)
            items.append(_drop({
                "kind": "youtube#video", "etag": f"e-{vid}", "id": vid,
                "snippet": {"publishedAt": v.published_at, "channelId": f"UC{v.channel[:8]}", "title": v.title,
                            "description": v.description, "thumbnails": {}, "channelTitle": v.channel,
                            "categoryId": "27", "liveBroadcastContent": "none", "defaultAudioLanguage": "en"},
                "contentDetails": {"duration": v.duration, "dimension": "2d", "definition": "hd",
                                   "caption": "true" if v.transcripts else "false", "licensedContent": False,
                                   "contentRating": {}, "projection": "rectangular"},
                "statistics": stats}, v.drop))
        return {"kind": "youtube#videoListResponse", "etag": "etag-videos", "items": items,
                "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)}}

    def _player(self, video_id: str) -> dict[str, Any]:
        v = self.videos.get(video_id)
        if v is None:
            return {"playabilityStatus": {"status": "ERROR", "reason": "This video is unavailable"}}
        doc: dict[str, Any] = {"playabilityStatus": {"status": "OK", "playableInEmbed": True}}
        if v.transcripts:
            tracks = [{"baseUrl": f"https://www.youtube.com/api/timedtext?v={video_id}&lang={lang}"
                                  + ("&kind=asr" if kind == "asr" else "") + "&fmt=srv3",
                       "name": {"runs": [{"text": "English (auto-generated)" if kind == "asr" else "English"}]},
                       "vssId": ("a." if kind == "asr" else ".") + lang, "languageCode": lang,
                       **({"kind": "asr"} if kind == "asr" else {}), "isTranslatable": True}
                      for kind, lang in v.transcripts]
            doc["captions"] = {"playerCaptionsTracklistRenderer": {
                "captionTracks": tracks,
                "translationLanguages": [{"languageCode": "de", "languageName": {"runs": [{"text": "German"}]}}]}}
        return doc


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _handler(fake: FakeYouTube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, payload = fake.handle(self.command, url.path, parse_qs(url.query), body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json; charset=UTF-8"))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test, killed run)
                pass

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:  # request lines carry the API key: never print them
            pass

    return Handler


class _ToLocal(HTTPAdapter):
    """Sends https://www.youtube.com/... to the fake server, so the transcript library runs unmodified."""

    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url

    def send(self, request, **kwargs):  # type: ignore[override]
        request.url = self.base_url + request.url.split("://www.youtube.com", 1)[1]
        return super().send(request, **kwargs)


def youtube_session(base_url: str) -> requests.Session:
    """A requests.Session for YouTubeTranscriptApi(http_client=...) that talks to the fake at `base_url`."""
    session = requests.Session()
    session.mount("https://www.youtube.com/", _ToLocal(base_url))
    return session


@pytest.fixture
def youtube_server() -> Iterator[FakeYouTube]:
    fake = FakeYouTube()
    try:
        yield fake
    finally:
        fake.close()
