"""fetch_twitter against a local fake of the Apify API: dataset paging, bounded retries, Retry-After,
timeouts, quarantine, collection rules as drop reasons, secrets, crash recovery (a real SIGKILL), field
and date normalization across actors, and a replay of real tweets."""

from __future__ import annotations

import csv
import gzip
import html
import json
import logging
import os
import signal
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from corpus_platform.curation.filters import FilterSettings, apply_filters
from corpus_platform.sources.policy import BackoffPolicy, RetriesExhausted
from corpus_platform.sources.state import PartitionState
from corpus_platform.sources.twitter import (
    LEADING_MENTIONS, TwitterConfig, fetch_twitter, normalize_tweet, parse_date,
)
from corpus_platform_tests.sources.fakes import Fault
from corpus_platform_tests.sources.fakes.apify_server import FakeApify

DAY = date(2024, 5, 1)
NOON = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
TOKEN = "SENTINEL-SECRET-123"
ACTOR = "apidojo/tweet-scraper"
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[2]


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def legacy(id: int, text: str, at: datetime, *, likes: int = 50, user: str = "alice", followers: int = 500,
           reply_to: int | None = None, conversation: int | None = None, **extra) -> dict:
    """A tweet in the v1.1 shape some actors emit: id_str, full_text, created_at "Wed Oct 10 ...", user{}."""
    d = {"id_str": str(id), "full_text": text, "created_at": at.strftime("%a %b %d %H:%M:%S +0000 %Y"),
         "favorite_count": likes, "retweet_count": 1, "reply_count": 3, "lang": "en",
         "conversation_id_str": str(conversation or id), "in_reply_to_status_id_str": str(reply_to) if reply_to else None,
         "user": {"id_str": str(1000 + len(user)), "screen_name": user, "followers_count": followers},
         "entities": {"hashtags": [], "urls": [], "user_mentions": []}}
    d.update(extra)
    return d


def modern(id: int, text: str, at: datetime, *, likes: int = 10, user: str = "bob", followers: int = 900,
           reply_to: int | None = None, conversation: int | None = None, **extra) -> dict:
    """The same in apidojo/tweet-scraper's shape: id, text, createdAt (ISO here), likeCount, author{}."""
    d = {"type": "tweet", "id": str(id), "url": f"https://x.com/{user}/status/{id}", "text": text,
         "createdAt": at.isoformat().replace("+00:00", "Z"), "likeCount": likes, "replyCount": 0, "retweetCount": 0,
         "conversationId": str(conversation or id), "inReplyToId": str(reply_to) if reply_to else None,
         "isReply": reply_to is not None, "isRetweet": False, "lang": "en",
         "author": {"userName": user, "id": str(2000 + len(user)), "followers": followers}}
    d.update(extra)
    return d


def conversation(n: int, replies: int = 2) -> tuple[dict, list[dict]]:
    root = legacy(n * 100, f"Question {n}: what is a good habit for learning to program well?", NOON + timedelta(minutes=n))
    return root, [modern(n * 100 + k, f"@alice Answer {k} to question {n}: write a little code every single day.",
                         NOON + timedelta(minutes=n, hours=1), user=f"u{n}_{k}", reply_to=n * 100, conversation=n * 100)
                  for k in range(1, replies + 1)]


@pytest.fixture
def server():
    srv = FakeApify(token=TOKEN).start()
    yield srv
    srv.stop()


def load(srv: FakeApify, *convs: tuple[dict, list[dict]]) -> None:
    srv.search_results += [root for root, _ in convs]
    for root, replies in convs:
        srv.conversations[root.get("id_str") or root.get("id")] = replies


def config(srv: FakeApify, **kw) -> TwitterConfig:
    base = dict(api_token=TOKEN, actor_id=ACTOR, search_terms=("learn to program",), api_url=srv.url, page_size=5,
                timeout=2.0, requests_per_minute=1e6, backoff=BackoffPolicy(max_retries=3, base_delay=0.01))
    base.update(kw)
    return TwitterConfig(**base)


