"""The LLM judge against the local OpenAI-compatible fake, through the real openai client.

The fake counts requests, so "a cached hash is never paid twice" is checked on the wire; sleeps
(backoff, Retry-After) are recorded, never slept.
"""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest

from corpus_platform.curation.judge import (
    JudgeError, JudgeSettings, JudgeUnavailable, build_prompt, judge_client, judge_frame, parse_judgment, score_answer,
)
from corpus_platform.warehouse import migrate
from corpus_platform_tests.sources.fakes.openai_server import (  # noqa: F401 - fixture
    LENGTH, NO_USAGE, Error, FakeOpenAI, openai_server,
)

SECRET = "SENTINEL-JUDGE-KEY-456"
DIMS = ("helpfulness", "correctness", "coherence", "safety")


def judge_reply(prompt: str) -> str:
    """Scores that depend on the judged answer, so each conversation gets its own verdict."""
    answer = prompt.split("THE ANSWER TO RATE]\n", 1)[1].split("\n\n---", 1)[0]
    base = 9 if "great" in answer else 4
    return json.dumps({"scores": {"helpfulness": base, "correctness": base - 1, "coherence": base, "safety": 10},
                       "rationale": f"judged {answer[:20]}"})


@pytest.fixture
def judge_server(openai_server: FakeOpenAI) -> FakeOpenAI:
    openai_server.responder = judge_reply
    return openai_server


@pytest.fixture
def con():
    c = duckdb.connect()
    migrate(c)
    yield c
    c.close()


def settings(server: FakeOpenAI, **kw) -> JudgeSettings:
    base = dict(base_url=f"{server.base_url}/v1", model="judge-test", api_key=SECRET, price_input_per_mtok=150.0,
                price_output_per_mtok=600.0, max_concurrency=3, timeout=5, max_retries=3)
    return JudgeSettings(**{**base, **kw})


def conv(answer: str, question: str = "How do I sort a list?") -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def frame(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"example_id": [r[0] for r in rows], "content_hash": [r[1] for r in rows],
                         "messages": [conv(r[2]) for r in rows]})


def test_score_parsed_from_reply(judge_server: FakeOpenAI):
    s = settings(judge_server)
    result = score_answer(judge_client(s), s, conv("A great answer: use sorted(xs)."))
    assert result.dimensions == {"helpfulness": 9.0, "correctness": 8.0, "coherence": 9.0, "safety": 10.0}
    assert result.score == 9.0 and result.rationale.startswith("judged A great")
    body = judge_server.requests[0][1]
    assert body["model"] == "judge-test" and body["temperature"] == 0.0
    assert body["response_format"] == {"type": "json_object"}
    assert "LAST assistant answer" in body["messages"][0]["content"]
    assert all(d in body["messages"][0]["content"] for d in DIMS)


def test_judges_the_last_assistant_answer_only():
    s = JudgeSettings(api_key="x")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q1"},
                {"role": "assistant", "content": "first answer"}, {"role": "user", "content": "q2"},
                {"role": "assistant", "content": "second answer"}]
    user = build_prompt(s, messages)[1]["content"]
    assert "[assistant: THE ANSWER TO RATE]\nsecond answer" in user
    assert "[assistant]\nfirst answer" in user and "[system]\nBe brief." in user
    with pytest.raises(JudgeError, match="no assistant answer"):
        build_prompt(s, [{"role": "user", "content": "only a question"}])


@pytest.mark.parametrize("reply", [
    '{"scores": {"helpfulness": 8, "correctness": 7, "coherence": 9, "safety": 10}, "rationale": "fine"}',
    'Here you go:\n```json\n{"scores": {"helpfulness": 8, "correctness": 7, "coherence": 9, "safety": 10}, '
    '"rationale": "fine"}\n```',
    'My verdict is {"scores": {"Helpfulness": "8", "CORRECTNESS": 7.0, "coherence": 9, "safety": 10}, '
    '"rationale": "fine"} -- hope that helps',
    '<think>weigh {things}</think>{"helpfulness": 8, "correctness": 7, "coherence": 9, "safety": 10, "rationale": "fine"}',
])
def test_parse_is_robust(reply):
    dims, rationale = parse_judgment(reply, DIMS)
    assert dims == {"helpfulness": 8.0, "correctness": 7.0, "coherence": 9.0, "safety": 10.0} and rationale == "fine"


@pytest.mark.parametrize("reply, reason", [
    ("I think it is pretty good, 8/10.", "no JSON object"),
    ('{"scores": {"helpfulness": 8, "correctness": 7, "coherence": 9}}', "no numeric score for 'safety'"),
    ('{"scores": {"helpfulness": 0, "correctness": 7, "coherence": 9, "safety": 10}}', "outside 1-10"),
    ('{"scores": {"helpfulness": "good", "correctness": 7, "coherence": 9, "safety": 10}}', "no numeric score"),
    ("", "no content"),
])
def test_unparseable_reply_says_why(reply, reason):
    with pytest.raises(ValueError, match=reason):
        parse_judgment(reply, DIMS)


