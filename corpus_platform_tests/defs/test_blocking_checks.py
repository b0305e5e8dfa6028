"""Blocking checks stop bad data: a planted low-quality partition fails its check (and its run), and
splits too small to train on keep the adapter from being trained at all."""

import json
from datetime import date

import dagster as dg

from corpus_platform.definitions import make_definitions
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.partitions import partition_key
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.demo.corpus import write_demo_corpus
from corpus_platform.demo.run import QUIET
from corpus_platform.settings import Layout

DAY = date(2026, 1, 4)


def write_low_effort_logs(home, n=30):
    folder = Layout(home).landing_dir("conversations", DAY.isoformat())
    folder.mkdir(parents=True)
    lines = [json.dumps({"interaction_id": f"low-{i}", "session_id": f"s{i}", "user_id": "u1",
                         "timestamp": "2026-01-04T10:00:00Z", "user_message": f"question number {i}",
                         "bot_response": "yes that is right i think so"}) for i in range(n)]
    (folder / "chat.jsonl").write_text("\n".join(lines) + "\n")


def check_results(result):
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_low_quality_partition_fails_its_blocking_check(tmp_path):
    write_low_effort_logs(tmp_path)
    defs = make_definitions(tmp_path, curation=CurationSettings(min_mean_quality=5.0))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(DAY, "conversations"), instance=instance, run_config=QUIET, raise_on_error=False)
        assert not result.success
        checks = check_results(result)
        quality = checks["mean_quality_above_threshold"]
        assert quality.passed is False
        assert quality.metadata["rows"].value == 30  # kept (above min_quality 3) but mean below 5
        assert quality.metadata["mean_quality"].value < 5.0
        assert checks["required_fields_present"].passed and checks["no_exact_duplicates_within_partition"].passed
        # The instance records the failed check for the UI's check dashboard.
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("scored_examples"), "mean_quality_above_threshold")])
        assert record


def test_too_small_splits_block_training(tmp_path, tiny_model_dir):
    write_demo_corpus(Layout(tmp_path).landing, [date(2026, 1, 1)])
    defs = make_definitions(tmp_path, curation=CurationSettings(min_val_rows=1000),
                            training=TrainingSettings(base_model=str(tiny_model_dir), max_steps=1))
    with dg.instance_for_test() as instance:
        curate = defs.resolve_job_def("curate_partition")
        for source in ("public", "conversations"):
            assert curate.execute_in_process(partition_key=partition_key(date(2026, 1, 1), source),
                                             instance=instance, run_config=QUIET).success
        result = defs.resolve_job_def("train_and_evaluate").execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False)
        assert not result.success
        assert check_results(result)["minimum_rows_per_split"].passed is False
        materialized = {e.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
        assert materialized == {"duplicate_clusters", "judged_examples", "dataset_splits"}  # nothing after the failed check
        assert not Layout(tmp_path).adapters.exists() and not Layout(tmp_path).exports.exists()
