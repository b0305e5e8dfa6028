"""Transcripts for the YouTube connector, behind a small protocol.

Why a protocol: transcripts are scraped from youtube.com (watch page, innertube player API, timedtext
XML), not served by the quota-metered Data API, so the connector takes any `TranscriptFetcher`. The
real one wraps youtube-transcript-api, whose `http_client` (a requests.Session) is where proxies,
cookies or, in tests, an adapter to a local fake server go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, Sequence
from xml.etree.ElementTree import ParseError

from corpus_platform.sources.policy import Retryable


@dataclass(frozen=True)
class Transcript:
    segments: list[str]
    language: str  # "English (auto-generated)"
    language_code: str  # "en"
    kind: str  # "manual" | "auto"


class TranscriptUnavailable(Exception):
    """The video has no usable transcript (disabled, none in the languages, unplayable): do not retry."""


class TranscriptFetcher(Protocol):
    def fetch(self, video_id: str, languages: Sequence[str]) -> Transcript:
        """Raise TranscriptUnavailable for a permanent absence, Retryable for a transient failure."""


class LibraryTranscriptFetcher:
    """youtube-transcript-api, manual transcripts preferred over auto-generated ones.

    `http_client` is the requests.Session the library uses for every request (proxies, cookies, or a
    local fake in tests)."""

    def __init__(self, http_client: Any = None):
        from youtube_transcript_api import YouTubeTranscriptApi

        self.api = YouTubeTranscriptApi(http_client=http_client)

    def fetch(self, video_id: str, languages: Sequence[str]) -> Transcript:
        from requests import RequestException
        import youtube_transcript_api as e

        try:
            listing = self.api.list(video_id)
            try:
                found = listing.find_manually_created_transcript(languages)
            except e.NoTranscriptFound:
                found = listing.find_generated_transcript(languages)
            fetched = found.fetch()
        except (e.RequestBlocked, e.YouTubeDataUnparsable, RequestException, ParseError) as exc:
            raise Retryable(f"transcript {type(exc).__name__}") from exc
        except e.YouTubeRequestFailed as exc:
            if re.match(r"(429|5\d\d)\b", exc.reason):
                raise Retryable(f"transcript HTTP {exc.reason[:3]}") from exc
            raise TranscriptUnavailable(f"HTTP {exc.reason[:3]}") from exc
        except e.CouldNotRetrieveTranscript as exc:
            raise TranscriptUnavailable(type(exc).__name__) from exc
        return Transcript([s.text for s in fetched], fetched.language, fetched.language_code,
                          "auto" if fetched.is_generated else "manual")


def mirror_session(base_url: str) -> Any:
    """A requests.Session that sends https://www.youtube.com/... to `base_url` instead: a caching mirror
    in production, the local test server in tests. The transcript library runs unmodified on top of it."""
    import requests
    from requests.adapters import HTTPAdapter

    class _Mirror(HTTPAdapter):
        def send(self, request, **kwargs):  # type: ignore[override]
            request.url = base_url.rstrip("/") + request.url.split("://www.youtube.com", 1)[1]
            return super().send(request, **kwargs)

    session = requests.Session()
    session.mount("https://www.youtube.com/", _Mirror())
    return session
