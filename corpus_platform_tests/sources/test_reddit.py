"""fetch_reddit against a local fake of Reddit's OAuth API: paging, bounded retries, Retry-After, timeouts,
quarantine, drop reasons, secrets, crash recovery (a real SIGKILL) and a replay of real Reddit comments."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import signal
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from corpus_platform.curation.filters import FilterSettings, apply_filters
from corpus_platform.sources.base import SourceNotConfigured
from corpus_platform.sources.policy import BackoffPolicy, RetriesExhausted
from corpus_platform.sources.reddit import RedditConfig, SubredditSpec, fetch_reddit
from corpus_platform.sources.state import PartitionState
from corpus_platform_tests.sources.fakes import Fault
from corpus_platform_tests.sources.fakes.reddit_server import FakeReddit, comment, post

DAY = date(2024, 5, 1)
T0 = datetime(2024, 5, 1, tzinfo=timezone.utc).timestamp()
SECRET, PASSWORD = "SENTINEL-SECRET-123", "SENTINEL-PASSWORD-456"
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[2]


class Sleeps(list):
    """Injected in place of time.sleep: records each delay instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server():
    srv = FakeReddit(client_id="cid", client_secret=SECRET, username="scraper", password=PASSWORD).start()
    yield srv
    srv.stop()


def config(srv: FakeReddit, *subs: SubredditSpec, **kw) -> RedditConfig:
    base = dict(client_id="cid", client_secret=SECRET, user_agent="linux:corpus-platform-tests:1.0 (by u/tests)",
                subreddits=subs or (SubredditSpec("python"),), oauth_url=srv.url, reddit_url=srv.url,
                requests_per_minute=1e6, timeout=2.0, page_size=10,
                backoff=BackoffPolicy(max_retries=3, base_delay=0.01, max_delay=60))
    base.update(kw)
    return RedditConfig(**base)


def thread(i: int, sub: str = "python", created: float | None = None, **kw) -> dict:
    """A post of the day with one top comment (plus a weaker one) and one reply: two examples."""
    created = T0 + 60 * i + 30 if created is None else created
    kw.setdefault("selftext", f"Some details for {i}.")
    return post(f"p{i}", sub, title=f"Question number {i} about {sub}",
                created_utc=created, comments=[
                    comment(f"c{i}", f"The best answer to question {i}, with detail.", score=20, created_utc=created + 60,
                            replies=[comment(f"r{i}", f"Thanks, answer {i} solved my problem!", score=4,
                                             created_utc=created + 120)]),
                    comment(f"d{i}", f"A weaker answer to question {i}.", score=2, created_utc=created + 90)], **kw)


def fetch(srv, tmp_path, cfg=None, **kw):
    logs: list[str] = []
    sleeps = Sleeps()
    batch = fetch_reddit(cfg or config(srv), DAY, PartitionState(tmp_path / "state", "reddit", DAY),
                         log=logs.append, sleep=sleeps, **kw)
    return batch, logs, sleeps


def meta(batch) -> list[dict]:
    return [json.loads(m) for m in batch.examples["metadata"]]


def rows(batch) -> list[tuple]:
    return sorted((r["source_id"], json.dumps(r["messages"]), r["metadata"]) for r in batch.examples.to_dicts())


def test_pages_every_listing_page_and_only_the_days_posts(server, tmp_path):
    newer = [thread(100 + i, created=T0 + 86400 + 10 * i) for i in range(5)]
    today = [thread(i) for i in range(25)]
    older = [thread(200 + i, created=T0 - 10 - i) for i in range(15)]
    server.add(*newer, *today, *older, *(thread(300 + i, sub="rust") for i in range(6)))
    cfg = config(server, SubredditSpec("rust", priority=2, limit=4), SubredditSpec("python", priority=1))
    batch, logs, _ = fetch(server, tmp_path, cfg)
    # 5 newer + 25 of the day + the first older post sit on listing pages 1..4 of 10; paging stops there
    assert server.count(r"^/r/python/new$") == 4
    assert server.count(r"^/comments/p\d{1,2}$") == 25
    assert server.count(r"^/comments/p2\d\d$") == 0 and server.count(r"^/comments/p1\d\d$") == 0
    assert server.count(r"^/r/rust/new$") == 1 and server.count(r"^/comments/p3\d\d$") == 4  # its limit
    paths = [p for _, p, _, _ in server.log if p.endswith("/new")]
    assert paths.index("/r/python/new") < paths.index("/r/rust/new")  # priority order
    assert batch.examples.height == 2 * (25 + 4) and batch.quarantine.height == 0
    m = {x["response_id"]: x for x in meta(batch)}
    assert m["t1_c7"]["kind"] == "post_comment" and m["t1_c7"]["thread_id"] == "t3_p7" == m["t1_r7"]["thread_id"]
    assert m["t1_r7"]["kind"] == "comment_reply" and m["t1_r7"]["parent_id"] == "t1_c7"
    assert m["t1_c7"]["score"] == 20 and m["t1_c7"]["num_comments"] == 3 and m["t1_c7"]["subreddit"] == "python"
    assert m["t1_c7"]["permalink"].startswith("/r/python/comments/p7/") and m["t1_c7"]["over_18"] is False
    assert set(batch.examples["source_id"]) >= {"t3_p7/t1_c7", "t1_c7/t1_r7"}
    ex = batch.examples.filter(pl.col("source_id") == "t3_p7/t1_c7").to_dicts()[0]
    assert ex["messages"] == [{"role": "user", "content": "Question number 7 about python\n\nSome details for 7."},
                              {"role": "assistant", "content": "The best answer to question 7, with detail."}]
    assert server.grants == ["client_credentials"]  # no username/password in the config


