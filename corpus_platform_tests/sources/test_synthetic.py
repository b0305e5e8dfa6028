"""The synthetic source against a local OpenAI-compatible server, through the real openai client.

Sleeps are recorded, never slept; the server counts requests, so "a rerun makes zero calls" is
checked on the wire.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import traceback
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from corpus_platform.sources.base import SourceNotConfigured
from corpus_platform.sources.policy import BackoffPolicy, RetriesExhausted
from corpus_platform.sources.state import PartitionState
from corpus_platform.sources.synthetic import SyntheticConfig, fetch_synthetic, jobs, parse_pair
from corpus_platform_tests.sources.fakes.openai_server import (  # noqa: F401 - fixture
    BLOCK, INSUFFICIENT_QUOTA, LENGTH, NO_CHOICES, NO_USAGE, TRUNCATE, Delay, Error, FakeOpenAI, openai_server,
)

SECRET = "SENTINEL-SECRET-123"
REPO = Path(__file__).resolve().parents[2]
TEMPLATES = ["Write a {level} question about {topic}.", "Give a tip about {topic}."]
ITEMS = {"topic": ["apples", "bananas", "cherries"], "level": ["beginner", "expert"]}  # 3*2 + 3 = 9 jobs


def settings(server: FakeOpenAI, **overrides) -> SyntheticConfig:
    kw = dict(api_key=SECRET, base_url=f"{server.base_url}/v1", model="gpt-test", templates=TEMPLATES, items=ITEMS,
              temperature=0.2, max_tokens=300, price_per_1k_prompt={"gpt-test": 0.15},
              price_per_1k_completion={"gpt-test": 0.6}, requests_per_minute=600_000, timeout_s=5,
              backoff=BackoffPolicy(max_retries=3, base_delay=0.25, jitter=0.0))
    kw.update(overrides)
    return SyntheticConfig(**kw)


@pytest.fixture
def run(tmp_path: Path, day: date):
    def _run(config: SyntheticConfig, log=None, root: Path | None = None):
        return fetch_synthetic(config, day, PartitionState(root or tmp_path / "state", "synthetic", day), log=log,
                               sleep=_run.sleeps.append)

    _run.sleeps = []
    return _run


def test_structured_output_parsed_into_examples(openai_server: FakeOpenAI, run):
    batch, report = run(settings(openai_server))
    assert batch.examples.height == 9 and batch.quarantine.height == 0 and openai_server.count == 9
    row = batch.examples.filter(batch.examples["metadata"].str.contains('"apples"')).to_dicts()[0]
    meta = json.loads(row["metadata"])
    prompt = "Write a beginner question about apples."
    assert row["messages"] == [{"role": "user", "content": f"Explain {prompt}"},
                               {"role": "assistant", "content": f"Here is a clear explanation of {prompt}."}]
    assert meta["item"] == {"level": "beginner", "topic": "apples"} and meta["template_index"] == 0
    assert meta["synthetic"] is True and meta["generator"] == "gpt-test" and meta["completion_id"].startswith("chatcmpl-")
    body = openai_server.requests[0][1]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["instruction", "response"]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("gpt-test", 0.2, 300)
    assert openai_server.auth_seen == {f"Bearer {SECRET}"}
    assert report.generated == 9 and report.reused == 0 and report.requests == 9


def test_malformed_output_is_quarantined_with_reasons(openai_server: FakeOpenAI, run):
    openai_server.content_for.update({
        "bananas.": "Sure! Here you go: not json",
        "expert question about cherries": json.dumps({"instruction": "only half"}),
        "tip about cherries": '["a", "list"]',
        "beginner question about cherries": '```json\n{"instruction": "I", "response": "fenced is fine"}\n```',
    })
    openai_server.plan(LENGTH, NO_CHOICES)  # the first two jobs (apples): cut at max_tokens, no choices
    batch, _ = run(settings(openai_server))
    reasons = sorted(batch.quarantine["reason"])
    assert reasons == sorted([
        "model output cut at max_tokens (finish_reason=length)", "response has no choices[0].message",
        "model output is not JSON (Expecting value)", "model output is not JSON (Expecting value)",
        "model output lacks a non-empty 'response' string", "model output is not a JSON object"])
    assert batch.examples.height == 3
    fenced = [m for m in batch.examples["messages"].to_list() if m[1]["content"] == "fenced is fine"]
    assert len(fenced) == 1
    assert all(f.startswith("synthetic:chat.completions ") for f in batch.quarantine["file"])
    again, report = run(settings(openai_server))  # malformed output was paid for: spooled, not regenerated
    assert report.requests == 0 and sorted(again.quarantine["reason"]) == reasons


def test_parse_pair_rejects_empty_fields():
    assert parse_pair('{"instruction": " a ", "response": "b"}', "stop") == ("a", "b")
    for bad, why in [(None, "no content"), ('{"instruction": "", "response": "b"}', "'instruction'")]:
        with pytest.raises(ValueError, match=why):
            parse_pair(bad, "stop")


def test_cost_report_is_exact_and_rerun_makes_zero_calls(openai_server: FakeOpenAI, run, tmp_path: Path):
    config = settings(openai_server)
    first, report = run(config)
    # The fake's usage is deterministic: recompute it from the request bodies and the answers.
    prompt_tokens = sum(sum(len(m["content"].split()) for m in b["messages"]) for _, b in openai_server.requests)
    completion_tokens = sum(json.loads(m)["completion_tokens"] for m in first.examples["metadata"])
    expected = (Decimal("0.15") * prompt_tokens + Decimal("0.6") * completion_tokens) / 1000
    assert (report.prompt_tokens, report.completion_tokens) == (prompt_tokens, completion_tokens)
    assert report.cost_usd == float(expected) == report.partition_cost_usd and report.priced
    ledger = [json.loads(line) for line in Path(report.ledger_path).read_text().splitlines()]
    assert len(ledger) == 9 and sum(Decimal(r["cost_usd"]) for r in ledger) == expected
    assert report.as_metadata()["cost_usd"] == float(expected)

    again, second = run(config)
    assert openai_server.count == 9  # nothing was asked again
    assert (second.requests, second.generated, second.reused, second.cost_usd) == (0, 0, 9, 0.0)
    assert second.partition_cost_usd == float(expected)
    assert again.examples.drop("collected_at").equals(first.examples.drop("collected_at"))

    changed, third = run(settings(openai_server, temperature=0.9))  # another temperature is another item
    assert third.generated == 9 and openai_server.count == 18


def test_unpriced_model_and_missing_usage(openai_server: FakeOpenAI, run):
    openai_server.plan(NO_USAGE)
    batch, report = run(settings(openai_server, price_per_1k_prompt={}, price_per_1k_completion={}))
    assert not report.priced and report.cost_usd == 0.0 and report.without_usage == 1
    assert batch.examples.height == 9  # the pair itself is fine; only its cost is unknown


def test_custom_base_url(openai_server: FakeOpenAI, run):
    batch, _ = run(settings(openai_server, base_url=f"{openai_server.base_url}/llama/v1", response_format="json_object"))
    assert batch.examples.height == 9
    assert {p for p, _ in openai_server.requests} == {"/llama/v1/chat/completions"}
    assert openai_server.requests[0][1]["response_format"] == {"type": "json_object"}


def test_retry_after_honored_timeouts_and_truncation_retried(openai_server: FakeOpenAI, run):
    openai_server.plan(Error(429, retry_after="3"), Error(503), Delay(1.0), None, TRUNCATE)
    batch, report = run(settings(openai_server, timeout_s=0.3))
    assert batch.examples.height == 9 and batch.quarantine.height == 0
    assert run.sleeps == [3.0, 0.5, 1.0, 0.25]  # Retry-After, then backoff 0.25 * 2**attempt; the 2nd job anew
    assert report.requests == openai_server.count == 13


def test_retries_bounded_and_the_rerun_resumes(openai_server: FakeOpenAI, run):
    openai_server.plan(None, None, *[Error(500)] * 4)
    with pytest.raises(RetriesExhausted, match="gave up after 4 attempts"):
        run(settings(openai_server))
    assert openai_server.count == 6
    batch, report = run(settings(openai_server))
    assert (report.reused, report.generated, batch.examples.height) == (2, 7, 9)


def test_persistently_truncated_response_is_quarantined_not_spooled(openai_server: FakeOpenAI, run):
    openai_server.plan(*[TRUNCATE] * 4)
    batch, _ = run(settings(openai_server))
    assert batch.examples.height == 8
    assert batch.quarantine["reason"].to_list() == [
        "unreadable response: gave up after 4 attempts: truncated or invalid JSON response"]
    again, report = run(settings(openai_server))
    assert report.generated == 1 and again.examples.height == 9 and again.quarantine.height == 0


def test_billing_errors_are_not_retried(openai_server: FakeOpenAI, run):
    openai_server.plan(Error(429, body=INSUFFICIENT_QUOTA))
    with pytest.raises(RuntimeError, match="HTTP 429.*exceeded your current quota"):
        run(settings(openai_server))
    assert openai_server.count == 1 and run.sleeps == []


def test_configuration_errors(openai_server: FakeOpenAI, run, tmp_path: Path, day: date):
    with pytest.raises(ValueError, match=r"\['level'\]"):
        jobs(settings(openai_server, items={"topic": ["x"]}))
    from corpus_platform.defs.ingest.resources import SyntheticResource
    from corpus_platform.settings import Layout

    with pytest.raises(SourceNotConfigured, match="OPENAI_API_KEY"):
        SyntheticResource(templates=["x"]).fetch(day, Layout(tmp_path), log=None)
    with pytest.raises(SourceNotConfigured, match="CORPUS_SYNTHETIC_TEMPLATES"):  # a local server needs no key
        SyntheticResource(base_url="http://127.0.0.1:8000/v1").fetch(day, Layout(tmp_path), log=None)
    assert SECRET not in repr(settings(openai_server))
    assert openai_server.count == 0


def test_secret_never_leaks(openai_server: FakeOpenAI, run, tmp_path: Path, caplog):
    openai_server.plan(Error(429, retry_after="1"), Delay(1.0))
    openai_server.content_for["bananas."] = "not json"
    messages: list[str] = []
    log = logging.getLogger("test.synthetic.collect")
    log.addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: messages.append(r.getMessage())})())
    caplog.set_level(logging.DEBUG)
    batch, report = run(settings(openai_server, timeout_s=0.3), log=log)
    openai_server.plan(*[Error(503)] * 4)
    with pytest.raises(RetriesExhausted) as exhausted:
        run(settings(openai_server, temperature=1.0), log=log)
    assert messages and "HTTP Request" in caplog.text
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert SECRET.encode() not in on_disk
    chain = "".join(traceback.format_exception(exhausted.value))
    for text in (caplog.text, "\n".join(messages), batch.examples.write_json(), batch.quarantine.write_json(),
                 json.dumps(report.as_metadata()), chain):
        assert SECRET not in text


CHILD = """
import json, sys
from datetime import date
from pathlib import Path
from corpus_platform.sources.policy import BackoffPolicy
from corpus_platform.sources.state import PartitionState
from corpus_platform.sources.synthetic import SyntheticConfig, fetch_synthetic
a = json.loads(sys.argv[1])
day = date.fromisoformat(a["day"])
cfg = SyntheticConfig(api_key=a["key"], base_url=a["base"], model="gpt-test", templates=a["templates"],
                      items=a["items"], temperature=0.2, max_tokens=300, price_per_1k_prompt={"gpt-test": 0.15},
                      price_per_1k_completion={"gpt-test": 0.6}, requests_per_minute=600000,
                      backoff=BackoffPolicy(max_retries=0))
