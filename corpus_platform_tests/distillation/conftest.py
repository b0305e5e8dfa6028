"""Two teachers and a judge as local OpenAI-compatible servers (the connectors' FakeOpenAI, real wire
format, real `openai` client), and a warehouse with one scored partition of known instructions."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pytest

from corpus_platform.curation.judge import JudgeSettings
from corpus_platform.distillation.distill import DistillSettings
from corpus_platform.distillation.teachers import Teacher
from corpus_platform.schema import make_example
from corpus_platform.sources.policy import BackoffPolicy
from corpus_platform.warehouse import connect, replace_rows
from corpus_platform_tests.sources.fakes.openai_server import FakeOpenAI

DAY = date(2026, 1, 2)
SOURCE = "public"
INSTRUCTIONS = {
    "code-1": "Write a Python function that reverses a string.",
    "code-2": "Explain what a recursive function is, with a short code example.",
    "gen-1": "Give three tips for a good night's sleep.",
    "gen-2": "Describe the water cycle for a ten-year-old.",
    "gen-low": "Tell me something about the color of Tuesdays.",
    "math-1": "What is 17 * 23?",
}
PRICES = {"coder": (2.0, 8.0), "generalist": (0.5, 1.5)}  # USD per million input / output tokens


class RecordingOpenAI(FakeOpenAI):
    """FakeOpenAI that also keeps the `usage` of every answer it sent (what a bill would be computed from)."""

    def __init__(self, responder):
        super().__init__(responder)
        self.usages: list[dict[str, int]] = []

    def handle(self, path, headers, raw):
        status, hdrs, payload = super().handle(path, headers, raw)
        if status == 200:
            try:
                doc = json.loads(payload)
                if "usage" in doc:
                    self.usages.append(doc["usage"])
            except ValueError:
                pass
        return status, hdrs, payload


def teacher_responder(name: str):
    return lambda prompt: f"{name} answers: here is a careful, complete reply to '{prompt}'."


# The judge's verdicts: (teacher, instruction keyword) -> score; everything else 8.
VERDICTS = {("generalist", "Tuesdays"): 4.0, ("coder", "Tuesdays"): 5.0, ("coder", "sleep"): 6.0,
            ("coder", "water cycle"): 6.5, ("generalist", "sleep"): 9.0}


def judge_responder(prompt: str) -> str:
    answer = prompt.split("[assistant: THE ANSWER TO RATE]", 1)[-1]
    teacher = re.search(r"(coder|generalist) answers", answer)
    score = 8.0
    for (who, keyword), value in VERDICTS.items():
        if teacher and teacher.group(1) == who and keyword in answer:
            score = value
    dims = {d: score for d in ("helpfulness", "correctness", "coherence", "safety")}
    return json.dumps({"scores": dims, "rationale": f"scored {score}"})


@pytest.fixture
def servers() -> Iterator[dict[str, RecordingOpenAI]]:
    made = {"coder": RecordingOpenAI(teacher_responder("coder")),
            "generalist": RecordingOpenAI(teacher_responder("generalist")),
            "judge": RecordingOpenAI(judge_responder)}
    try:
        yield made
    finally:
        for s in made.values():
            s.close()


def teachers_config(servers: dict[str, FakeOpenAI], key_env: str = "") -> list[dict[str, Any]]:
    return [{"name": n, "base_url": f"{servers[n].base_url}/v1", "model": f"{n}-model", "api_key_env": key_env,
             "price_input_per_mtok": PRICES[n][0], "price_output_per_mtok": PRICES[n][1], "temperature": 0.0,
             "max_tokens": 128} for n in ("coder", "generalist")]


ROUTING = {"code": ["coder"], "general": ["generalist", "coder"]}  # math: no route


def judge_settings(servers: dict[str, FakeOpenAI], **kw: Any) -> JudgeSettings:
    return JudgeSettings(base_url=f"{servers['judge'].base_url}/v1", model="judge-model", threshold=7.0,
                         max_concurrency=1, **kw)


def distill_settings(servers: dict[str, FakeOpenAI], tmp_path: Path, **kw: Any) -> DistillSettings:
    base = dict(teachers=tuple(Teacher(**t) for t in teachers_config(servers)), routing=ROUTING,
                judge=judge_settings(servers), backoff=BackoffPolicy(max_retries=2, base_delay=0.0, jitter=0.0),
                concurrency=2, batch_dir=tmp_path / "batches", ledger=tmp_path / "state" / "costs" / "distillation.jsonl")
    base.update(kw)
    return DistillSettings(**base)


def seed_scored(warehouse: Path, instructions: dict[str, str] = INSTRUCTIONS, day: date = DAY,
                source: str = SOURCE) -> dict[str, str]:
    """One scored partition whose examples ask `instructions`; returns {key: example_id}."""
    rows = []
    for key, text in instructions.items():
        ex = make_example(source=source, source_id=key, day=day, metadata={"origin": key},
                          messages=[{"role": "user", "content": text},
                                    {"role": "assistant", "content": f"An original answer to: {text}"}],
                          collected_at=datetime(2026, 1, 2, 12))
        rows.append({**ex, "content_hash": f"{key:0<64}"[:64], "quality_score": 6.0, "score_detail": "{}"})
    df = pl.DataFrame(rows, schema_overrides={"messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8})),
                                              "collected_at": pl.Datetime("us")})
    with connect(warehouse) as con:
        replace_rows(con, [("scored_examples", df, "date = ? AND source = ?", [day, source])])
    return {r["source_id"]: r["example_id"] for r in rows}