def test_default_rate_is_reddits_60_per_minute_and_paces_requests(server, tmp_path):
    assert RedditConfig("id", "secret", "ua").requests_per_minute == 60
    server.add(*(thread(i) for i in range(3)))
    _, _, sleeps = fetch(server, tmp_path, config(server, requests_per_minute=60))
    # 1 listing + 3 threads under a token bucket of 1/s, burst 1. The recorder does not really sleep, so the
    # bucket's debt grows: the k-th later request is scheduled k seconds after the first one.
    assert len(sleeps) == 3 and all(k + 1 - 0.9 < s <= k + 1 for k, s in enumerate(sleeps))


def test_always_503_gives_up_after_max_retries_plus_one_attempts(server, tmp_path):
    server.add(thread(1))
    server.faults.append(Fault(r"^/r/python/new$", "status", status=503, times=None))
    with pytest.raises(RetriesExhausted):
        fetch(server, tmp_path, config(server, backoff=BackoffPolicy(max_retries=4, base_delay=0.01)))
    assert server.count(r"^/r/python/new$") == 5


def test_429_retry_after_is_honored(server, tmp_path):
    server.add(*(thread(i) for i in range(3)))
    server.faults.append(Fault(r"^/comments/p1$", "status", status=429, retry_after="7"))
    batch, logs, sleeps = fetch(server, tmp_path)
    assert 7.0 in sleeps and batch.examples.height == 6
    assert server.count(r"^/comments/p1$") == 2 and any("HTTP 429" in line for line in logs)


def test_500_and_dropped_connections_are_retried(server, tmp_path):
    server.add(*(thread(i) for i in range(3)))
    server.faults += [Fault(r"^/comments/p0$", "status", status=500), Fault(r"^/comments/p2$", "close")]
    batch, _, _ = fetch(server, tmp_path)
    assert batch.examples.height == 6 and server.count(r"^/comments/p[02]$") == 4


def test_a_slow_answer_times_out_and_is_retried(server, tmp_path):
    server.add(*(thread(i) for i in range(2)))
    server.faults.append(Fault(r"^/comments/p1$", "slow", delay=1.0))
    batch, logs, _ = fetch(server, tmp_path, config(server, timeout=0.25))
    assert batch.examples.height == 4
    assert [s for _, p, _, s in server.log if p == "/comments/p1"] == ["slow", 200]
    assert any("timeout" in line for line in logs)


def test_truncated_json_and_malformed_items_are_quarantined(server, tmp_path):
    bad_comment = thread(2)
    bad_comment["_comments"][0]["_replies"].append(comment("rx", "", drop=("body",), score=99))
    server.add(thread(0), thread(1), bad_comment, post("px", "python", title="no date", created_utc=T0, drop=("created_utc",)))
    server.faults.append(Fault(r"^/comments/p1$", "truncate"))
    batch, _, _ = fetch(server, tmp_path)
    q = batch.quarantine.to_dicts()
    reasons = {r["file"]: r["reason"] for r in q}
    assert reasons["/comments/p1"].startswith("unparsable JSON body")
    assert "missing field 'body'" in reasons["/comments/p2"]
    assert any("created_utc" in r["reason"] and r["file"].startswith("/r/python/new") for r in q)
    assert {r["source"] for r in q} == {"reddit"} and all(r["raw"] for r in q)
    # everything else is intact: p0, and p2 whose malformed reply is skipped (c2 → r2 still pairs)
    assert set(batch.examples["source_id"]) == {"t3_p0/t1_c0", "t1_c0/t1_r0", "t3_p2/t1_c2", "t1_c2/t1_r2"}