def fetch(srv, tmp_path, cfg=None):
    logs: list[str] = []
    sleeps = Sleeps()
    batch = fetch_twitter(cfg or config(srv), DAY, PartitionState(tmp_path / "state", "twitter", DAY),
                          log=logs.append, sleep=sleeps)
    return batch, logs, sleeps


def meta(batch) -> dict[str, dict]:
    return {json.loads(m)["reply_id"]: json.loads(m) for m in batch.examples["metadata"]}


def rows(batch) -> list[tuple]:
    return sorted((r["source_id"], json.dumps(r["messages"]), r["metadata"]) for r in batch.examples.to_dicts())


def test_reads_every_dataset_page_of_both_runs(server, tmp_path):
    load(server, *(conversation(n, replies=2) for n in range(1, 12)))  # 11 roots, 22 replies
    server.polls_until_done = 1
    batch, _, _ = fetch(server, tmp_path)
    assert batch.examples.height == 22 and batch.quarantine.height == 0
    assert server.count(r"/runs$", method="POST") == 2 and server.count(r"^/v2/actor-runs/") == 4  # 2 polls each
    offsets = [q["offset"][0] for _, p, q, _ in server.log if p.endswith("/items")]
    assert offsets == ["0", "5", "10", "0", "5", "10", "15", "20"]  # 11 items in pages of 5, then 22
    (_, search), (_, replies) = server.run_inputs
    assert search["searchTerms"] == ["learn to program since:2024-05-01 until:2024-05-02"]
    assert sorted(replies["searchTerms"]) == sorted(f"conversation_id:{n * 100}" for n in range(1, 12))
    m = meta(batch)["101"]
    assert m["thread_id"] == m["conversation_id"] == m["tweet_id"] == "100" and m["parent_id"] == "100"
    assert (m["author"], m["author_followers"], m["likes"], m["tweet_author"], m["tweet_likes"]) == ("u1_1", 900, 10, "alice", 50)
    assert m["created_at"] == "2024-05-01T13:01:00+00:00" and m["tweet_created_at"] == "2024-05-01T12:01:00+00:00"
    ex = batch.examples.filter(pl.col("source_id") == "100/101").to_dicts()[0]
    assert ex["messages"] == [
        {"role": "user", "content": "Question 1: what is a good habit for learning to program well?"},
        {"role": "assistant", "content": "Answer 1 to question 1: write a little code every single day."}]  # @alice stripped


def test_always_503_gives_up_after_max_retries_plus_one_attempts(server, tmp_path):
    load(server, conversation(1))
    server.faults.append(Fault(r"/items$", "status", status=503, times=None))
    with pytest.raises(RetriesExhausted):
        fetch(server, tmp_path, config(server, backoff=BackoffPolicy(max_retries=2, base_delay=0.01)))
    assert server.count(r"/items$") == 3


def test_429_retry_after_is_honored(server, tmp_path):
    load(server, conversation(1))
    server.faults.append(Fault(r"/runs$", "status", status=429, retry_after="4", method="POST"))
    batch, logs, sleeps = fetch(server, tmp_path)
    assert 4.0 in sleeps and batch.examples.height == 2
    assert server.count(r"/runs$", method="POST") == 3  # the refused start, the search run, the replies run
    assert len(server.runs) == 2 and any("HTTP 429" in line for line in logs)


def test_500_a_dropped_connection_and_a_timeout_are_retried(server, tmp_path):
    load(server, *(conversation(n) for n in range(1, 4)))
    server.faults += [Fault(r"^/v2/actor-runs/", "status", status=500),
                      Fault(r"/items$", "close"), Fault(r"/items$", "slow", delay=1.0, after=2)]
    batch, logs, _ = fetch(server, tmp_path, config(server, timeout=0.3))
    assert batch.examples.height == 6 and any("timeout" in line for line in logs)
    assert "slow" in [s for _, p, _, s in server.log if p.endswith("/items")]


