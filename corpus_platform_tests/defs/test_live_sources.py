"""Every live source materializes a partition through Dagster (the curate_partition job, real
resources) against a local server that speaks its API's wire format, with sentinel secrets that must
never surface in the event log, metadata, the warehouse or captured output."""

import json
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest

from corpus_platform.definitions import make_definitions
from corpus_platform.defs.ingest.resources import (
    RedditResource, SubredditConfig, SyntheticResource, TwitterResource, YouTubeResource,
)
from corpus_platform.defs.partitions import partition_key
from corpus_platform.demo.run import QUIET
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect
from corpus_platform_tests.sources.fakes.openai_server import FakeOpenAI, openai_server  # noqa: F401 - fixture
from corpus_platform_tests.sources.fakes.apify_server import FakeApify
from corpus_platform_tests.sources.fakes.reddit_server import FakeReddit
from corpus_platform_tests.sources.fakes.youtube_server import FakeYouTube, Video, youtube_server  # noqa: F401
from corpus_platform_tests.sources.test_reddit import thread
from corpus_platform_tests.sources.test_twitter import legacy, modern

SECRET = "SENTINEL-SECRET-123"
DAY = date(2026, 1, 2)
NOON = datetime(2026, 1, 2, 12, tzinfo=timezone.utc)


def materialize(home, source, resources):
    defs = make_definitions(home, sources=resources)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(DAY, source), instance=instance, run_config=QUIET, raise_on_error=False)
        events = [str(e) for e in instance.all_logs(result.run_id)]
        mats = instance.fetch_materializations(dg.AssetKey("raw_examples"), limit=1).records
        meta = {k: v.value for k, v in mats[0].asset_materialization.metadata.items()} if mats else {}
    return result, events, meta


def assert_no_secret(home, events, meta, capsys):
    assert not any(SECRET in e for e in events)
    assert SECRET not in json.dumps(meta, default=str)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert not any(SECRET.encode() in p.read_bytes() for p in home.rglob("*") if p.is_file())


def rows(home, source):
    with connect(Layout(home).warehouse) as con:
        return dict(con.execute("SELECT 'raw', count(*) FROM corpus.raw_examples WHERE source = ? UNION ALL "
                                "SELECT 'scored', count(*) FROM corpus.scored_examples WHERE source = ?",
                                [source, source]).fetchall())


def test_synthetic_partition_through_dagster(tmp_path, openai_server: FakeOpenAI, capsys):
    resource = SyntheticResource(api_key=SECRET, base_url=f"{openai_server.base_url}/v1", model="gpt-test",
                                 templates=["Explain {topic} to a beginner in two sentences."],
                                 items_json=json.dumps({"topic": ["recursion", "hash maps", "unit tests"]}),
                                 price_per_1k_prompt=0.15, price_per_1k_completion=0.6, requests_per_minute=100_000)
    result, events, meta = materialize(tmp_path, "synthetic", {"synthetic": resource})
    assert result.success, events[-5:]
    assert rows(tmp_path, "synthetic")["raw"] == 3 and openai_server.count == 3
    assert meta["generated"] == 3 and meta["cost_usd"] > 0
    again, _, meta2 = materialize(tmp_path, "synthetic", {"synthetic": resource})  # never pays twice
    assert again.success and openai_server.count == 3 and meta2["reused"] == 3
    assert_no_secret(tmp_path, events, meta, capsys)


def test_youtube_partition_through_dagster(tmp_path, youtube_server: FakeYouTube, capsys):
    for i in range(4):
        youtube_server.add(Video(f"vid{i}", f"How to use Python lists, part {i}", f"{DAY}T1{i}:00:00Z", ("python lists",),
                                 description="A short lesson.",
                                 transcripts={("manual", "en"): [f"Lists hold items in order, lesson {i}.",
                                                                 "You can append, insert and remove items."]}))
    resource = YouTubeResource(api_key=SECRET, queries=["python lists"], discovery_url=youtube_server.discovery_url,
                               transcript_base_url=youtube_server.base_url)
    result, events, meta = materialize(tmp_path, "youtube", {"youtube": resource})
    assert result.success, events[-5:]
    assert rows(tmp_path, "youtube")["raw"] == 4
    assert meta["quota_units_used_today"] >= 101  # one search.list + one videos.list
    assert_no_secret(tmp_path, events, meta, capsys)


def test_reddit_partition_through_dagster(tmp_path, capsys):
    server = FakeReddit(client_id="cid", client_secret=SECRET).start()
    try:
        server.add(*(thread(i, created=NOON.timestamp() + 60 * i) for i in range(3)))
        resource = RedditResource(client_id="cid", client_secret=SECRET, user_agent="linux:corpus-tests:1.0 (by u/t)",
                                  subreddits=[SubredditConfig(name="python", limit=10)], oauth_url=server.url,
                                  reddit_url=server.url, requests_per_minute=100_000)
        result, events, meta = materialize(tmp_path, "reddit", {"reddit": resource})
    finally:
        server.stop()
    assert result.success, events[-5:]
    assert rows(tmp_path, "reddit")["raw"] == 6  # (post -> top comment) and (comment -> reply) per thread
    assert_no_secret(tmp_path, events, meta, capsys)


def test_twitter_partition_through_dagster(tmp_path, capsys):
    server = FakeApify(token=SECRET).start()
    try:
        for n in range(1, 4):  # ids start at 100: the fake's helpers treat id 0 as "no conversation"
            root = legacy(n * 100, f"Question {n}: what is a good habit for learning to program well?", NOON + timedelta(minutes=n))
            server.search_results.append(root)
            server.conversations[root["id_str"]] = [
                modern(n * 100 + 1, f"@alice Answer to question {n}: write a little code every single day.",
                       NOON + timedelta(minutes=n, hours=1), user=f"u{n}", reply_to=n * 100, conversation=n * 100)]
        resource = TwitterResource(api_token=SECRET, actor_id="apidojo/tweet-scraper", search_terms=["learn to program"],
                                   api_url=server.url)
        result, events, meta = materialize(tmp_path, "twitter", {"twitter": resource})
    finally:
        server.stop()
    assert result.success, events[-5:]
    assert rows(tmp_path, "twitter")["raw"] == 3
    assert_no_secret(tmp_path, events, meta, capsys)


@pytest.mark.parametrize("source,needs", [("reddit", "REDDIT_CLIENT_SECRET"), ("youtube", "YOUTUBE_API_KEY"),
                                          ("twitter", "APIFY_API_TOKEN"), ("synthetic", "OPENAI_API_KEY")])
def test_unconfigured_live_source_fails_naming_its_env_vars(tmp_path, source, needs, monkeypatch):
    for var in ["REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USER_AGENT", "YOUTUBE_API_KEY", "APIFY_API_TOKEN",
                "APIFY_TWEET_ACTOR", "OPENAI_API_KEY", "OPENAI_BASE_URL"]:
        monkeypatch.delenv(var, raising=False)  # the test's environment, not the code under test
    result, events, _ = materialize(tmp_path, source, None)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert needs in str(failure.event_specific_data.error) or needs in (failure.event_specific_data.error.message or "")