def test_every_drop_reason_is_kept_as_an_example_and_rejected_by_the_filter(server, tmp_path):
    nsfw = thread(1, over_18=True)
    removed = thread(2, removed_by_category="moderator", selftext="[removed]")
    deleted = thread(3)
    deleted["_comments"][0]["body"] = "[deleted]"
    deleted_author = thread(4)
    deleted_author["_comments"][0]["_replies"][0]["author"] = "[deleted]"
    bot = thread(5)
    bot["_comments"][0]["author"] = "AutoModerator"
    bot2 = thread(6)
    bot2["_comments"][0]["_replies"][0]["author"] = "helpful_Bot"
    spam = thread(7)
    spam["_comments"][0]["body"] = "Use my promo code SAVE20 for the answer, or DM me for more."
    custom_bot = thread(8)
    custom_bot["_comments"][0]["author"] = "RepostSleuth"
    fine = thread(9)  # no removed_by_category key at all
    assert "removed_by_category" not in fine
    server.add(nsfw, removed, deleted, deleted_author, bot, bot2, spam, custom_bot, fine)
    cfg = config(server, bot_authors=("AutoModerator", "RepostSleuth"))
    batch, _, _ = fetch(server, tmp_path, cfg)
    by_id = {m["response_id"]: m for m in meta(batch)}
    assert by_id["t1_c1"]["drop_reason"] == by_id["t1_r1"]["drop_reason"] == "nsfw"  # the whole thread
    assert by_id["t1_c2"]["drop_reason"] == "removed" and by_id["t1_c2"]["removed_by_category"] == "moderator"
    assert "drop_reason" not in by_id["t1_r2"]  # a removed post does not taint its comments' own pairs
    assert by_id["t1_c3"]["drop_reason"] == "deleted" and by_id["t1_r3"]["drop_reason"] == "deleted"
    assert by_id["t1_r4"]["drop_reason"] == "deleted" and by_id["t1_r4"]["deleted"] is True
    assert by_id["t1_c5"]["drop_reason"] == "bot" and by_id["t1_r6"]["drop_reason"] == "bot"
    assert by_id["t1_c8"]["drop_reason"] == "bot"
    assert by_id["t1_c7"]["drop_reason"] == "spam" and by_id["t1_c7"]["drop_score"] == 2.0
    assert "drop_reason" not in by_id["t1_c9"] and by_id["t1_c9"]["removed_by_category"] is None
    kept, decisions = apply_filters(batch.examples, FilterSettings())
    rules = dict(zip(decisions["example_id"], decisions["rule"]))
    for m, eid in zip(meta(batch), batch.examples["example_id"]):
        assert rules[eid] == (f"source:{m['drop_reason']}" if "drop_reason" in m else None)
    assert {"source:nsfw", "source:removed", "source:deleted", "source:bot", "source:spam"} <= set(decisions["rule"])
    spam_row = decisions.filter(pl.col("rule") == "source:spam").to_dicts()[0]
    assert (spam_row["score"], spam_row["threshold"]) == (2.0, 0.0)
    assert set(kept["source_id"]) >= {"t3_p9/t1_c9", "t1_c9/t1_r9"}


