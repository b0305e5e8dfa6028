"""Distillation against local OpenAI-compatible servers playing two teachers and a judge, through the
real `openai` client: routing, provenance, the threshold, never asking twice, cost per teacher, retries
and errors that are recorded rather than lost."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest

from corpus_platform.distillation.distill import distill_partition, instructions_frame, select_winners
from corpus_platform.distillation.teachers import (
    Teacher, TeacherNotConfigured, classify, parse_routing, parse_teachers, route,
)
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect
from corpus_platform_tests.distillation.conftest import (
    DAY, INSTRUCTIONS, PRICES, SOURCE, distill_settings, seed_scored, teachers_config,
)
from corpus_platform_tests.sources.fakes.openai_server import Error

NO_SLEEP = dict(sleep=lambda s: None)


def prompts(server) -> list[str]:
    return [next(m["content"] for m in body["messages"] if m["role"] == "user") for _, body in server.requests]


@pytest.fixture
def home(tmp_path):
    return Layout(tmp_path)


def run(home, settings, **kw):
    with connect(home.warehouse) as con:
        return distill_partition(con, DAY, SOURCE, settings, **NO_SLEEP, **kw)


def table(home, sql, params=None):
    with connect(home.warehouse) as con:
        return con.execute(sql, params or []).pl()


def test_classifier_routes_code_math_writing_and_general():
    got = classify(["Write a Python function that sums a list.", "What is 12 * 7?", "Write a haiku about rain.",
                    "What is the capital of Peru?", "Why does my SQL query SELECT * FROM t return nothing?",
                    "How many apples does Ken have if he buys 3 more?", "Give me tips for public speaking."])
    assert got.to_list() == ["code", "math", "writing", "general", "code", "math", "general"]


def test_routing_sends_each_category_to_its_teachers_and_star_to_the_rest():
    teachers = parse_teachers(json.dumps([{"name": "a", "base_url": "http://x/v1", "model": "m1"},
                                          {"name": "b", "base_url": "http://y/v1", "model": "m2"}]))
    frame = pl.DataFrame({"instruction_hash": ["1", "2", "3"], "category": ["code", "general", "math"]})
    routed = route(frame, parse_routing({"code": ["a"], "*": ["b"]}, teachers))
    assert sorted(routed.select("instruction_hash", "teacher").rows()) == [("1", "a"), ("2", "b"), ("3", "b")]
    everyone = route(frame, parse_routing("", teachers))  # no routing: every teacher for everything
    assert everyone.height == 6
    only_code = route(frame, parse_routing({"code": ["a"]}, teachers))  # no "*": the others are not asked
    assert only_code["instruction_hash"].to_list() == ["1"]
    with pytest.raises(ValueError, match=r"unknown teacher\(s\) \['c'\]"):
        parse_routing({"code": ["c"]}, teachers)


def test_teacher_config_is_validated_and_keys_are_never_configured():
    with pytest.raises(ValueError, match="api_key_env"):
        parse_teachers([{"name": "a", "base_url": "http://x/v1", "model": "m", "api_key": "sk-123"}])
    with pytest.raises(ValueError, match="unique"):
        parse_teachers([{"name": "a", "base_url": "u", "model": "m"}, {"name": "a", "base_url": "u", "model": "n"}])
    with pytest.raises(ValueError, match="unknown field"):
        parse_teachers([{"name": "a", "base_url": "u", "model": "m", "prize": 1}])
    with pytest.raises(ValueError, match="name"):
        parse_teachers([{"name": "a:b", "base_url": "u", "model": "m"}])


def test_a_referenced_teacher_without_its_key_or_endpoint_fails_naming_it(home, servers, tmp_path):
    seed_scored(home.warehouse)
    config = teachers_config(servers)
    config[0]["api_key_env"] = "CODER_KEY_FOR_TEST"
    config[1]["base_url"] = ""
    settings = distill_settings(servers, tmp_path, teachers=tuple(Teacher(**t) for t in config))
    with pytest.raises(TeacherNotConfigured) as err:
        run(home, settings, env={})
    assert "teacher 'coder' needs its API key in $CODER_KEY_FOR_TEST" in str(err.value)
    assert "teacher 'generalist' has no base_url" in str(err.value)
    assert servers["coder"].count == servers["generalist"].count == servers["judge"].count == 0
    # A teacher nobody routes to may stay unconfigured.
    unused = distill_settings(servers, tmp_path, teachers=tuple(Teacher(**t) for t in [teachers_config(servers)[0], config[1]]),
                              routing={"code": ["coder"]})
    assert run(home, unused, env={}).kept == 2


def test_routing_provenance_and_the_best_answer_above_threshold(home, servers, tmp_path):
    ids = seed_scored(home.warehouse)
    report = run(home, distill_settings(servers, tmp_path))
    # code -> coder only; general -> both teachers; math has no route and is not asked.
    code = {INSTRUCTIONS["code-1"], INSTRUCTIONS["code-2"]}
    general = {INSTRUCTIONS[k] for k in ("gen-1", "gen-2", "gen-low")}
    assert set(prompts(servers["coder"])) == code | general
    assert set(prompts(servers["generalist"])) == general
    assert INSTRUCTIONS["math-1"] not in prompts(servers["coder"]) + prompts(servers["generalist"])
    assert report.instructions == 6 and report.unrouted == 1 and report.pairs == 8 and report.asked == 8
    assert report.categories == {"code": 2, "general": 3, "math": 1}

    answers = table(home, "SELECT * FROM corpus.teacher_answers ORDER BY teacher, instruction")
    assert answers.height == 8 and set(answers["status"]) == {"ok"}
    assert answers["judged_score"].null_count() == 0 and set(answers["judge_model"]) == {"judge-model"}
    assert all(a.startswith(f"{t} answers:") for t, a in answers.select("teacher", "answer").iter_rows())
    assert set(answers["example_id"]) <= set(ids.values())

    distilled = table(home, "SELECT * FROM corpus.distilled_examples ORDER BY source_id")
    # gen-low's best (coder, 5.0) is below the threshold of 7: not kept.
    assert distilled.height == 4 and report.kept == 4 and report.below_threshold == 1
    by_origin = {json.loads(m)["original_source_id"]: (t, s, json.loads(m)) for t, s, m in
                 distilled.select("teacher", "judged_score", "metadata").iter_rows()}
    assert {k: v[:2] for k, v in by_origin.items()} == {
        "code-1": ("coder", 8.0), "code-2": ("coder", 8.0), "gen-1": ("generalist", 9.0), "gen-2": ("generalist", 8.0)}
    meta = by_origin["gen-1"][2]
    assert meta["original_example_id"] == ids["gen-1"] and meta["winner"] == "generalist"
    assert meta["scores"] == {"coder": 6.0, "generalist": 9.0} and meta["threshold"] == 7.0
    assert [t["teacher"] for t in meta["teachers_asked"]] == ["coder", "generalist"]
    assert meta["judge_dimensions"] == {"helpfulness": 9.0, "correctness": 9.0, "coherence": 9.0, "safety": 9.0}
    row = distilled.filter(pl.col("source_id").str.contains(meta["instruction_hash"])).row(0, named=True)
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert row["messages"][0]["content"] == INSTRUCTIONS["gen-1"] and row["messages"][1]["content"].startswith("generalist")
    assert row["example_id"] not in ids.values() and len(row["content_hash"]) == 64 and row["quality_score"] > 1


def test_distilled_examples_have_the_columns_of_scored_examples(home):
    with connect(home.warehouse) as con:
        cols = {t: con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'corpus' "
                               "AND table_name = ? ORDER BY ordinal_position", [t]).fetchall()
                for t in ("scored_examples", "distilled_examples")}
    assert cols["distilled_examples"][: len(cols["scored_examples"])] == cols["scored_examples"]
    assert [c for c, _ in cols["distilled_examples"][len(cols["scored_examples"]):]] == ["teacher", "judged_score"]


def test_a_rerun_asks_no_teacher_and_no_judge_again(home, servers, tmp_path):
    seed_scored(home.warehouse)
    settings = distill_settings(servers, tmp_path)
    run(home, settings)
    counts = {n: s.count for n, s in servers.items()}
    before = table(home, "SELECT * FROM corpus.distilled_examples ORDER BY example_id")
    again = run(home, settings)
    assert {n: s.count for n, s in servers.items()} == counts
    assert again.asked == 0 and again.reused == 8 and again.cost_usd == 0.0 and again.kept == 4
    after = table(home, "SELECT * FROM corpus.distilled_examples ORDER BY example_id")
    assert after.drop("collected_at").equals(before.drop("collected_at"))
    # A new instruction in the partition costs exactly its own pairs.
    seed_scored(home.warehouse, {**INSTRUCTIONS, "gen-3": "Suggest a name for a friendly robot."})
    third = run(home, settings)
    assert third.asked == 2 and servers["coder"].count == counts["coder"] + 1
    assert servers["generalist"].count == counts["generalist"] + 1


def test_cost_per_teacher_in_the_view_is_usage_times_price(home, servers, tmp_path):
    seed_scored(home.warehouse)
    settings = distill_settings(servers, tmp_path)
    report = run(home, settings)
    view = {r["teacher"]: r for r in table(home, "SELECT * FROM corpus.distillation_cost_per_teacher").to_dicts()}
    for name in ("coder", "generalist"):
        usages = servers[name].usages
        pin, pout = PRICES[name]
        expected = sum((Decimal(str(pin)) * u["prompt_tokens"] + Decimal(str(pout)) * u["completion_tokens"])
                       for u in usages) / Decimal(1_000_000)
        assert view[name]["answers"] == len(usages)
        assert view[name]["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages)
        assert view[name]["completion_tokens"] == sum(u["completion_tokens"] for u in usages)
        assert view[name]["cost_usd"] == pytest.approx(float(expected), rel=1e-12) and view[name]["cost_usd"] > 0
        assert report.teachers[name].cost_usd == pytest.approx(float(expected), rel=1e-12)
    # The ledger holds the same money, line by line.
    lines = [json.loads(x) for x in settings.ledger.read_text().splitlines()]
    for name in ("coder", "generalist"):
        assert float(sum(Decimal(x["cost_usd"]) for x in lines if x["teacher"] == name)) == pytest.approx(view[name]["cost_usd"])
    wins = {r["teacher"]: r for r in table(home, "SELECT * FROM corpus.distillation_win_rate").to_dicts()}
    assert wins["coder"]["wins"] == 3 and wins["generalist"]["wins"] == 2  # code-1, code-2, gen-low | gen-1, gen-2
    assert wins["generalist"]["contested_win_rate"] == pytest.approx(2 / 3) and wins["coder"]["kept"] == 2


def test_a_failing_teacher_is_retried_then_recorded_with_its_reason_and_asked_again_later(home, servers, tmp_path):
    seed_scored(home.warehouse, {"gen-1": INSTRUCTIONS["gen-1"]})
    settings = distill_settings(servers, tmp_path, concurrency=1)  # max_retries=2: 3 attempts
    servers["generalist"].plan(Error(500), Error(500), Error(500))  # every attempt fails
    servers["coder"].plan(Error(429, retry_after="0"), None)  # one 429, then an answer
    report = run(home, settings)
    rows = {r["teacher"]: r for r in table(home, "SELECT * FROM corpus.teacher_answers").to_dicts()}
    assert rows["generalist"]["status"] == "error" and rows["generalist"]["attempts"] == 3
    assert "gave up after 3 attempts" in rows["generalist"]["error"] and "HTTP 500" in rows["generalist"]["error"]
    assert rows["generalist"]["answer"] is None and rows["generalist"]["cost_usd"] == 0
    assert rows["coder"]["status"] == "ok" and rows["coder"]["attempts"] == 2
    assert servers["generalist"].count == 3 and servers["coder"].count == 2
    assert report.errors == 1 and list(report.error_reasons) == [rows["generalist"]["error"][:120]]
    assert report.kept == 0  # coder's 6.0 on the sleep question is below 7; the better teacher failed
    view = table(home, "SELECT * FROM corpus.distillation_cost_per_teacher WHERE teacher = 'generalist'")
    assert view["errors"][0] == 1 and view["answers"][0] == 0
    # The next run asks the failed pair again (and only it); its answer now wins.
    again = run(home, settings)
    assert again.asked == 1 and servers["coder"].count == 2 and servers["generalist"].count == 4
    row = table(home, "SELECT * FROM corpus.teacher_answers WHERE teacher = 'generalist'").row(0, named=True)
    assert row["status"] == "ok" and row["error"] is None and row["attempts"] == 4
    assert again.kept == 1 and table(home, "SELECT teacher FROM corpus.distilled_examples")["teacher"].to_list() == ["generalist"]


def test_a_rejected_key_stops_the_run_but_keeps_what_was_paid(home, servers, tmp_path):
    seed_scored(home.warehouse, {k: INSTRUCTIONS[k] for k in ("code-1", "gen-1")})
    settings = distill_settings(servers, tmp_path, concurrency=1, routing={"*": ["coder"]})
    servers["coder"].plan(None, Error(401))
    from corpus_platform.distillation.teachers import TeacherUnavailable

    with pytest.raises(TeacherUnavailable, match="HTTP 401 from teacher 'coder'"):
        run(home, settings)
    rows = table(home, "SELECT status FROM corpus.teacher_answers")
    assert rows["status"].to_list() == ["ok"]  # the first answer was stored before the stop


def test_winner_selection_prefers_score_then_cost_then_name_and_skips_truncated():
    judged = pl.DataFrame({
        "instruction_hash": ["h1", "h1", "h1", "h2", "h2"], "teacher": ["b", "a", "c", "a", "b"],
        "judged_score": [8.0, 8.0, 9.0, 9.5, 7.5], "cost_usd": [0.1, 0.1, 0.0, 0.0, 0.0],
        "finish_reason": ["stop", "stop", "length", "length", "stop"]})
    best = select_winners(judged, 8.0)
    assert best.select("instruction_hash", "teacher", "kept").rows() == [("h1", "a", True), ("h2", "b", False)]
    assert select_winners(judged, 8.0, keep_truncated=True)["teacher"].to_list() == ["c", "a"]


def test_instructions_are_first_user_turns_deduplicated_by_hash():
    from corpus_platform.schema import make_example

    rows = [make_example(source="public", source_id=str(i), day=DAY, messages=m) for i, m in enumerate([
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Same question "},
         {"role": "assistant", "content": "x"}, {"role": "user", "content": "follow-up"}],
        [{"role": "user", "content": "Same question"}, {"role": "assistant", "content": "y"}],
        [{"role": "assistant", "content": "no user turn"}],
    ])]
    frame = instructions_frame(pl.DataFrame(rows))
    assert frame["instruction"].to_list() == ["Same question"]
    assert frame["example_id"][0] == min(r["example_id"] for r in rows[:2]) and len(frame["instruction_hash"][0]) == 32


def test_an_empty_partition_asks_nothing_and_clears_its_rows(home, servers, tmp_path):
    seed_scored(home.warehouse, {})
    report = run(home, distill_settings(servers, tmp_path))
    assert report.instructions == 0 and report.kept == 0 and report.asked == 0
    assert sum(s.count for s in servers.values()) == 0


def test_resource_reads_the_environment_and_builds_settings(tmp_path):
    from corpus_platform.defs.distillation.resources import DistillationSettings

    env = {"CORPUS_DISTILL_TEACHERS": json.dumps([{"name": "t", "base_url": "http://127.0.0.1:1/v1", "model": "m",
                                                    "api_key_env": "T_KEY"}]),
           "CORPUS_DISTILL_ROUTING": '{"*": ["t"]}', "CORPUS_DISTILL_SOURCES": "public, synthetic",
           "CORPUS_DISTILL_MODE": "batch", "CORPUS_DISTILL_JUDGE_BASE_URL": "http://127.0.0.1:2/v1",
           "CORPUS_DISTILL_JUDGE_MODEL": "j", "CORPUS_DISTILL_JUDGE_API_KEY_ENV": "J_KEY", "J_KEY": "secret-j"}
    resource = DistillationSettings.from_env(env)
    assert resource.sources == ["public", "synthetic"] and resource.mode == "batch"
    settings = resource.settings(batch_dir=tmp_path / "b", ledger=tmp_path / "l", env=env)
    assert [t.name for t in settings.teachers] == ["t"] and settings.routing == {"*": ["t"]}
    assert settings.judge.model == "j" and settings.judge.api_key == "secret-j" and "secret-j" not in repr(settings.judge)
    with pytest.raises(TeacherNotConfigured, match=r"judge needs its API key in \$J_KEY"):
        resource.settings(batch_dir=tmp_path, ledger=tmp_path / "l", env={})
    curation_judge = DistillationSettings.from_env({"CORPUS_JUDGE_BASE_URL": "http://127.0.0.1:3/v1",
                                                    "CORPUS_JUDGE_MODEL": "cj", "CORPUS_JUDGE_API_KEY": "k"})
    assert (curation_judge.judge_base_url, curation_judge.judge_model, curation_judge.judge_api_key_env) == (
        "http://127.0.0.1:3/v1", "cj", "CORPUS_JUDGE_API_KEY")
    with pytest.raises(TeacherNotConfigured, match="no distillation teachers configured"):
        DistillationSettings().settings(batch_dir=tmp_path, ledger=tmp_path / "l", env={})