fetch_synthetic(cfg, day, PartitionState(Path(a["state"]), "synthetic", day))
"""


def _comparable(df) -> list[dict]:
    volatile = ("completion_id", "created_at")
    return sorted(({**r, "metadata": {k: v for k, v in json.loads(r["metadata"]).items() if k not in volatile}}
                   for r in df.drop("collected_at").to_dicts()), key=lambda r: r["example_id"])


def test_sigkill_mid_generation_then_rerun_same_rows_no_repaid_items(openai_server: FakeOpenAI, run, tmp_path: Path,
                                                                    day: date):
    reference, _ = run(settings(openai_server), root=tmp_path / "reference")
    openai_server.requests.clear()
    openai_server.plan(None, None, None, BLOCK)  # the 4th generation hangs: SIGKILL the run there
    args = {"day": day.isoformat(), "key": SECRET, "base": f"{openai_server.base_url}/v1", "templates": TEMPLATES,
            "items": ITEMS, "state": str(tmp_path / "state")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    try:
        assert openai_server.arrived.wait(30), child.stderr.read().decode() if child.poll() is not None else "no block"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    openai_server.release.set()
    paid = [b["messages"][1]["content"] for _, b in openai_server.requests[:3]]
    openai_server.requests.clear()

    resumed, report = run(settings(openai_server))
    assert _comparable(resumed.examples) == _comparable(reference.examples)
    assert (report.reused, report.generated) == (3, 6)
    assert not set(paid) & {b["messages"][1]["content"] for _, b in openai_server.requests}
