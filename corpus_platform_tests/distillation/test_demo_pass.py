"""The demo's distillation pass: with no teacher endpoint configured it serves the local model on
127.0.0.1 (the tiny test model standing in for SmolLM2) and says so; with CORPUS_DISTILL_TEACHERS set it
uses the configured endpoints and serves nothing."""

from __future__ import annotations

import json
import re

from corpus_platform.definitions import make_definitions
from corpus_platform.distillation.demo import run_demo_distillation
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect
from corpus_platform_tests.distillation.conftest import seed_scored, teachers_config
from corpus_platform.demo.run import DEMO_DAYS

DAY = DEMO_DAYS[0]


def test_without_endpoints_the_local_model_is_served_on_loopback_and_the_summary_says_so(tmp_path, tiny_model_dir):
    seed_scored(Layout(tmp_path).warehouse, day=DAY)
    defs = make_definitions(tmp_path)
    out = run_demo_distillation(Layout(tmp_path), defs.resources, DAY, env={"CORPUS_BASE_MODEL": str(tiny_model_dir)})
    text = "\n".join(out.summary_lines())
    assert out.success, text
    assert re.search(r"no teacher endpoint configured \(CORPUS_DISTILL_TEACHERS unset\): served the local model "
                     r"\S+ on 127\.0\.0\.1:\d+ as a local OpenAI-compatible endpoint for both teachers and the judge", text)
    assert out.metadata["instructions"] == 4 and out.metadata["judge_errors"] == 0
    assert {t["teacher"] for t in out.teachers} == {"smollm2-precise", "smollm2-friendly"}
    with connect(Layout(tmp_path).warehouse) as con:
        judged, = con.execute("SELECT count(judged_score) FROM corpus.teacher_answers").fetchone()
    assert judged == out.metadata["judged"] > 0  # the judge's schema was enforced: every ok answer has a score


def test_configured_endpoints_are_used_and_nothing_is_served(tmp_path, servers):
    seed_scored(Layout(tmp_path).warehouse, day=DAY)
    env = {"CORPUS_DISTILL_TEACHERS": json.dumps(teachers_config(servers)),
           "CORPUS_DISTILL_JUDGE_BASE_URL": f"{servers['judge'].base_url}/v1", "CORPUS_DISTILL_JUDGE_MODEL": "judge-model"}
    out = run_demo_distillation(Layout(tmp_path), make_definitions(tmp_path).resources, DAY, env=env)
    text = "\n".join(out.summary_lines())
    assert out.success and out.served_at is None and "configured endpoints" in text and "served" not in text
    assert out.metadata["instructions"] == 4 and out.metadata["pairs"] == 8  # no routing: both teachers, 4 instructions
    assert servers["coder"].count == servers["generalist"].count == 4 and out.metadata["judged"] == 8
