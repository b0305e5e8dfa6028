"""The local OpenAI-compatible server, serving the tiny test model, driven by the real `openai` client:
chat completions with `usage`, the models list, OpenAI-shaped errors, an optional key, and a
distillation pass whose two teachers are this server under two system prompts."""

from __future__ import annotations

import json

import openai
import pytest

from corpus_platform.serving import serve_in_thread
from corpus_platform.serving.openai_server import LocalModel

NAME = "tiny-test-model"


@pytest.fixture(scope="module")
def local_model(tiny_model_dir):
    return LocalModel.load(tiny_model_dir, NAME)


@pytest.fixture(scope="module")
def server(local_model):
    with serve_in_thread(local_model) as handle:
        yield handle


def client(server, key="anything"):
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=60)


def test_it_listens_on_loopback_and_lists_its_model(server):
    assert server.host == "127.0.0.1" and server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert [m.id for m in client(server).models.list().data] == [NAME]


def test_chat_completion_reports_usage_in_tokens_of_the_chat_template(server, local_model):
    messages = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello!"}]
    r = client(server).chat.completions.create(model=NAME, messages=messages, max_tokens=6, temperature=0)
    rendered = local_model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected_prompt = len(local_model.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert r.object == "chat.completion" and r.model == NAME and r.id.startswith("chatcmpl-")
    assert r.usage.prompt_tokens == expected_prompt
    assert 1 <= r.usage.completion_tokens <= 6 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].message.role == "assistant" and isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 6
    # Greedy at temperature 0 and seeded sampling are both repeatable.
    again = client(server).chat.completions.create(model=NAME, messages=messages, max_tokens=6, temperature=0)
    assert again.choices[0].message.content == r.choices[0].message.content
    s1, s2 = (client(server).chat.completions.create(model=NAME, messages=messages, max_tokens=6, temperature=1.0,
                                                     seed=7).choices[0].message.content for _ in range(2))
    assert s1 == s2


def test_errors_come_back_in_openais_shape(server):
    c = client(server)
    msg = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="gpt-4o", messages=msg)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="stream"):
        c.chat.completions.create(model=NAME, messages=msg, stream=True)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        c.chat.completions.create(model=NAME, messages=msg, max_tokens=0)
    with pytest.raises(openai.BadRequestError, match="maximum context length") as e:
        c.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "word " * 2000}], max_tokens=5)
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="messages"):
        c.chat.completions.create(model=NAME, messages=[])


def test_an_api_key_can_be_required_and_other_hosts_need_one(local_model):
    with serve_in_thread(local_model, api_key="s3cret") as handle:
        with pytest.raises(openai.AuthenticationError):
            client(handle, key="wrong").models.list()
        assert client(handle, key="s3cret").chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=2).usage.completion_tokens >= 1
    with pytest.raises(ValueError, match="refusing to serve on 0.0.0.0 without an API key"):
        serve_in_thread(local_model, host="0.0.0.0")


def test_distillation_with_two_teachers_on_the_local_server(server, tmp_path):
    """Both teachers are the served model (two system prompts); the judge is a scripted local server."""
    from corpus_platform.curation.judge import JudgeSettings
    from corpus_platform.distillation.distill import DistillSettings, distill_partition
    from corpus_platform.distillation.teachers import Teacher
    from corpus_platform.settings import Layout
    from corpus_platform.warehouse import connect
    from corpus_platform_tests.distillation.conftest import DAY, SOURCE, seed_scored
    from corpus_platform_tests.sources.fakes.openai_server import FakeOpenAI

    judge = FakeOpenAI(lambda prompt: json.dumps({"scores": {"helpfulness": 8, "correctness": 8, "coherence": 8,
                                                             "safety": 9}, "rationale": "fine"}))
    try:
        home = Layout(tmp_path)
        seed_scored(home.warehouse, {"a": "Write a Python function that adds two numbers.", "b": "Say hello to Paris."})
        teachers = (Teacher(name="terse", base_url=server.base_url, model=NAME, system_prompt="Answer briefly.",
                            temperature=0.0, max_tokens=8),
                    Teacher(name="warm", base_url=server.base_url, model=NAME, system_prompt="Answer kindly.",
                            temperature=0.7, max_tokens=8))
        settings = DistillSettings(teachers=teachers, routing={"code": ["terse"], "*": ["terse", "warm"]},
                                   judge=JudgeSettings(base_url=f"{judge.base_url}/v1", model="judge"),
                                   keep_truncated=True, concurrency=2, batch_dir=tmp_path / "b", ledger=tmp_path / "l.jsonl")
        before = server.requests
        with connect(home.warehouse) as con:
            report = distill_partition(con, DAY, SOURCE, settings)
            rows = con.execute("SELECT teacher, status, prompt_tokens, completion_tokens FROM corpus.teacher_answers").fetchall()
        assert server.requests - before == 3 and report.asked == 3
        assert sorted(t for t, *_ in rows) == ["terse", "terse", "warm"]
        assert all(s == "ok" and p > 0 and 1 <= c <= 8 for _, s, p, c in rows)
        assert report.kept == 2 and judge.count == 3
    finally:
        judge.close()


