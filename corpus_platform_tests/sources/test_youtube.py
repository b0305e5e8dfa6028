"""The YouTube connector against a local server speaking the Data API v3 and youtube.com caption formats.

googleapiclient is built from a discovery document served by the fake (rootUrl on 127.0.0.1), and
the real youtube-transcript-api runs through a requests.Session whose adapter sends youtube.com to the
fake, so both client libraries are exercised unmodified. Sleeps are recorded, never slept.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import traceback
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from corpus_platform.sources.base import SourceNotConfigured
from corpus_platform.sources.policy import BackoffPolicy, RetriesExhausted
from corpus_platform.sources.quota import QuotaExhausted, QuotaLedger
from corpus_platform.sources.state import PartitionState
from corpus_platform.sources.youtube import (
    LibraryTranscriptFetcher, YouTubeConfig, answer_text, duration_seconds, fetch_youtube, prompt_text,
)
from corpus_platform_tests.sources.fakes.youtube_server import (  # noqa: F401 - fixture
    BLOCK, QUOTA_EXCEEDED, TRUNCATE, Delay, Error, FakeYouTube, Video, error, youtube_server, youtube_session,
)

SECRET = "SENTINEL-SECRET-123"
REPO = Path(__file__).resolve().parents[2]


def seed(fake: FakeYouTube, n: int, day: date, query: str = "python", prefix: str = "v") -> list[str]:
    """n videos on `day`: every third has manual+auto English captions, every third auto only, the rest none."""
    ids = []
    for i in range(n):
        vid = f"{prefix}{day:%m%d}{i:05d}"
        kind = i % 3
        transcripts = ({("manual", "en"): [f"Manual line {i}.", "It explains things."], ("asr", "en"): ["auto words"]}
                       if kind == 0 else {("asr", "en"): [f"auto caption {i}", "[Music] no punctuation here"]}
                       if kind == 1 else None)
        fake.add(Video(vid, f"Video {i}", f"{day.isoformat()}T{i % 24:02d}:{i % 60:02d}:00Z", (query,),
                       description=f"All about {i}.\nhttps://example.com/{i}\n#python #tips", transcripts=transcripts,
                       views=1000 + i, likes=i))
        ids.append(vid)
    return ids


class Clock:
    def __init__(self, today: date):
        self.today = today

    def __call__(self) -> date:
        return self.today


@pytest.fixture
def clock() -> Clock:
    return Clock(date(2026, 1, 10))


@pytest.fixture
def run(youtube_server: FakeYouTube, tmp_path: Path, clock: Clock):
    """run(day, **config) -> SourceBatch, with recorded sleeps in run.sleeps and the ledger in run.ledger."""
    ledger = QuotaLedger.under(tmp_path / "state", today=clock)

    def _run(day: date, *, state_root: Path | None = None, log=None, **overrides):
        kw = dict(api_key=SECRET, queries=("python",), discovery_url=youtube_server.discovery_url, page_size=50,
                  requests_per_second=10_000, transcript_requests_per_second=10_000, timeout_s=5,
                  backoff=BackoffPolicy(max_retries=3, base_delay=0.25, jitter=0.0))
        kw.update(overrides)
        state = PartitionState(state_root or tmp_path / "state", "youtube", day)
        return fetch_youtube(YouTubeConfig(**kw), day, state, ledger,
                             transcripts=LibraryTranscriptFetcher(youtube_session(youtube_server.base_url)),
                             log=log, sleep=_run.sleeps.append)

    _run.sleeps = []
    _run.ledger = ledger
    return _run


def test_pagination_complete_and_videos_batched_by_50(youtube_server: FakeYouTube, run, day: date):
    ids = seed(youtube_server, 55, day)
    seed(youtube_server, 3, day - timedelta(days=1), prefix="old")  # outside the partition's UTC day
    batch = run(day, page_size=20, max_results_per_query=500)
    assert youtube_server.page_tokens()[0] == "" and len(youtube_server.page_tokens()) == 3
    assert sorted(batch.examples["source_id"]) == sorted(ids)
    video_calls = [q for _, p, q in youtube_server.requests if p == "/youtube/v3/videos"]
    assert [len(q["id"][0].split(",")) for q in video_calls] == [50, 5]
    search = [q for _, p, q in youtube_server.requests if p == "/youtube/v3/search"][0]
    assert (search["publishedAfter"], search["publishedBefore"]) == (["2024-05-01T00:00:00Z"], ["2024-05-02T00:00:00Z"])
    assert search["type"] == ["video"] and youtube_server.keys_seen == {SECRET}
    assert run.ledger.breakdown("youtube") == {"search.list": {"units": 300, "calls": 3},
                                               "videos.list": {"units": 2, "calls": 2}}


def test_max_results_per_query_caps_the_pages(youtube_server: FakeYouTube, run, day: date):
    seed(youtube_server, 20, day)
    batch = run(day, page_size=5, max_results_per_query=7)
    sizes = [q["maxResults"][0] for _, p, q in youtube_server.requests if p == "/youtube/v3/search"]
    assert sizes == ["5", "2"] and batch.examples.height == 7


def test_examples_prefer_manual_transcripts_and_carry_metadata(youtube_server: FakeYouTube, run, day: date):
    ids = seed(youtube_server, 3, day)
    youtube_server.add(Video("gone0000001", "Removed", f"{day}T05:00:00Z", ("python",), listed=False))
    batch = run(day)
    rows = {r["source_id"]: r for r in batch.examples.to_dicts()}
    manual, auto, none = (rows[i] for i in ids)
    meta = json.loads(manual["metadata"])
    assert manual["messages"] == [{"role": "user", "content": "Video 0\n\nAll about 0."},
                                  {"role": "assistant", "content": "Manual line 0. It explains things."}]
    assert meta["transcript_kind"] == "manual" and meta["language"] == "en"
    assert (meta["video_id"], meta["channel"], meta["published_at"]) == (ids[0], "Fake Channel", f"{day}T00:00:00Z")
    assert (meta["duration"], meta["duration_s"], meta["views"], meta["likes"]) == ("PT5M3S", 303, 1000, 0)
    assert meta["url"] == f"https://www.youtube.com/watch?v={ids[0]}" and "drop_reason" not in meta
    assert json.loads(auto["metadata"])["transcript_kind"] == "auto"
    assert auto["messages"][1]["content"] == "auto caption 1 no punctuation here"
    assert json.loads(none["metadata"])["drop_reason"] == "no_transcript"
    assert json.loads(rows["gone0000001"]["metadata"])["drop_reason"] == "video_unavailable"
    assert rows["gone0000001"]["messages"] == [{"role": "user", "content": "Removed"}]  # from the search result
    assert youtube_server.count("/watch") == 3  # no transcript request for the removed video


def test_text_construction_helpers():
    assert prompt_text("T", "Intro line.\nhttps://a.b/c\n#x #y\n\n\n\nMore", 100) == "T\n\nIntro line.\n\nMore"
    assert prompt_text("T", "", 100) == "T"
    assert answer_text(["One. Two is", "longer. Three."], 20) == "One. Two is longer."
    assert answer_text(["no punctuation at all in this caption"], 12) == "no"
    assert answer_text(["[Music]", ">> hi there"], 50) == "hi there"
    assert duration_seconds("PT1H2M3S") == 3723 and duration_seconds("P1DT1S") == 86401 and duration_seconds("") is None


def test_retry_after_honored_and_retries_bounded(youtube_server: FakeYouTube, run, day: date):
    seed(youtube_server, 2, day)
    youtube_server.plan("/youtube/v3/search", error(503, retry_after="7"), error(500))
    assert run(day).examples.height == 2
    assert run.sleeps == [7.0, 0.5]  # the server's Retry-After, then backoff attempt 1 (0.25 * 2)
    assert youtube_server.count("/youtube/v3/search") == 3
    assert run.ledger.used("youtube") == 301  # every attempt is charged: failed requests cost quota too

    youtube_server.plan("/youtube/v3/search", *[error(500)] * 10)
    with pytest.raises(RetriesExhausted, match="gave up after 4 attempts"):
        run(day + timedelta(days=1))
    assert youtube_server.count("/youtube/v3/search") == 3 + 4


def test_timeouts_and_truncated_json_are_retried(youtube_server: FakeYouTube, run, day: date):
    seed(youtube_server, 2, day)
    youtube_server.plan("/youtube/v3/search", Delay(1.0))
    youtube_server.plan("/youtube/v3/videos", TRUNCATE)
    batch = run(day, timeout_s=0.3)
    assert batch.examples.height == 2 and len(run.sleeps) == 2
    assert youtube_server.count("/youtube/v3/search") == 2 and youtube_server.count("/youtube/v3/videos") == 2


def test_malformed_items_are_quarantined_with_reasons(youtube_server: FakeYouTube, run, day: date):
    ids = seed(youtube_server, 3, day)
    youtube_server.add(Video("noid0000001", "No id", f"{day}T06:00:00Z", ("python",), search_drop=("id.videoId",)),
                       Video("notitle0001", "x", f"{day}T07:00:00Z", ("python",), drop=("snippet.title",)))
    youtube_server.plan("/api/timedtext", *[TRUNCATE] * 4)  # the first transcript fetched stays unreadable
    batch = run(day)
    reasons = dict(zip(batch.quarantine["file"], batch.quarantine["reason"]))
    assert reasons["youtube:search.list q=python page=1"] == "search result lacks id.videoId"
    assert reasons["youtube:videos.list id=notitle0001"] == "videos.list item lacks snippet.title"
    failed = [r for f, r in reasons.items() if f.startswith("youtube:transcript")]
    assert len(failed) == 1 and "transcript fetch failed" in failed[0] and "ParseError" in failed[0]
    assert batch.examples.height == 2  # three videos, one transcript unreadable; it is retried by the next run
    again = run(day)
    assert sorted(again.examples["source_id"]) == sorted(ids) and again.quarantine.height == 2


def test_server_quota_exceeded_stops_and_books_the_day(youtube_server: FakeYouTube, run, day: date):
    seed(youtube_server, 2, day)
    youtube_server.plan("/youtube/v3/search", Error(403, QUOTA_EXCEEDED))
    with pytest.raises(QuotaExhausted, match="403 quotaExceeded"):
        run(day)
    assert run.ledger.used("youtube") == 10_000 and youtube_server.count("/youtube/v3/search") == 1
    with pytest.raises(QuotaExhausted):
        run(day)
    assert youtube_server.count("/youtube/v3/search") == 1  # nothing sent once the ledger says the day is spent


def test_not_configured_without_a_key(run, day: date):
    with pytest.raises(SourceNotConfigured, match="YOUTUBE_API_KEY"):
        run(day, api_key="")
    assert "SENTINEL" not in repr(YouTubeConfig(api_key=SECRET))


def test_secret_never_leaks(youtube_server: FakeYouTube, run, day: date, tmp_path: Path, caplog):
    seed(youtube_server, 4, day)
    youtube_server.add(Video("notitle0001", "x", f"{day}T07:00:00Z", ("python",), drop=("snippet.title",)))
    youtube_server.plan("/youtube/v3/search", error(503), error(500))
    messages: list[str] = []
    log = logging.getLogger("test.youtube.collect")
    log.addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: messages.append(r.getMessage())})())
    caplog.set_level(logging.DEBUG)
    batch = run(day, log=log)
    youtube_server.plan("/youtube/v3/videos", *[error(500)] * 5)
    seed(youtube_server, 1, day + timedelta(days=1))
    with pytest.raises(RetriesExhausted) as exhausted:
        run(day + timedelta(days=1), log=log)
    assert "URL being requested" in caplog.text and messages  # the client did log, with the key masked
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert SECRET.encode() not in on_disk
    chain = "".join(traceback.format_exception(exhausted.value))
    assert exhausted.value.__cause__ is None and exhausted.value.__context__ is None
    for text in (caplog.text, "\n".join(messages), batch.examples.write_json(), batch.quarantine.write_json(), chain):
        assert SECRET not in text


def _expected_rows(df: pl.DataFrame) -> list[dict]:
    return df.drop("collected_at").sort("example_id").to_dicts()


CHILD = """
import json, sys
from datetime import date
from pathlib import Path
from corpus_platform.sources.policy import BackoffPolicy
from corpus_platform.sources.quota import QuotaLedger
from corpus_platform.sources.state import PartitionState
from corpus_platform.sources.youtube import LibraryTranscriptFetcher, YouTubeConfig, fetch_youtube
from corpus_platform_tests.sources.fakes.youtube_server import youtube_session
a = json.loads(sys.argv[1])
day = date.fromisoformat(a["day"])
cfg = YouTubeConfig(api_key=a["key"], queries=("python",), discovery_url=a["discovery"], page_size=5,
                    requests_per_second=10000, transcript_requests_per_second=10000, backoff=BackoffPolicy(max_retries=0))
