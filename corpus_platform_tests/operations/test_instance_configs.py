"""The instance configs we ship (local and the production examples) stay valid Dagster config, and
the local one keeps the UI on loopback and the warehouse pool at one writer."""

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


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(Path(p).relative_to(REPO_ROOT)))
def test_every_config_keeps_the_single_writer_pool(path):
    assert yaml.safe_load(path.read_text())["concurrency"]["pools"]["default_limit"] == 1


def test_ui_binds_to_loopback_by_default():
    makefile = (REPO_ROOT / "Makefile").read_text()
    ui = next(line for line in makefile.splitlines() if "dagster dev" in line)
    assert "-h 127.0.0.1" in ui
