"""judged_examples through Dagster against a local OpenAI-compatible judge: below-threshold examples leave the
splits with their score, a rematerialization pays for nothing, the key never shows, and a disabled judge says so."""

import json

import dagster as dg
import polars as pl

from corpus_platform.defs.curation.resources import CurationSettings, LLMJudge
from corpus_platform.defs.partitions import partition_key
from corpus_platform.definitions import make_definitions
from corpus_platform.demo.corpus import write_demo_corpus
from corpus_platform.demo.run import DEMO_DAYS, QUIET
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect
from corpus_platform_tests.sources.fakes.openai_server import FakeOpenAI, openai_server  # noqa: F401 - fixture

SECRET = "SENTINEL-JUDGE-KEY-789"
GLOBAL = ["duplicate_clusters", "judged_examples", "dataset_splits"]


def judge_reply(prompt: str) -> str:
    """Answers with a digit score 8, others 5: a verdict that depends on the judged answer."""
    answer = prompt.split("THE ANSWER TO RATE]\n", 1)[1].split("\n\n---", 1)[0]
    s = 8 if any(c.isdigit() for c in answer) else 5
    return json.dumps({"scores": {"helpfulness": s, "correctness": s, "coherence": s, "safety": s}, "rationale": "ok"})


def run(home, judge, instance):
    small = CurationSettings(min_train_rows=1, min_val_rows=0, min_test_rows=0)  # one day of demo data
    defs = make_definitions(home, judge=judge, curation=small)
    r = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, run_config=QUIET, asset_selection=[dg.AssetKey(n) for n in GLOBAL], raise_on_error=False)
    assert r.success
    mat = instance.fetch_materializations(dg.AssetKey("judged_examples"), limit=1).records[0]
    return {k: v.value for k, v in mat.asset_materialization.metadata.items()}, [str(e) for e in instance.all_logs(r.run_id)]


def test_judge_rejects_below_threshold_caches_and_hides_the_key(tmp_path, openai_server: FakeOpenAI):
    openai_server.responder = judge_reply
    write_demo_corpus(Layout(tmp_path).landing, DEMO_DAYS[:1])
    judge = LLMJudge(enabled=True, base_url=openai_server.base_url + "/v1", model="judge-small", api_key=SECRET,
                     threshold=7.0, price_input_per_mtok=1.0, price_output_per_mtok=2.0)
    with dg.instance_for_test() as instance:
        job = make_definitions(tmp_path).resolve_job_def("curate_partition")
        assert job.execute_in_process(partition_key=partition_key(DEMO_DAYS[0], "public"), instance=instance,
                                      run_config=QUIET).success
        meta, events = run(tmp_path, judge, instance)
        calls = openai_server.count
        assert calls == meta["called"] > 0 and meta["cost_usd_this_run"] > 0
        again, _ = run(tmp_path, judge, instance)
        assert openai_server.count == calls and again["called"] == 0 and again["cached"] == meta["called"]
        disabled, _ = run(tmp_path, LLMJudge(), instance)
    assert "disabled" in disabled["judge"] and "CORPUS_JUDGE_BASE_URL" in disabled["judge"]
    assert not any(SECRET in e for e in events) and SECRET not in json.dumps(meta, default=str)
    with connect(Layout(tmp_path).warehouse) as con:
        assert con.execute("SELECT count(*) FROM corpus.decisions WHERE stage = 'judge'").fetchone()[0] == 0  # disabled now
        blob = " ".join(str(r) for t in ("judgments", "decisions") for r in con.execute(f"SELECT * FROM corpus.{t}").fetchall())
        assert SECRET not in blob


def test_judge_rejections_leave_the_splits(tmp_path, openai_server: FakeOpenAI):
    openai_server.responder = judge_reply
    write_demo_corpus(Layout(tmp_path).landing, DEMO_DAYS[:1])
    judge = LLMJudge(enabled=True, base_url=openai_server.base_url + "/v1", model="judge-small", api_key=SECRET)
    with dg.instance_for_test() as instance:
        job = make_definitions(tmp_path).resolve_job_def("curate_partition")
        assert job.execute_in_process(partition_key=partition_key(DEMO_DAYS[0], "public"), instance=instance,
                                      run_config=QUIET).success
        run(tmp_path, judge, instance)
    with connect(Layout(tmp_path).warehouse) as con:
        judged = con.execute("SELECT decision, rule, score, threshold FROM corpus.decisions WHERE stage = 'judge'").pl()
        rejected = con.execute("""SELECT count(*) FROM corpus.dataset_splits s JOIN corpus.decisions d USING (example_id, source, date)
                                  WHERE d.stage = 'judge' AND d.decision = 'rejected'""").fetchone()[0]
    low = judged.filter(pl.col("decision") == "rejected")
    assert low.height > 0 and (low["score"] < 7).all() and (low["threshold"] == 7.0).all() and (low["rule"] == "llm_judge").all()
    assert judged.filter(pl.col("decision") == "kept").height > 0
    assert rejected == 0