def test_frame_scores_and_second_run_is_all_cache(judge_server: FakeOpenAI, con):
    s = settings(judge_server)
    df = frame([("e1", "h1", "A great answer."), ("e2", "h2", "meh"), ("e3", "h3", "Another great one.")])
    out, stats = judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert out["example_id"].to_list() == ["e1", "e2", "e3"]
    assert out["judge_status"].to_list() == ["ok"] * 3
    assert out["judged_score"].to_list() == [9.0, 5.25, 9.0]
    assert json.loads(out["judge_dimensions"][1]) == {"helpfulness": 4, "correctness": 3, "coherence": 4, "safety": 10}
    assert stats["cached"] == 0 and stats["called"] == 3 and stats["errors"] == 0 and judge_server.count == 3
    assert con.execute("SELECT count(*) FROM corpus.judgments WHERE status = 'ok'").fetchone()[0] == 3

    again, stats2 = judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert judge_server.count == 3  # zero HTTP requests on the rerun
    assert stats2["cached"] == 3 and stats2["called"] == 0 and stats2["cost_usd_this_run"] == 0.0
    assert stats2["cost_usd_total"] == pytest.approx(stats["cost_usd_total"]) and stats2["cost_usd_total"] > 0
    assert again.select("judged_score", "judge_dimensions", "judge_status").equals(
        out.select("judged_score", "judge_dimensions", "judge_status"))

    # a new prompt version (or rubric) is a new cache key: judged afresh
    judge_frame(con, df, settings(judge_server, prompt_version="v2"), judge_client(s), sleep=lambda _: None)
    assert judge_server.count == 6


def test_duplicate_hashes_are_judged_once(judge_server: FakeOpenAI, con):
    s = settings(judge_server)
    df = frame([("e1", "same", "A great answer."), ("e2", "same", "A great answer."), ("e3", "other", "meh"),
                ("e4", "same", "A great answer.")])
    out, stats = judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert judge_server.count == 2 and stats["called"] == 2 and stats["distinct_hashes"] == 2
    assert out["judged_score"].to_list() == [9.0, 9.0, 5.25, 9.0]


def test_429_with_retry_after_then_success(judge_server: FakeOpenAI, con):
    s = settings(judge_server, max_concurrency=1)
    judge_server.plan(Error(429, retry_after="7"), Error(503))
    sleeps: list[float] = []
    out, stats = judge_frame(con, frame([("e1", "h1", "A great answer.")]), s, judge_client(s), sleep=sleeps.append)
    assert out["judge_status"].to_list() == ["ok"] and out["judged_score"].to_list() == [9.0]
    assert sleeps[0] == 7.0 and len(sleeps) == 2  # Retry-After honoured, then backoff for the 503
    assert judge_server.count == 3 and stats["requests"] == 3 and stats["retries"] == 2 and stats["called"] == 1


def test_malformed_reply_is_an_error_with_reason_and_retried_next_run(judge_server: FakeOpenAI, con):
    s = settings(judge_server)
    judge_server.content_for["broken"] = "I would rate this answer highly, about an 8."
    df = frame([("e1", "h1", "A great answer."), ("e2", "h2", "a broken answer")])
    out, stats = judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert out["judge_status"].to_list() == ["ok", "error"]
    assert out["judged_score"].to_list() == [9.0, None] and out["judge_dimensions"][1] is None
    assert stats["errors"] == 1 and stats["judged"] == 1
    status, error, score, attempts, cost = con.execute(
        "SELECT status, error, score, attempts, cost_usd FROM corpus.judgments WHERE content_hash = 'h2'").fetchone()
    assert status == "error" and "no JSON object" in error and score is None and attempts == 1
    assert cost > 0  # the unusable reply was still paid for

    del judge_server.content_for["broken"]  # the model behaves now
    out2, stats2 = judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert judge_server.count == 3  # only the error was asked again
    assert stats2["cached"] == 1 and stats2["called"] == 1 and stats2["errors"] == 0
    assert out2["judge_status"].to_list() == ["ok", "ok"] and out2["judged_score"].to_list() == [9.0, 5.25]
    rows = con.execute("SELECT status, error, attempts, cost_usd FROM corpus.judgments WHERE content_hash = 'h2'").fetchall()
    assert len(rows) == 1 and rows[0][0] == "ok" and rows[0][1] is None and rows[0][2] == 2 and rows[0][3] > cost


def test_reply_cut_at_max_tokens_is_an_error(judge_server: FakeOpenAI, con):
    s = settings(judge_server)
    judge_server.plan(LENGTH)
    out, _ = judge_frame(con, frame([("e1", "h1", "A great answer.")]), s, judge_client(s), sleep=lambda _: None)
    assert out["judge_status"].to_list() == ["error"]
    assert "finish_reason=length" in con.execute("SELECT error FROM corpus.judgments").fetchone()[0]


