"""The demo pipeline end to end on a temp CORPUS_HOME, through the real jobs on a real Dagster
instance and a real DuckDB file, with a tiny config-built model in place of SmolLM2."""

import json
from datetime import date

import dagster as dg
import polars as pl
import pytest

from corpus_platform.curation.exports import latest_export
from corpus_platform.definitions import make_definitions
from corpus_platform.defs.partitions import partition_key
from corpus_platform.defs.training.assets import latest_adapter
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.demo.corpus import write_demo_corpus
from corpus_platform.demo.run import DEMO_DAYS, QUIET, run_pipeline, summarize
from corpus_platform.settings import Layout
from corpus_platform.warehouse import connect

STAGE_TABLES = ["raw_examples", "filtered_examples", "deduplicated_examples", "scored_examples"]
# A high learning rate so that 4 steps move the random tiny model far enough for the promotion gate to pass.
TINY_TRAINING = dict(max_steps=4, per_device_batch_size=4, gradient_accumulation_steps=1, eval_steps=2, max_seq_len=192,
                     learning_rate=2e-2, eval_max_new_tokens=8, bootstrap_resamples=2000)


def tiny_defs(home, tiny_model_dir):
    return make_definitions(home, training=TrainingSettings(base_model=str(tiny_model_dir), **TINY_TRAINING))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("corpus_home")
    planted = write_demo_corpus(Layout(home).landing, DEMO_DAYS)
    defs = tiny_defs(home, tiny_model_dir)
    with dg.instance_for_test() as instance:
        result = run_pipeline(defs, instance, DEMO_DAYS)
        yield {"home": home, "defs": defs, "instance": instance, "result": result, "planted": planted}


def table(home, sql):
    with connect(Layout(home).warehouse) as con:
        return con.execute(sql).pl()


def test_every_run_succeeds_and_every_check_passes(pipeline):
    runs = pipeline["result"].runs
    assert len(runs) == 7 and all(r["success"] for r in runs), runs
    checks = {c: ok for r in runs for c, ok in r["checks"].items()}
    assert checks and all(checks.values()), checks
    assert "dataset_splits.no_split_leakage" in checks and "dataset_splits.minimum_rows_per_split" in checks
    assert "lora_adapter.train_eval_loss_gap_below_threshold" in checks and "adapter_evaluation.promotion_gate" in checks
    assert "filtered_examples.language_share" in checks and "training_exports.no_pii_in_exports" in checks
    # per partition: 4 checks + toxicity share, language share and rejection drift; judge 1, splits 4, exports 1, adapter 2
    assert sum(1 for r in runs for _ in r["checks"]) == 6 * (4 + 3) + 1 + 4 + 1 + 2


def test_every_stage_leaves_rows_for_every_partition(pipeline):
    counts = table(pipeline["home"], "SELECT stage, source, date, examples FROM corpus.stage_counts")
    for stage in [*STAGE_TABLES, "dataset_splits"]:
        per = counts.filter(pl.col("stage") == stage)
        assert per.height == 6, f"{stage} lacks partitions: {per}"
        assert per["examples"].min() > 40


def test_every_raw_example_is_accounted_for_in_the_decision_record(pipeline):
    outcomes = table(pipeline["home"], "SELECT * FROM corpus.example_outcomes")
    assert outcomes.height == table(pipeline["home"], "SELECT count(*) n FROM corpus.raw_examples")["n"][0]
    assert outcomes["final_stage"].null_count() == 0
    kept = outcomes.filter(pl.col("final_stage") == "split")
    assert kept.height == table(pipeline["home"], "SELECT count(*) n FROM corpus.dataset_splits")["n"][0]
    rejected = outcomes.filter(pl.col("decision") == "rejected")
    assert rejected["rule"].null_count() == 0 and rejected["threshold"].null_count() == 0
    dups = outcomes.filter(pl.col("decision") == "duplicate")
    assert dups["duplicate_of"].null_count() == 0


def test_planted_problems_are_caught_class_by_class(pipeline):
    totals = pipeline["planted"]["totals"]["planted"]
    rules = dict(table(pipeline["home"], "SELECT coalesce(rule, decision) r, count(*) n FROM corpus.decisions WHERE decision <> 'kept' GROUP BY 1").iter_rows())
    assert rules["empty_turn"] == totals["empty"]
    assert rules["min_response_chars"] == totals["too_short"]
    assert rules["max_total_chars"] == totals["too_long"]
    assert rules["min_alpha_ratio"] == totals["no_letters"]
    assert rules["exact_sha256"] == totals["exact_dup"] + totals["whitespace_dup"]
    quarantined = table(pipeline["home"], "SELECT count(*) n FROM corpus.quarantine")["n"][0]
    assert quarantined == totals["malformed"]


def test_no_exact_duplicate_survives_into_the_dataset(pipeline):
    within = table(pipeline["home"], "SELECT 1 FROM corpus.deduplicated_examples GROUP BY content_hash, source, date HAVING count(*) > 1")
    assert within.height == 0
    dup = table(pipeline["home"], "SELECT content_hash FROM corpus.dataset_splits GROUP BY 1 HAVING count(*) > 1")
    assert dup.height == 0
    # Planted cross-day duplicates are found through the index and removed by the global clusters.
    across = table(pipeline["home"], "SELECT count(*) n FROM corpus.duplicate_clusters WHERE kind = 'exact'")["n"][0]
    assert across == table(pipeline["home"], """SELECT count(*) n FROM (SELECT content_hash FROM corpus.scored_examples
        GROUP BY 1 HAVING count(*) > 1) JOIN corpus.scored_examples USING (content_hash)""")["n"][0] - table(
        pipeline["home"], "SELECT count(DISTINCT content_hash) n FROM (SELECT content_hash FROM corpus.scored_examples GROUP BY 1 HAVING count(*) > 1)")["n"][0]


