"""Sensors and the schedule, evaluated the way the daemon would, through Dagster's test contexts."""

import json
from datetime import datetime, timezone

import dagster as dg

from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.ingest.sensors import landing_files_sensor
from corpus_platform.defs.operations.schedules import daily_scrape_schedule
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.defs.training.sensors import retrain_on_new_examples


def land(home, source, day, name, body="{}\n"):
    folder = home / "landing" / source / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body)


def tick(home, cursor=None):
    context = dg.build_sensor_context(cursor=cursor, resources={"corpus_home": CorpusHome(path=str(home))})
    return landing_files_sensor(context)


def keys(result):
    return sorted(str(r.partition_key) for r in result.run_requests)


def test_landing_sensor_requests_each_new_partition_once(tmp_path):
    land(tmp_path, "public", "2026-01-01", "alpaca.json", "[]")
    land(tmp_path, "conversations", "2026-01-02", "chat.jsonl")
    first = tick(tmp_path)
    assert keys(first) == ["2026-01-01|public", "2026-01-02|conversations"]
    assert len({r.run_key for r in first.run_requests}) == 2

    again = tick(tmp_path, first.cursor)
    assert again.run_requests == []

    land(tmp_path, "public", "2026-01-01", "dolly.jsonl")
    land(tmp_path, "public", "2026-01-01", "half-written.jsonl.tmp")  # still being written: ignored
    third = tick(tmp_path, again.cursor)
    assert keys(third) == ["2026-01-01|public"]
    assert third.run_requests[0].run_key != first.run_requests[0].run_key
    assert tick(tmp_path, third.cursor).run_requests == []


def test_landing_sensor_ignores_folders_that_are_not_partitions(tmp_path):
    land(tmp_path, "public", "not-a-date", "a.jsonl")
    land(tmp_path, "public", "2099-01-01", "a.jsonl")  # in the future: no such partition yet
    land(tmp_path, "public", "2020-01-01", "a.jsonl")  # before the start date
    land(tmp_path, "reddit", "2026-01-01", "a.jsonl")  # not a file source
    land(tmp_path, "conversations", "2026-01-03", ".hidden.jsonl")
    assert tick(tmp_path).run_requests == []


def report_scored(instance, partition, rows):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="scored_examples", partition=partition, metadata={"dagster/row_count": rows}))


def evaluate_retrain(instance, threshold=200, **curation):
    context = dg.build_sensor_context(instance=instance, resources={
        "training": TrainingSettings(retrain_min_new_rows=threshold), "curation": CurationSettings(**curation)})
    return retrain_on_new_examples(context)


def report_check(instance, asset, check, passed, partition=None):
    """A check evaluation as a run would record it (each in its own run, as re-evaluations are)."""
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.utils import make_new_run_id

    evaluation = dg.AssetCheckEvaluation(asset_key=dg.AssetKey(asset), check_name=check, passed=passed, partition=partition)
    instance.report_dagster_event(
        DagsterEvent(event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value, job_name="checks",
                     event_specific_data=evaluation),
        run_id=make_new_run_id())


def test_retrain_triggers_once_enough_new_rows_arrive_and_never_twice_for_the_same_data():
    with dg.instance_for_test() as instance:
        report_scored(instance, "2026-01-01|public", 120)
        report_scored(instance, "2026-01-01|public", 120)  # re-materialized: counted once
        first = evaluate_retrain(instance)
        assert isinstance(first, dg.SkipReason) and "120 new scored rows" in first.skip_message

        report_scored(instance, "2026-01-02|conversations", 100)
        second = evaluate_retrain(instance)
        assert isinstance(second, dg.RunRequest)
        assert second.tags["corpus/new_scored_rows"] == "220"
        assert evaluate_retrain(instance).run_key == second.run_key  # same data, same key: Dagster runs it once

        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="lora_adapter"))
        assert isinstance(evaluate_retrain(instance), dg.SkipReason)
        report_scored(instance, "2026-01-03|public", 250)
        third = evaluate_retrain(instance)
        assert isinstance(third, dg.RunRequest) and third.run_key != second.run_key
        assert third.tags["corpus/new_scored_rows"] == "250"


def test_retrain_waits_for_green_checks_on_every_scored_partition():
    with dg.instance_for_test() as instance:
        report_scored(instance, "2026-01-01|public", 150)
        report_check(instance, "scored_examples", "mean_quality_above_threshold", True, "2026-01-01|public")
        report_scored(instance, "2026-01-02|public", 150)
        report_check(instance, "scored_examples", "mean_quality_above_threshold", False, "2026-01-02|public")
        blocked = evaluate_retrain(instance)
        assert isinstance(blocked, dg.SkipReason) and "300 new scored rows, but not ready" in blocked.skip_message
        assert "scored_examples.mean_quality_above_threshold [2026-01-02|public] failed" in blocked.skip_message
        assert "2026-01-01" not in blocked.skip_message

        # The partition is curated again and now passes: its latest evaluation is what counts.
        report_scored(instance, "2026-01-02|public", 150)
        report_check(instance, "scored_examples", "mean_quality_above_threshold", True, "2026-01-02|public")
        ready = evaluate_retrain(instance)
        assert isinstance(ready, dg.RunRequest) and ready.tags["corpus/new_scored_rows"] == "300"
        assert evaluate_retrain(instance).run_key == ready.run_key  # still once only


def test_retrain_requires_the_minimum_rows_per_split():
    with dg.instance_for_test() as instance:
        report_scored(instance, "2026-01-01|public", 220)
        # Projected from the scored rows: 5% of 220 = 11 test rows, short of 20.
        short = evaluate_retrain(instance, min_test_rows=20)
        assert isinstance(short, dg.SkipReason)
        assert "test split 11 rows < 20 (projected from scored rows)" in short.skip_message
        assert isinstance(evaluate_retrain(instance, min_test_rows=10), dg.RunRequest)

        # Splits materialized after the newest scored data are the real counts, and their checks count too.
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="dataset_splits", metadata={"train_rows": 200, "val_rows": 3, "test_rows": 17}))
        report_check(instance, "dataset_splits", "minimum_rows_per_split", False)
        splits = evaluate_retrain(instance)
        assert isinstance(splits, dg.SkipReason)
        assert "val split 3 rows < 5 (dataset_splits)" in splits.skip_message
        assert "dataset_splits.minimum_rows_per_split failed" in splits.skip_message

        # New scored data since those splits: projected again (the triggered run re-splits and re-checks).
        report_scored(instance, "2026-01-02|conversations", 200)
        request = evaluate_retrain(instance)
        assert isinstance(request, dg.RunRequest) and request.tags["corpus/split_rows_source"] == "projected from scored rows"
        assert request.tags["corpus/split_rows"] == "train=378,val=21,test=21"


def test_daily_schedule_requests_yesterday_for_every_scraping_source():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 5, 3, tzinfo=timezone.utc))
    requests = list(daily_scrape_schedule(context))
    assert sorted(str(r.partition_key) for r in requests) == [
        "2026-01-04|reddit", "2026-01-04|synthetic", "2026-01-04|twitter", "2026-01-04|youtube"]


def test_todays_landing_folder_names_an_existing_partition(tmp_path):
    from datetime import datetime, timezone

    from corpus_platform.defs.partitions import corpus_partitions

    today = datetime.now(timezone.utc).date().isoformat()
    land(tmp_path, "conversations", today, "interactions.jsonl")
    result = tick(tmp_path)
    assert keys(result) == [f"{today}|conversations"]
    assert corpus_partitions.has_partition_key(str(result.run_requests[0].partition_key))
