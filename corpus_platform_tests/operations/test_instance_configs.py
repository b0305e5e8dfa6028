"""The instance configs we ship (local and the production examples) stay valid Dagster config, and
the local one keeps the UI on loopback; the multi-host examples keep the warehouse pool at one writer."""

from pathlib import Path

import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config_schema

from corpus_platform.settings import REPO_ROOT

CONFIGS = [REPO_ROOT / "dagster.yaml", *sorted((REPO_ROOT / "deploy").glob("dagster.*.yaml"))]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(Path(p).relative_to(REPO_ROOT)))
def test_instance_config_is_valid(path):
    result = validate_config(dagster_instance_config_schema(), yaml.safe_load(path.read_text()))
    assert result.success, [e.message for e in result.errors]


@pytest.mark.parametrize("path", CONFIGS[1:], ids=lambda p: str(Path(p).relative_to(REPO_ROOT)))
def test_multi_host_configs_keep_the_single_writer_pool(path):
    """Steps on several hosts cannot share the file lock: the pool serializes them instead."""
    assert yaml.safe_load(path.read_text())["concurrency"]["pools"]["default_limit"] == 1


def test_local_config_leaves_the_warehouse_to_the_file_lock():
    """On one machine warehouse_lock.py serializes DuckDB sessions; a one-slot pool would serialize whole
    steps (process start and compute) and hand the slot on by polling."""
    assert "pools" not in yaml.safe_load(CONFIGS[0].read_text())["concurrency"]


def test_ui_binds_to_loopback_by_default():
    makefile = (REPO_ROOT / "Makefile").read_text()
    ui = next(line for line in makefile.splitlines() if "dagster dev" in line)
    assert "-h 127.0.0.1" in ui
