"""The persistent quota ledger, alone and under the YouTube connector: one budget per API and UTC day,
shared by every run and process, checked before each call, resumed on a later day."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from corpus_platform.sources.policy import BackoffPolicy
from corpus_platform.sources.quota import QuotaExhausted, QuotaLedger
from corpus_platform.sources.state import PartitionState
from corpus_platform.sources.youtube import LibraryTranscriptFetcher, YouTubeConfig, fetch_youtube
from corpus_platform_tests.sources.fakes.youtube_server import FakeYouTube, youtube_server, youtube_session  # noqa: F401
from corpus_platform_tests.sources.test_youtube import Clock, seed

TODAY = date(2026, 1, 10)


def test_charge_refuses_what_does_not_fit_and_persists(tmp_path: Path):
    clock = Clock(TODAY)
    ledger = QuotaLedger.under(tmp_path, today=clock)
    assert ledger.path == tmp_path / "quota" / "ledger.sqlite"
    for _ in range(3):
        ledger.charge("youtube", "search.list", 100, limit=350)
    with pytest.raises(QuotaExhausted) as refused:
        ledger.charge("youtube", "search.list", 100, limit=350)
    assert (refused.value.used, refused.value.limit, refused.value.needed) == (300, 350, 100)
    assert "300 of 350 units used" in str(refused.value) and "2026-01-10 (UTC)" in str(refused.value)
    ledger.charge("youtube", "videos.list", 1, limit=350)  # a cheaper call still fits

    reopened = QuotaLedger.under(tmp_path, today=clock)  # a new process: same file, same numbers
    assert reopened.used("youtube") == 301 and reopened.used("other-api") == 0
    assert reopened.breakdown("youtube") == {"search.list": {"units": 300, "calls": 3},
                                             "videos.list": {"units": 1, "calls": 1}}
    clock.today = TODAY + timedelta(days=1)  # a new UTC day: a fresh budget, yesterday's kept
    assert reopened.used("youtube") == 0 and reopened.used("youtube", TODAY) == 301
    reopened.mark_exhausted("youtube", limit=350)
    with pytest.raises(QuotaExhausted):
        reopened.charge("youtube", "videos.list", 1, limit=350)


def test_concurrent_charges_never_overshoot(tmp_path: Path):
    ledger = QuotaLedger.under(tmp_path, today=lambda: TODAY)
    granted: list[int] = []

    def worker() -> None:
        for _ in range(10):
            try:
                ledger.charge("youtube", "search.list", 100, limit=1_050)
                granted.append(1)
            except QuotaExhausted:
                pass

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 10 and ledger.used("youtube") == 1_000


@pytest.fixture
def fetch(youtube_server: FakeYouTube, tmp_path: Path):
    clock = Clock(TODAY)

    def _fetch(day: date, limit: int):
        cfg = YouTubeConfig(api_key="k", queries=("python",), discovery_url=youtube_server.discovery_url, page_size=5,
                            daily_quota_units=limit, requests_per_second=10_000,
                            transcript_requests_per_second=10_000, backoff=BackoffPolicy(max_retries=0))
        ledger = QuotaLedger.under(tmp_path / "state", today=clock)  # a fresh object each run: only the file persists
        return fetch_youtube(cfg, day, PartitionState(tmp_path / "state", "youtube", day), ledger,
                             transcripts=LibraryTranscriptFetcher(youtube_session(youtube_server.base_url)))

    _fetch.clock = clock
    _fetch.used = lambda: QuotaLedger.under(tmp_path / "state", today=clock).used("youtube")
    return _fetch


def test_two_runs_on_one_day_share_the_budget_and_resume_the_next_day(youtube_server: FakeYouTube, fetch, day: date):
    first, second = day, day + timedelta(days=1)
    seed(youtube_server, 8, first)  # 2 search pages + 1 videos.list = 201 units a partition
    ids = seed(youtube_server, 8, second, prefix="w")
    assert fetch(first, limit=305).examples.height == 8 and fetch.used() == 201
    with pytest.raises(QuotaExhausted) as stopped:
        fetch(second, limit=305)  # page 1 fits (301), page 2 would make 401
    msg = str(stopped.value)
    assert fetch.used() == 301 <= 305
    assert "301 of 305 units used" in msg and "search.list, 100 units" in msg
    assert "fetched so far: 1 search pages, 5 videos, 0 with details, 0 transcripts, kept in" in msg
    assert "resumes on a later UTC day" in msg and stopped.value.fetched["search pages"] == 1

    tokens_before = youtube_server.page_tokens()
    fetch.clock.today = TODAY + timedelta(days=1)
    batch = fetch(second, limit=305)
    assert sorted(batch.examples["source_id"]) == sorted(ids)
    resumed = youtube_server.page_tokens()[len(tokens_before):]
    assert resumed and "" not in resumed  # continued at page 2: page 1 was spooled, not refetched
    assert fetch.used() == 101


def test_backfill_stops_before_the_budget_and_a_later_day_resumes(youtube_server: FakeYouTube, fetch, day: date):
    days = [day + timedelta(days=i) for i in range(4)]
    expected = {d: set(seed(youtube_server, 8, d, prefix=f"b{i}")) for i, d in enumerate(days)}
    done: dict[date, set[str]] = {}

    def backfill() -> QuotaExhausted | None:
        for d in days:
            if d in done:
                continue
            try:
                done[d] = set(fetch(d, limit=500).examples["source_id"])
            except QuotaExhausted as exc:
                return exc
        return None

    stop = backfill()  # 201 + 201, then day 3's first page would make 502
    assert stop is not None and stop.used == 402 and fetch.used() == 402 <= 500
    assert list(done) == days[:2] and stop.fetched["search pages"] == 0
    fetch.clock.today = TODAY + timedelta(days=1)
    assert backfill() is None and fetch.used() == 402  # days 3 and 4 on the new day's budget
    assert done == expected
    assert len(youtube_server.page_tokens()) == 8  # 2 pages a day, each asked for exactly once