def test_secrets_never_reach_logs_frames_or_state(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.add(thread(1), thread(2))
    server.faults += [Fault(r"^/comments/p1$", "status", status=503), Fault(r"^/comments/p2$", "truncate")]
    cfg = config(server, username="scraper", password=PASSWORD)
    assert SECRET not in repr(cfg) and PASSWORD not in repr(cfg)
    batch, logs, _ = fetch(server, tmp_path, cfg)
    assert server.grants == ["password"] and batch.examples.height == 2
    server.faults.append(Fault(r"/new$", "status", status=503, times=None))
    with pytest.raises(RetriesExhausted) as err:
        fetch(server, tmp_path / "again", cfg)
    state = "".join(p.read_text() for p in (tmp_path / "state").rglob("*") if p.is_file())
    texts = [*logs, caplog.text, str(err.value), repr(err.value.__cause__), state,
             batch.examples.write_json(), batch.quarantine.write_csv()]
    assert caplog.text and state  # something was captured, and none of it holds a secret
    for text in texts:
        assert SECRET not in text and PASSWORD not in text


def test_resource_names_the_missing_variables(tmp_path):
    from corpus_platform.defs.ingest.resources import RedditResource, SubredditConfig
    from corpus_platform.settings import Layout

    resource = RedditResource(client_id="x", subreddits=[SubredditConfig(name="python")])
    with pytest.raises(SourceNotConfigured) as err:
        resource.fetch(DAY, Layout(tmp_path), log=None)
    assert err.value.needs == ["REDDIT_CLIENT_SECRET", "REDDIT_USER_AGENT"]


CHILD = """
import json, sys
from datetime import date
from pathlib import Path
from corpus_platform.sources.policy import BackoffPolicy
from corpus_platform.sources.reddit import RedditConfig, SubredditSpec, fetch_reddit
from corpus_platform.sources.state import PartitionState
a = json.loads(sys.argv[1])
cfg = RedditConfig(client_id="cid", client_secret=a["secret"], user_agent="linux:corpus-tests:1.0 (by u/t)",
                   subreddits=(SubredditSpec("python"),), oauth_url=a["url"], reddit_url=a["url"],
                   requests_per_minute=1e6, page_size=4, timeout=30, backoff=BackoffPolicy(max_retries=0))
fetch_reddit(cfg, date.fromisoformat(a["day"]), PartitionState(Path(a["root"]), "reddit", date.fromisoformat(a["day"])),
             log=lambda m: None)
"""


def test_sigkill_mid_fetch_then_rerun_gives_the_same_rows_without_refetching(tmp_path):
    posts = [thread(i) for i in range(10)]
    reference = FakeReddit(client_id="cid", client_secret=SECRET).start()
    crashed = FakeReddit(client_id="cid", client_secret=SECRET).start()
    try:
        for srv in (reference, crashed):
            srv.add(*json.loads(json.dumps(posts)))
        expected, _, _ = fetch(reference, tmp_path / "ref", config(reference, page_size=4))
        # the 7th thread request hangs; the child is SIGKILLed while waiting for it
        crashed.faults.append(Fault(r"^/comments/", "hang", after=6))
        args = json.dumps({"url": crashed.url, "secret": SECRET, "root": str(tmp_path / "state"), "day": DAY.isoformat()})
        child = subprocess.Popen([sys.executable, "-c", CHILD, args], cwd=REPO,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            assert crashed.hang_reached.wait(60), "the child never reached the 7th thread"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        crashed.faults.clear()
        crashed.release.set()
        spooled = len((tmp_path / "state" / "reddit" / DAY.isoformat() / "items.jsonl").read_text().splitlines())
        assert spooled == 6
        resumed, _, _ = fetch(crashed, tmp_path, config(crashed, page_size=4))
    finally:
        reference.stop()
        crashed.stop()
    assert rows(resumed) == rows(expected) and resumed.examples.height == 20
    ok = crashed.counts(ok_only=True)
    assert all(ok[f"GET /comments/p{i}"] == 1 for i in range(10))  # spooled threads were not asked again
    pages = [q.get("after", [None])[0] for m, p, q, s in crashed.log if p == "/r/python/new" and s == 200]
    assert len(pages) == len(set(pages))  # nor were listing pages


@pytest.mark.realdata
def test_replays_real_goemotions_comments_intact(server, tmp_path):
    path = DATA / "goemotions-reddit" / "dev.tsv.gz"
    if not path.exists():
        pytest.skip("../shared/data not present: the GoEmotions replay needs the shared corpus beside the repo")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        records = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][:150]
    texts = {cid: text for text, _, cid in records}
    prompts = {}
    for n in range(0, len(records), 5):  # per post: selftext, two top comments, a reply to each
        (s, _, sid), (c1, _, i1), (c2, _, i2), (r1, _, j1), (r2, _, j2) = records[n:n + 5]
        created = T0 + 100 * n
        prompts[sid] = f"Thread {n // 5}\n\n{s}" if s.strip() else f"Thread {n // 5}"
        server.add(post(sid, "goemotions", title=f"Thread {n // 5}", selftext=s, created_utc=created, author=f"op{n}",
                        comments=[comment(i1, c1, author=f"u{n}a", score=10, created_utc=created + 5,
                                          replies=[comment(j1, r1, author=f"u{n}c", score=3, created_utc=created + 9)]),
                                  comment(i2, c2, author=f"u{n}b", score=4, created_utc=created + 6,
                                          replies=[comment(j2, r2, author=f"u{n}d", score=1, created_utc=created + 8)])]))
    batch, _, _ = fetch(server, tmp_path, config(server, subreddits=(SubredditSpec("goemotions", limit=1000),), page_size=100))
    assert batch.quarantine.height == 0 and batch.examples.height == 3 * len(records) // 5
    for ex in batch.examples.to_dicts():
        m = json.loads(ex["metadata"])
        reply_id = m["response_id"].removeprefix("t1_")
        assert ex["messages"][1]["content"] == texts[reply_id]  # the real comment, byte for byte
        if m["kind"] == "comment_reply":
            assert ex["messages"][0]["content"] == texts[m["prompt_id"].removeprefix("t1_")]
        else:
            assert ex["messages"][0]["content"] == prompts[m["thread_id"].removeprefix("t3_")]
        assert m["subreddit"] == "goemotions" and m["author"].startswith("u") and m["thread_id"].startswith("t3_")