def test_truncated_page_and_unreadable_items_are_quarantined(server, tmp_path):
    root, replies = conversation(1, replies=3)
    replies += [{**modern(150, "no text", NOON, reply_to=100, conversation=100), "text": None},
                modern(151, "bad date", NOON, reply_to=100, conversation=100, createdAt="yesterday-ish"),
                {**modern(152, "bool id", NOON, reply_to=100, conversation=100), "id": True}, "not an object"]
    load(server, (root, replies), conversation(2, replies=5))
    server.search_results.append({"noResults": True})  # what some actors emit for an empty search
    server.faults.append(Fault(r"/items$", "truncate", after=3))  # the replies dataset's 3rd page: items 11-12
    batch, _, _ = fetch(server, tmp_path)
    q = {(r["file"], r["line"]): r["reason"] for r in batch.quarantine.to_dicts()}
    assert q[("apify:replies-dataset", 4)] == "unreadable tweet: missing text"
    assert q[("apify:replies-dataset", 5)].startswith("unreadable tweet: unrecognized date 'yesterday-ish'")
    assert q[("apify:replies-dataset", 6)] == "unreadable tweet: id has type bool"
    assert q[("apify:replies-dataset", 7)] == "unreadable tweet: item is a str, not an object"
    assert len(q) == 5 and {r["source"] for r in batch.quarantine.to_dicts()} == {"twitter"}
    page = batch.quarantine.filter(pl.col("reason").str.starts_with("unparsable")).to_dicts()[0]
    assert page["reason"] == "unparsable dataset page (items 11-12)" and page["raw"].startswith("[{")
    # the two replies on the truncated page are lost with it (and quarantined as a page); the rest are examples
    assert set(meta(batch)) == {"101", "102", "103", "201", "202", "203"}


def test_collection_rules_become_drop_reasons_the_filter_rejects(server, tmp_path):
    root = legacy(100, "Which habits helped you most when you were learning to program?", NOON, likes=40)
    low_root = legacy(200, "A quiet tweet that nobody liked but that got one reply anyway.", NOON, likes=2)
    media_root = legacy(300, "A tweet with a screenshot of my editor setup, thoughts on it?", NOON,
                        extended_entities={"media": [{"type": "photo"}]})

    def r(id, text="Reading other people's code every day helped me the most.", root=100, at=NOON + timedelta(hours=1), **kw):
        return modern(id, text, at, reply_to=root, conversation=root, **kw)

    replies = [
        r(101, "@alice Short.", user="a1"),  # too short once the leading mention is stripped
        r(102, "x" * 300, user="a2"),
        r(103, likes=1, user="a3"),
        r(104, followers=5, user="a4"),
        r(105, at=NOON + timedelta(minutes=2), user="a5"),
        r(106, at=NOON + timedelta(days=8), user="a6"),
        r(107, "Read the docs here: https://docs.python.org/3/tutorial/ every morning.", user="a7"),
        r(108, user="a8", entities={"urls": [{"expanded_url": "https://example.com"}]}),
        r(109, user="a9", media=[{"type": "video"}]),
        *(r(110 + k, user="prolific", likes=20 - k) for k in range(5)),  # 4th and 5th exceed max 3 per author
        r(120, user="fine"),
    ]
    load(server, (root, replies), (low_root, [r(201, root=200, user="b1")]), (media_root, [r(301, root=300, user="c1")]))
    batch, _, _ = fetch(server, tmp_path)
    m = meta(batch)
    got = {i: (x.get("drop_reason"), x.get("drop_score"), x.get("drop_threshold")) for i, x in m.items()}
    assert got["101"] == ("reply_chars_below_min", 6.0, 30.0)
    assert got["102"] == ("reply_chars_above_max", 300.0, 280.0)
    assert got["103"] == ("reply_likes_below_min", 1.0, 3.0)
    assert got["104"] == ("author_followers_below_min", 5.0, 50.0)
    assert got["105"] == ("reply_delay_below_min", 120.0, 300.0)
    assert got["106"] == ("reply_delay_above_max", 8 * 86400.0, 7 * 86400.0)
    assert got["107"][0] == got["108"][0] == "has_url" and got["109"][0] == "has_media"
    assert got["201"] == ("tweet_likes_below_min", 2.0, 10.0) and got["301"][0] == "has_media"
    assert [got[str(110 + k)] for k in range(5)] == [(None, None, None)] * 3 + [
        ("replies_per_author_above_max", 4.0, 3.0), ("replies_per_author_above_max", 5.0, 3.0)]
    assert got["120"] == (None, None, None)
    kept, decisions = apply_filters(batch.examples, FilterSettings())
    d = {row["example_id"]: row for row in decisions.to_dicts()}
    for eid, md in zip(batch.examples["example_id"], batch.examples["metadata"]):
        x = json.loads(md)
        if "drop_reason" in x:
            assert d[eid]["rule"] == f"source:{x['drop_reason']}"
            assert (d[eid]["score"], d[eid]["threshold"]) == (x.get("drop_score", 1.0), x.get("drop_threshold", 0.0))
    assert set(kept["source_id"]) == {"100/110", "100/111", "100/112", "100/120"}