def test_exports_match_the_splits(pipeline):
    export = latest_export(Layout(pipeline["home"]).exports)
    manifest = json.loads((export / "manifest.json").read_text())
    splits = dict(table(pipeline["home"], "SELECT split, count(*) FROM corpus.dataset_splits GROUP BY 1").iter_rows())
    assert manifest["counts"] == {s: splits.get(s, 0) for s in ("train", "val", "test")}
    lines = (export / "openai_chat" / "train.jsonl").read_text().splitlines()
    assert len(lines) == splits["train"]
    first = json.loads(lines[0])
    assert set(first) == {"messages"} and first["messages"][-1]["role"] == "assistant"
    alpaca = json.loads((export / "alpaca" / "train.json").read_text())
    assert len(alpaca) == splits["train"] and {"instruction", "input", "output"} <= set(alpaca[0])


def test_adapter_and_evaluation_are_written_and_reloadable(pipeline):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapters = Layout(pipeline["home"]).adapters
    adapter = latest_adapter(adapters)
    for name in ["adapter_model.safetensors", "adapter_config.json", "training_config.json", "metrics.json",
                 "data_version.json", "evaluation.json", "generations.jsonl", "loss_curves.png", "README.md",
                 "promoted.json"]:
        assert (adapter / name).exists(), name
    assert not (adapters / ".work").exists()  # checkpoints are gone once the adapter is in place
    evaluation = json.loads((adapter / "evaluation.json").read_text())
    assert evaluation["examples"] > 0
    assert evaluation["base"]["perplexity"] > 0 and evaluation["adapter"]["perplexity"] > 0
    assert evaluation["judge"] == {"status": "skipped (no endpoint configured)"}
    stats = evaluation["statistics"]
    assert stats["p_value"] < 0.05 and stats["cohens_d"] > 0.3 and evaluation["promotion"]["passed"] is True
    assert (adapters / "current").resolve() == adapter.resolve()  # promoted
    generations = [json.loads(line) for line in (adapter / "generations.jsonl").read_text().splitlines()]
    assert len(generations) == evaluation["generations"]["examples"] > 0
    card = (adapter / "README.md").read_text()
    assert "PROMOTED" in card and lineage_version(adapter) in card and "perplexity" in card
    metrics = json.loads((adapter / "metrics.json").read_text())
    assert metrics["wandb"]["mode"] == "offline" and metrics["wandb"]["run_dir"].startswith(str(pipeline["home"] / "wandb"))
    lineage = json.loads((adapter / "data_version.json").read_text())
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lineage["base_model_path"]), str(adapter))
    assert model is not None
    mats = pipeline["instance"].fetch_materializations(dg.AssetKey("adapter_evaluation"), limit=1).records
    meta = mats[0].asset_materialization.metadata
    assert meta["test_examples"].value == evaluation["examples"]
    assert meta["p_value"].value == stats["p_value"] and meta["judge"].value.startswith("skipped")
    trained = pipeline["instance"].fetch_materializations(dg.AssetKey("lora_adapter"), limit=1).records
    loss_curves = trained[0].asset_materialization.metadata["loss_curves"].value
    assert loss_curves.startswith("![loss curves](data:image/png;base64,")


def lineage_version(adapter):
    return json.loads((adapter / "data_version.json").read_text())["export_version"]


def test_rematerializing_a_partition_leaves_the_same_rows(pipeline):
    home, defs, instance = pipeline["home"], pipeline["defs"], pipeline["instance"]
    columns = "example_id, source, date, source_id, messages, metadata"

    def snapshot():
        return {t: table(home, f"SELECT {columns} FROM corpus.{t} ORDER BY example_id") for t in STAGE_TABLES} | {
            "decisions": table(home, "SELECT example_id, stage, decision, rule, score, threshold, duplicate_of FROM corpus.decisions ORDER BY ALL"),
            "quarantine": table(home, "SELECT source, date, file, line, reason FROM corpus.quarantine ORDER BY ALL"),
        }

    before = snapshot()
    job = defs.resolve_job_def("curate_partition")
    for source in ("public", "conversations"):
        r = job.execute_in_process(partition_key=partition_key(DEMO_DAYS[1], source), instance=instance, run_config=QUIET)
        assert r.success
    after = snapshot()
    for name in before:
        assert before[name].equals(after[name]), f"{name} changed on re-materialization"


def test_summary_names_stages_rules_checks_and_the_adapter(pipeline):
    text = summarize(pipeline["home"], pipeline["result"])
    for needle in ["raw_examples", "scored_examples", "empty_turn", "exact_sha256", "Asset checks: 50 passed, 0 failed",
                   "raw examples without a decision: 0", "Adapter:", "perplexity base", "judge: skipped (no endpoint configured)",
                   "per-example NLL", "p = ", "Cohen's d = ", "95% CI", "promotion gate: PASSED", "make ui"]:
        assert needle in text, needle


def test_unconfigured_scraping_source_fails_naming_its_env_vars(pipeline):
    job = pipeline["defs"].resolve_job_def("curate_partition")
    r = job.execute_in_process(partition_key=partition_key(date(2026, 1, 1), "reddit"), instance=pipeline["instance"],
                               run_config=QUIET, raise_on_error=False)
    assert not r.success
    failure = next(e for e in r.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "REDDIT_CLIENT_ID" in message and "REDDIT_CLIENT_SECRET" in message
    assert table(pipeline["home"], "SELECT count(*) n FROM corpus.raw_examples WHERE source = 'reddit'")["n"][0] == 0
