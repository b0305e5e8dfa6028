"""The code location loads, validates with Dagster's own CLI, and has the shape the design card names."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from corpus_platform.definitions import make_definitions
from corpus_platform.settings import REPO_ROOT, SOURCES

ASSETS = ["raw_examples", "filtered_examples", "deduplicated_examples", "scored_examples", "duplicate_clusters",
          "judged_examples", "dataset_splits", "training_exports", "dataset_report", "lora_adapter", "adapter_evaluation",
          "distilled_examples", "review_queue", "archived_partitions"]


def test_definitions_load_with_every_asset_job_sensor_and_schedule(tmp_path):
    defs = make_definitions(tmp_path)
    graph = defs.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == sorted(ASSETS)
    assert defs.resolve_job_def("curate_partition") is not None
    assert defs.resolve_job_def("train_and_evaluate") is not None
    assert defs.resolve_job_def("delete_user_data") is not None
    assert {s.name for s in defs.sensors} == {"landing_files_sensor", "retrain_on_new_examples", "deletion_requests_sensor"}
    assert {s.name for s in defs.schedules} == {"daily_scrape_schedule"}


def test_partitions_are_source_by_day(tmp_path):
    defs = make_definitions(tmp_path)
    pdef = defs.resolve_assets_def("raw_examples").partitions_def
    assert isinstance(pdef, dg.MultiPartitionsDefinition)
    dims = {d.name: d.partitions_def for d in pdef.partitions_defs}
    assert set(dims) == {"date", "source"}
    assert dims["source"].get_partition_keys() == list(SOURCES)
    assert isinstance(dims["date"], dg.DailyPartitionsDefinition)
    assert defs.resolve_assets_def("dataset_splits").partitions_def is None


def test_every_warehouse_asset_and_check_declares_the_warehouse_pool(tmp_path):
    defs = make_definitions(tmp_path)
    graph = defs.resolve_asset_graph()
    opens_duckdb = [k for k in graph.get_all_asset_keys() if "duckdb" in graph.get(k).assets_def.required_resource_keys]
    assert len(opens_duckdb) >= 11
    for key in opens_duckdb:
        assert graph.get(key).assets_def.node_def.pool == "warehouse", key
    for checks_def in defs.asset_checks:  # checks that open the warehouse; the adapter checks read files
        if "duckdb" in checks_def.required_resource_keys:
            assert checks_def.node_def.pool == "warehouse", checks_def.node_def.name
        else:
            assert checks_def.node_def.pool is None, checks_def.node_def.name
    names = {c.node_def.name for c in defs.asset_checks if "duckdb" in c.required_resource_keys}
    assert len(names) == 5, sorted(names)  # the datasets' checks and the judge's
    # the seven checks of a source x day partition run inside the step that wrote it, on its connection
    in_steps = {(k.asset_key.path[-1], k.name) for key in opens_duckdb for k in graph.get(key).assets_def.check_keys}
    assert in_steps == {("raw_examples", "required_fields_present"), ("filtered_examples", "language_share"),
                        ("filtered_examples", "rejection_rate_within_trailing_week"),
                        ("filtered_examples", "toxicity_share_below_threshold"),
                        ("deduplicated_examples", "no_exact_duplicates_within_partition"),
                        ("scored_examples", "mean_quality_above_threshold"),
                        ("scored_examples", "every_example_accounted_for")}


def test_dagster_cli_validates_the_code_location(tmp_path):
    env = {**os.environ, "CORPUS_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").symlink_to(REPO_ROOT / "dagster.yaml")
    out = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed validation" in out.stdout + out.stderr


def test_instance_config_leaves_the_warehouse_to_its_file_lock(tmp_path):
    """Four runs at once; no pool limit: warehouse_lock.py serializes the DuckDB sessions themselves."""
    (tmp_path / "dagster.yaml").symlink_to(REPO_ROOT / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit is None
        assert config.run_queue_config.max_concurrent_runs == 4