ledger = QuotaLedger.under(Path(a["state"]), today=lambda: date(2026, 1, 10))
fetch_youtube(cfg, day, PartitionState(Path(a["state"]), "youtube", day), ledger,
              transcripts=LibraryTranscriptFetcher(youtube_session(a["base"])))
"""


@pytest.mark.parametrize("kill_at", ["/youtube/v3/search", "/api/timedtext"])
def test_sigkill_mid_fetch_then_rerun_gives_same_rows_without_refetching(
        youtube_server: FakeYouTube, run, day: date, tmp_path: Path, kill_at: str):
    seed(youtube_server, 13, day)  # 3 search pages of 5
    reference = run(day, state_root=tmp_path / "reference", page_size=5)
    youtube_server.requests.clear()

    youtube_server.plan(kill_at, None, None, BLOCK)  # the third request to `kill_at` hangs: kill the run there
    args = {"day": day.isoformat(), "key": SECRET, "discovery": youtube_server.discovery_url,
            "base": youtube_server.base_url, "state": str(tmp_path / "state")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    try:
        assert youtube_server.arrived.wait(30), child.stderr.read().decode() if child.poll() is not None else "no block"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    youtube_server.release.set()
    delivered_pages = youtube_server.page_tokens()[: (2 if kill_at.endswith("search") else 3)]
    paid_before = run.ledger.used("youtube")
    spooled = {r["video_id"] for r in PartitionState(tmp_path / "state", "youtube", day).read_spool()
               if r["kind"] == "transcript"}
    youtube_server.requests.clear()

    resumed = run(day, page_size=5)
    assert _expected_rows(resumed.examples) == _expected_rows(reference.examples)
    assert not set(delivered_pages) & set(youtube_server.page_tokens())  # no spooled page asked for again
    if kill_at == "/api/timedtext":
        assert youtube_server.count("/youtube/v3/search") == youtube_server.count("/youtube/v3/videos") == 0
        assert run.ledger.used("youtube") == paid_before  # the rerun paid nothing
        watched = [q["v"][0] for _, p, q in youtube_server.requests if p == "/watch"]
        assert len(spooled) >= 2 and not spooled & set(watched) and len(watched) == 13 - len(spooled)
