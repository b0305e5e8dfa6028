"""retrain_on_new_examples: enough newly scored rows since the last adapter request a new one.

Reads materialization metadata from the event log (never the DuckDB file, which a run may hold).
The run key is the newest scored event counted, so the same data never triggers twice."""

import dagster as dg

from corpus_platform.defs.curation.assets import scored_examples
from corpus_platform.defs.operations.jobs import train_and_evaluate_job
from corpus_platform.defs.training.assets import lora_adapter
from corpus_platform.defs.training.resources import TrainingSettings


def new_scored_rows(instance: dg.DagsterInstance) -> tuple[int, int | None, int]:
    """(rows in partitions scored since the last adapter, newest such storage id, partitions)."""
    last = instance.fetch_materializations(lora_adapter.key, limit=1).records
    after = last[0].storage_id if last else None
    latest: dict[str, tuple[int, int]] = {}
    cursor, newest = None, None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=scored_examples.key, after_storage_id=after),
            limit=1000, cursor=cursor, ascending=True,
        )
        for record in page.records:
            mat = record.asset_materialization
            rows = mat.metadata.get("dagster/row_count") if mat else None
            latest[str(record.partition_key)] = (record.storage_id, int(rows.value) if rows is not None else 0)
            newest = record.storage_id
        if not page.has_more:
            break
        cursor = page.cursor
    return sum(rows for _, rows in latest.values()), newest, len(latest)


@dg.sensor(job=train_and_evaluate_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED)
def retrain_on_new_examples(context: dg.SensorEvaluationContext, training: TrainingSettings):
    rows, newest, partitions = new_scored_rows(context.instance)
    if newest is None or rows < training.retrain_min_new_rows:
        return dg.SkipReason(f"{rows} new scored rows in {partitions} partitions since the last adapter; "
                             f"retraining needs {training.retrain_min_new_rows}")
    return dg.RunRequest(
        run_key=f"retrain-after-{newest}",
        tags={"corpus/trigger": "retrain_on_new_examples", "corpus/new_scored_rows": str(rows)},
    )
