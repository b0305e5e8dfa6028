"""`make demo`'s command as a user runs it: a subprocess on a fresh CORPUS_HOME with no DAGSTER_HOME,
the tiny model standing in for SmolLM2. The runs land in the instance that `make ui` would show."""

import os
import subprocess
import sys

import dagster as dg

from corpus_platform.settings import REPO_ROOT


def test_demo_command_runs_everything_and_records_runs_for_the_ui(tmp_path, tiny_model_dir):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(CORPUS_HOME=str(tmp_path), CORPUS_BASE_MODEL=str(tiny_model_dir), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "corpus_platform.demo"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for needle in ["Rows per stage", "Decisions by stage and rule", "raw examples without a decision: 0",
                   "Asset checks: 50 passed, 0 failed", "Runs: 7 of 7 succeeded", "Adapter:", "perplexity base",
                   "make ui"]:
        assert needle in out.stdout, needle
    assert (tmp_path / "dagster" / "dagster.yaml").resolve() == (REPO_ROOT / "dagster.yaml").resolve()
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        runs = instance.get_runs()
        assert len(runs) == 7 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert {r.job_name for r in runs} == {"curate_partition", "train_and_evaluate"}
        partitions = instance.get_materialized_partitions(dg.AssetKey("scored_examples"))
        assert len(partitions) == 6
