"""retrain_on_new_examples: enough newly scored rows since the last adapter, and data ready to train on,
request a new adapter.

Reads materialization metadata and check evaluations from the event log (never the DuckDB file, which a
run may hold). Ready means: the latest evaluation of every scored_examples check, on every partition,
did not fail; and every split would reach its minimum rows. The split sizes are the latest dataset_splits
metadata when it is newer than all scored data, else projected from the scored rows and the split
ratios (the triggered run re-splits, and its blocking checks still guard training). The run key is the
newest scored event counted, so the same data never triggers twice."""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from corpus_platform.defs.curation import checks as curation_checks, partition_checks
from corpus_platform.defs.curation.assets import dataset_splits, scored_examples
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.operations.jobs import train_and_evaluate_job
from corpus_platform.defs.training.assets import lora_adapter
from corpus_platform.defs.training.resources import TrainingSettings

SCORED_CHECKS = partition_checks.check_keys("scored_examples")  # keys, not check definitions: they run in the asset's step
SPLIT_CHECKS = [curation_checks.no_split_leakage, curation_checks.minimum_rows_per_split]


def scored_partitions(instance: dg.DagsterInstance) -> dict[str, tuple[int, int]]:
    """partition -> (storage id, rows) of its latest scored_examples materialization."""
    latest: dict[str, tuple[int, int]] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=scored_examples.key), limit=1000, cursor=cursor, ascending=True)
        for record in page.records:
            mat = record.asset_materialization
            rows = mat.metadata.get("dagster/row_count") if mat else None
            latest[str(record.partition_key)] = (record.storage_id, int(rows.value) if rows is not None else 0)
        if not page.has_more:
            return latest
        cursor = page.cursor


def new_scored_rows(instance: dg.DagsterInstance, partitions: dict[str, tuple[int, int]] | None = None
                    ) -> tuple[int, int | None, int]:
    """(rows in partitions scored since the last adapter, newest such storage id, partitions)."""
    partitions = scored_partitions(instance) if partitions is None else partitions
    last = instance.fetch_materializations(lora_adapter.key, limit=1).records
    after = last[0].storage_id if last else -1
    new = {p: v for p, v in partitions.items() if v[0] > after}
    newest = max((sid for sid, _ in new.values()), default=None)
    return sum(rows for _, rows in new.values()), newest, len(new)


def _check_keys(check_defs) -> list[dg.AssetCheckKey]:
    return [key for checks_def in check_defs for key in checks_def.check_keys]


def _not_green(instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey]) -> list[str]:
    """'asset.check [partition]: status' for each latest check evaluation that did not succeed."""
    problems = []
    for info in instance.event_log_storage.get_asset_check_partition_info(keys):
        status = info.latest_execution_status
        if status != AssetCheckExecutionRecordStatus.SUCCEEDED:
            where = f" [{info.partition_key}]" if info.partition_key else ""
            state = "failed" if status == AssetCheckExecutionRecordStatus.FAILED else "not evaluated (run pending or crashed)"
            problems.append(f"{info.check_key.asset_key.to_user_string()}.{info.check_key.name}{where} {state}")
    return sorted(problems)


def split_rows(instance: dg.DagsterInstance, partitions: dict[str, tuple[int, int]], curation: CurationSettings
               ) -> tuple[dict[str, int], str]:
    """Rows per split and where they come from (see the module docstring)."""
    newest_scored = max((sid for sid, _ in partitions.values()), default=-1)
    last = instance.fetch_materializations(dataset_splits.key, limit=1).records
    if last and last[0].storage_id > newest_scored and last[0].asset_materialization:
        meta = last[0].asset_materialization.metadata
        return {s: int(meta[f"{s}_rows"].value) if f"{s}_rows" in meta else 0 for s in ("train", "val", "test")}, "dataset_splits"
    total = sum(rows for _, rows in partitions.values())
    ratios = {"train": curation.train_ratio, "val": curation.val_ratio, "test": curation.test_ratio}
    return {s: int(total * r) for s, r in ratios.items()}, "projected from scored rows"


def readiness(instance: dg.DagsterInstance, partitions: dict[str, tuple[int, int]], curation: CurationSettings
              ) -> tuple[list[str], dict[str, int], str]:
    """(problems, split rows, their source); no problems = ready to train."""
    problems = _not_green(instance, SCORED_CHECKS)
    rows, source = split_rows(instance, partitions, curation)
    if source == "dataset_splits":  # the splits are current: their checks speak for this data
        problems += _not_green(instance, _check_keys(SPLIT_CHECKS))
    problems += [f"{s} split {rows[s]} rows < {n} ({source})" for s, n in curation.min_rows().items() if rows[s] < n]
    return problems, rows, source


@dg.sensor(job=train_and_evaluate_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED)
def retrain_on_new_examples(context: dg.SensorEvaluationContext, training: TrainingSettings, curation: CurationSettings):
    partitions = scored_partitions(context.instance)
    rows, newest, count = new_scored_rows(context.instance, partitions)
    if newest is None or rows < training.retrain_min_new_rows:
        return dg.SkipReason(f"{rows} new scored rows in {count} partitions since the last adapter; "
                             f"retraining needs {training.retrain_min_new_rows}")
    problems, splits, source = readiness(context.instance, partitions, curation)
    if problems:
        return dg.SkipReason(f"{rows} new scored rows, but not ready to train: " + "; ".join(problems))
    return dg.RunRequest(
        run_key=f"retrain-after-{newest}",
        tags={"corpus/trigger": "retrain_on_new_examples", "corpus/new_scored_rows": str(rows),
              "corpus/split_rows": ",".join(f"{s}={n}" for s, n in splits.items()), "corpus/split_rows_source": source},
    )