def test_the_token_never_reaches_logs_frames_or_state(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    load(server, conversation(1))
    server.faults += [Fault(r"/items$", "status", status=503), Fault(r"/items$", "truncate", after=1)]
    cfg = config(server)
    assert TOKEN not in repr(cfg)
    batch, logs, _ = fetch(server, tmp_path, cfg)
    assert batch.quarantine.height == 1
    server.faults.append(Fault(r"/runs$", "status", status=503, times=None))
    with pytest.raises(RetriesExhausted) as err:
        fetch(server, tmp_path / "again", cfg)
    state = "".join(p.read_text() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert caplog.text and state
    for text in [*logs, caplog.text, str(err.value), repr(err.value.__cause__), state,
                 batch.examples.write_json(), batch.quarantine.write_json()]:
        assert TOKEN not in text


def test_a_failed_run_raises_and_env_config_names_what_is_missing(server, tmp_path):
    load(server, conversation(1))
    server.final_status = "FAILED"
    with pytest.raises(RuntimeError, match="ended FAILED"):
        fetch(server, tmp_path)


def test_dates_and_fields_normalize_across_actor_formats():
    want = datetime(2018, 10, 10, 20, 19, 24, tzinfo=timezone.utc)
    for value in ("Wed Oct 10 20:19:24 +0000 2018", "Wed, 10 Oct 2018 20:19:24 +0000", "Wed, 10 Oct 2018 22:19:24 +0200",
                  "2018-10-10T20:19:24Z", "2018-10-10T20:19:24.000Z", "2018-10-10T22:19:24+02:00", "2018-10-10 20:19:24",
                  1539202764, 1539202764000, "1539202764"):
        assert parse_date(value) == want, value
    at = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    shapes = [
        legacy(7, "Fish &amp; chips", at, likes=5, user="carol", followers=70),
        modern(7, "Fish &amp; chips", at, likes=5, user="carol", followers=70),
        {"tweet_id": 7, "text": "Fish &amp; chips", "timestamp": "2024-05-01T12:00:00+00:00", "likes": 5,
         "username": "carol", "followers_count": 70, "conversation_id": 7},
        {"id": "7", "content": "Fish &amp; chips", "created_at": "Wed, 01 May 2024 12:00:00 GMT", "like_count": 5,
         "user": {"username": "carol", "followersCount": 70}},
    ]
    for raw in shapes:
        t = normalize_tweet(raw)
        assert (t["id"], t["text"], t["created_at"], t["likes"], t["author"], t["author_followers"], t["conversation_id"]) == (
            "7", "Fish & chips", "2024-05-01T12:00:00+00:00", 5, "carol", 70, "7"), raw


CHILD = """
import json, sys
from datetime import date
from pathlib import Path
from corpus_platform.sources.policy import BackoffPolicy
from corpus_platform.sources.state import PartitionState
from corpus_platform.sources.twitter import TwitterConfig, fetch_twitter
a = json.loads(sys.argv[1])
day = date.fromisoformat(a["day"])
cfg = TwitterConfig(api_token=a["token"], actor_id="apidojo/tweet-scraper", search_terms=("learn to program",),
                    api_url=a["url"], page_size=5, timeout=30, requests_per_minute=1e6, backoff=BackoffPolicy(max_retries=0))
fetch_twitter(cfg, day, PartitionState(Path(a["root"]), "twitter", day), log=lambda m: None)
"""


def test_sigkill_mid_fetch_then_rerun_gives_the_same_rows_without_paying_twice(tmp_path):
    convs = [conversation(n, replies=2) for n in range(1, 9)]  # 8 roots (2 pages), 16 replies (4 pages)
    reference, crashed = FakeApify(token=TOKEN).start(), FakeApify(token=TOKEN).start()
    try:
        for srv in (reference, crashed):
            load(srv, *json.loads(json.dumps(convs)))
        expected, _, _ = fetch(reference, tmp_path / "ref")
        crashed.faults.append(Fault(r"/items$", "hang", after=3))  # the replies dataset's 2nd page
        args = json.dumps({"url": crashed.url, "token": TOKEN, "root": str(tmp_path / "state"), "day": DAY.isoformat()})
        child = subprocess.Popen([sys.executable, "-c", CHILD, args], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            assert crashed.hang_reached.wait(60), "the child never reached the replies dataset's second page"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        crashed.faults.clear()
        crashed.release.set()
        resumed, _, _ = fetch(crashed, tmp_path)
    finally:
        reference.stop()
        crashed.stop()
    assert rows(resumed) == rows(expected) and resumed.examples.height == 16
    assert crashed.count(r"/runs$", method="POST") == 2 and len(crashed.runs) == 2  # no run paid for twice
    pages = [(p, q["offset"][0]) for _, p, q, s in crashed.log if p.endswith("/items") and s == 200]
    assert len(pages) == len(set(pages)) == 6  # each page read once, across both processes


@pytest.mark.realdata
def test_replays_real_tweets_intact(server, tmp_path):
    path = DATA / "tweets-hate-offensive" / "labeled_data.csv.gz"
    if not path.exists():
        pytest.skip("../shared/data not present: the tweet replay needs the shared corpus beside the repo")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        records = [r for _, r in zip(range(240), csv.DictReader(f))]
    texts = {}
    convs = []
    for n in range(40):  # 40 roots, 5 replies each, alternating the two actor shapes
        root_rec, reply_recs = records[n], records[40 + 5 * n: 45 + 5 * n]
        rid = 10_000 + n
        make = legacy if n % 2 else modern
        root = make(rid, root_rec["tweet"], NOON + timedelta(minutes=n), likes=int(root_rec["count"]) * 10, user=f"root{n}",
                    replyCount=5)
        texts[str(rid)] = root_rec["tweet"]
        replies = []
        for k, rec in enumerate(reply_recs, 1):
            rep = (modern if n % 2 else legacy)(rid * 10 + k, rec["tweet"], NOON + timedelta(minutes=n, hours=k),
                                               likes=int(rec["hate_speech"]) + int(rec["offensive_language"]),
                                               user=f"r{n}_{k}", followers=100 * k, reply_to=rid, conversation=rid)
            texts[str(rid * 10 + k)] = rec["tweet"]
            replies.append(rep)
        convs.append((root, replies))
    load(server, *convs)
    batch, _, _ = fetch(server, tmp_path, config(server, page_size=50, max_conversations=40))
    assert batch.quarantine.height == 0 and batch.examples.height == 200
    by_reply = {n: rec for n, rec in zip(range(200), records[40:240])}
    for ex in batch.examples.to_dicts():
        m = json.loads(ex["metadata"])
        assert ex["messages"][0]["content"] == html.unescape(texts[m["tweet_id"]])  # the real tweet, unescaped
        assert ex["messages"][1]["content"] == LEADING_MENTIONS.sub("", html.unescape(texts[m["reply_id"]]))
        k = int(m["reply_id"]) - int(m["tweet_id"]) * 10
        rec = by_reply[5 * (int(m["tweet_id"]) - 10_000) + k - 1]
        assert m["likes"] == int(rec["hate_speech"]) + int(rec["offensive_language"])
        assert m["author_followers"] == 100 * k and m["thread_id"] == m["tweet_id"]
        assert parse_date(m["created_at"]) == NOON + timedelta(minutes=int(m["tweet_id"]) - 10_000, hours=k)