def test_cost_from_usage_and_prices(judge_server: FakeOpenAI, con):
    s = settings(judge_server)
    client = judge_client(s)
    result = score_answer(client, s, conv("A great answer."))
    body = judge_server.requests[0][1]
    prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])  # how the fake counts
    assert result.prompt_tokens == prompt_tokens and result.completion_tokens > 0
    assert result.cost_usd == pytest.approx((prompt_tokens * 150.0 + result.completion_tokens * 600.0) / 1e6)

    df = frame([("e1", "h1", "A great answer."), ("e2", "h2", "meh")])
    _, stats = judge_frame(con, df, s, client, sleep=lambda _: None)
    pt, ct, cost = con.execute("SELECT sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) "
                               "FROM corpus.judgments").fetchone()
    assert stats["prompt_tokens_this_run"] == pt and stats["completion_tokens_this_run"] == ct
    assert stats["cost_usd_this_run"] == pytest.approx((pt * 150 + ct * 600) / 1e6) == pytest.approx(cost)
    assert stats["cost_usd_total"] == pytest.approx(cost)


def test_missing_usage_is_counted_not_guessed(judge_server: FakeOpenAI, con):
    s = settings(judge_server)
    judge_server.plan(NO_USAGE)
    out, stats = judge_frame(con, frame([("e1", "h1", "A great answer.")]), s, judge_client(s), sleep=lambda _: None)
    assert out["judge_status"].to_list() == ["ok"] and stats["without_usage"] == 1 and stats["cost_usd_this_run"] == 0


def test_api_key_is_never_stored(judge_server: FakeOpenAI, con):
    s = settings(judge_server, max_retries=0)
    judge_server.content_for["broken"] = f"not json, and here is {SECRET} echoed by a misbehaving server"
    judge_server.plan(Error(500))
    df = frame([("e1", "h1", "A great answer."), ("e2", "h2", "a broken answer"), ("e3", "h3", "meh")])
    judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert any(SECRET in a for a in judge_server.auth_seen)  # it was sent, as a bearer token only
    dump = json.dumps(con.execute("SELECT * FROM corpus.judgments").fetchall(), default=str)
    assert con.execute("SELECT count(*) FROM corpus.judgments WHERE status = 'error'").fetchone()[0] >= 1
    assert SECRET not in dump and SECRET not in repr(s)


def test_bad_key_stops_the_run_and_keeps_what_was_paid(judge_server: FakeOpenAI, con):
    s = settings(judge_server, max_concurrency=1)
    judge_server.plan(None, Error(401))
    df = frame([("e1", "h1", "A great answer."), ("e2", "h2", "meh"), ("e3", "h3", "more")])
    with pytest.raises(JudgeUnavailable, match="HTTP 401") as info:
        judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert SECRET not in str(info.value)
    assert judge_server.count == 2  # the third conversation was never sent
    assert con.execute("SELECT content_hash, status FROM corpus.judgments").fetchall() == [("h1", "ok")]


def test_a_dead_endpoint_stops_after_consecutive_failures(judge_server: FakeOpenAI, con):
    s = settings(judge_server, max_concurrency=1, max_retries=1, max_consecutive_failures=2)
    judge_server.plan(*[Error(503)] * 20)
    df = frame([(f"e{i}", f"h{i}", "meh") for i in range(6)])
    with pytest.raises(JudgeUnavailable, match="2 conversations in a row"):
        judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert judge_server.count == 4  # 2 conversations x 2 attempts, then it stopped
    assert con.execute("SELECT count(*) FROM corpus.judgments WHERE status = 'error'").fetchone()[0] == 2


def test_empty_frame_makes_no_calls(judge_server: FakeOpenAI, con):
    s = settings(judge_server)
    empty = pl.DataFrame(schema={"example_id": pl.Utf8, "content_hash": pl.Utf8,
                                 "messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))})
    out, stats = judge_frame(con, empty, s, judge_client(s))
    assert out.height == 0 and {"judged_score", "judge_dimensions", "judge_status"} <= set(out.columns)
    assert judge_server.count == 0 and stats["called"] == 0 and stats["cost_usd_total"] == 0.0


def test_concurrent_calls_store_every_judgment(judge_server: FakeOpenAI, con):
    s = settings(judge_server, max_concurrency=4, flush_every=3)
    df = frame([(f"e{i}", f"h{i}", "A great answer." if i % 2 else "meh") for i in range(25)])
    out, stats = judge_frame(con, df, s, judge_client(s), sleep=lambda _: None)
    assert judge_server.count == 25 and stats["called"] == 25 and out["judge_status"].to_list() == ["ok"] * 25
    assert con.execute("SELECT count(DISTINCT content_hash) FROM corpus.judgments").fetchone()[0] == 25
    assert out["judged_score"].to_list() == [9.0 if i % 2 else 5.25 for i in range(25)]
