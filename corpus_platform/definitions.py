"""The Dagster code location: assets, checks, jobs, sensors and resources of every domain."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from corpus_platform.defs.curation import assets as curation_assets, checks as curation_checks
from corpus_platform.defs.curation.resources import CurationSettings, LLMJudge, judge_from_env
from corpus_platform.defs.distillation import assets as distillation_assets
from corpus_platform.defs.distillation.resources import DistillationSettings
from corpus_platform.defs.evaluation import assets as evaluation_assets, checks as evaluation_checks
from corpus_platform.defs.ingest import assets as ingest_assets, sensors as ingest_sensors
from corpus_platform.defs.ingest.resources import live_source_resources
from corpus_platform.defs.operations import erasure as erasure_defs, jobs, schedules, sensors as operations_sensors
from corpus_platform.defs.operations import assets as operations_assets
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.defs.review import assets as review_assets
from corpus_platform.defs.review.resources import ReviewSettings
from corpus_platform.defs.training import assets as training_assets, checks as training_checks, sensors as training_sensors
from corpus_platform.defs.training.resources import EMBEDDED_BASE_MODEL, TrainingSettings
from corpus_platform.settings import Layout


# Every step still runs in its own process, but forked from a server that has already imported this code
# location and what a step imports lazily (defs/forkserver.py): a spawned step re-imports dagster, polars,
# duckdb and torch first (~1.75 s of CPU a step).
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["corpus_platform.defs.forkserver"]}}})


def make_definitions(home: Path | None = None, *, curation: CurationSettings | None = None,
                     training: TrainingSettings | None = None, judge: LLMJudge | None = None,
                     sources: dict[str, dg.ConfigurableResource] | None = None,
                     distillation: DistillationSettings | None = None,
                     review: ReviewSettings | None = None) -> dg.Definitions:
    layout = Layout(Path(home)) if home else Layout.from_env()
    return dg.Definitions(
        assets=dg.load_assets_from_modules([ingest_assets, curation_assets, training_assets, evaluation_assets,
                                            operations_assets, distillation_assets, review_assets]),
        asset_checks=dg.load_asset_checks_from_modules([curation_checks, training_checks, evaluation_checks]),
        jobs=[jobs.curate_partition_job, jobs.train_and_evaluate_job, erasure_defs.delete_user_data,
              review_assets.build_review_queue_job],
        sensors=[ingest_sensors.landing_files_sensor, training_sensors.retrain_on_new_examples,
                 operations_sensors.deletion_requests_sensor],
        schedules=[schedules.daily_scrape_schedule],
        executor=STEP_EXECUTOR,
        resources={
            "duckdb": DuckDBResource(database=str(layout.warehouse)),
            "corpus_home": CorpusHome(path=str(layout.home)),
            "curation": curation or CurationSettings(),
            "judge": judge or judge_from_env(),
            "training": training or TrainingSettings(base_model=os.environ.get("CORPUS_BASE_MODEL", EMBEDDED_BASE_MODEL)),
            "archive": operations_assets.archive_resource_from_env(),
            "distillation": distillation or DistillationSettings.from_env(),
            "review": review or ReviewSettings(),
            **live_source_resources(),
            **(sources or {}),
        },
    )


defs = make_definitions()