JUDGMENT = {"type": "object", "required": ["scores", "rationale", "verdict", "ok"], "additionalProperties": False,
            "properties": {"scores": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 10},
                                                                       "b": {"type": "integer", "minimum": 3, "maximum": 250}}},
                           "rationale": {"type": "string", "maxLength": 40},
                           "verdict": {"enum": ["keep", "drop"]}, "ok": {"type": "boolean"}}}


def test_json_schema_response_format_is_enforced_even_on_a_tiny_random_model(server):
    c = client(server)
    for seed, temperature in [(None, 0.0), (1, 1.0), (2, 1.0)]:
        r = c.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Rate this."}], max_tokens=200,
                                      temperature=temperature, seed=seed,
                                      response_format={"type": "json_schema",
                                                       "json_schema": {"name": "j", "strict": True, "schema": JUDGMENT}})
        doc = json.loads(r.choices[0].message.content)
        assert list(doc) == ["scores", "rationale", "verdict", "ok"] and r.choices[0].finish_reason == "stop"
        assert 1 <= doc["scores"]["a"] <= 10 and isinstance(doc["scores"]["a"], int)
        assert 3 <= doc["scores"]["b"] <= 250 and isinstance(doc["scores"]["b"], int)
        assert isinstance(doc["rationale"], str) and len(doc["rationale"]) <= 40
        assert doc["verdict"] in ("keep", "drop") and isinstance(doc["ok"], bool)
        assert r.usage.completion_tokens >= 10
    with pytest.raises(openai.BadRequestError, match="'items' is not supported"):
        c.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "x"}], response_format={
            "type": "json_schema", "json_schema": {"name": "j", "schema": {"type": "array", "items": {"type": "string"}}}})
    cut = c.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "x"}], max_tokens=5, response_format={
        "type": "json_schema", "json_schema": {"name": "j", "schema": JUDGMENT}})
    assert cut.choices[0].finish_reason == "length"


def test_integer_prefixes_only_extend_to_values_in_range():
    from corpus_platform.serving.structured import _can_complete

    assert [d for d in "0123456789" if _can_complete(d, 1, 10)] == list("123456789")
    assert _can_complete("10", 1, 10) and not _can_complete("11", 1, 10) and not _can_complete("01", 0, 10)
    assert [d for d in "0123456789" if _can_complete(d, 3, 250)] == list("123456789")
    assert _can_complete("25", 3, 250) and _can_complete("250", 3, 250) and _can_complete("26", 3, 250)
    assert not _can_complete("251", 3, 250) and _can_complete("0", 0, 5)


def test_the_local_model_can_judge_when_the_judgment_schema_is_enforced(server, tmp_path):
    """judge_json_schema: the curation judge's own prompt and parser, with the verdict's schema enforced by the
    server, so even the tiny random model returns parseable 1-10 scores (worthless ones, but in shape)."""
    from corpus_platform.curation.judge import JudgeSettings, judge_client
    from corpus_platform.distillation.distill import DistillSettings, distill_partition
    from corpus_platform.distillation.structured_judge import SchemaJudgeClient
    from corpus_platform.distillation.teachers import Teacher
    from corpus_platform.settings import Layout
    from corpus_platform.warehouse import connect
    from corpus_platform_tests.distillation.conftest import DAY, SOURCE, seed_scored

    home = Layout(tmp_path)
    seed_scored(home.warehouse, {"a": "Say hello to Paris."})
    judge = JudgeSettings(base_url=server.base_url, model=NAME, dimensions=("helpfulness", "correctness"), max_tokens=160,
                          threshold=1.0)
    settings = DistillSettings(teachers=(Teacher(name="t", base_url=server.base_url, model=NAME, temperature=0.0,
                                                 max_tokens=8),),
                               routing={"*": ["t"]}, judge=judge, judge_json_schema=True, keep_truncated=True,
                               batch_dir=tmp_path / "b", ledger=tmp_path / "l.jsonl")
    with connect(home.warehouse) as con:
        report = distill_partition(con, DAY, SOURCE, settings)
        score, = con.execute("SELECT judged_score FROM corpus.teacher_answers").fetchone()
    assert report.judged == 1 and report.judge_errors == 0 and 1.0 <= score <= 10.0 and report.kept == 1
    # Without the schema the same model's free text is no verdict: an error with its reason, not a silent score.
    from corpus_platform.curation.judge import JudgeError, score_answer

    plain = JudgeSettings(base_url=server.base_url, model=NAME, dimensions=("helpfulness",), max_tokens=16,
                          response_format=None, max_retries=0)
    with pytest.raises(JudgeError):
        score_answer(judge_client(plain), plain, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    shaped = score_answer(SchemaJudgeClient(judge_client(plain), plain.dimensions),
                          JudgeSettings(base_url=server.base_url, model=NAME, dimensions=("helpfulness",), max_tokens=160),
                          [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    assert 1 <= shaped.score <= 10 and shaped.completion_tokens > 0
