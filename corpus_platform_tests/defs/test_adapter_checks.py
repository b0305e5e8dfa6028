"""The overfitting check on lora_adapter and the promotion gate on adapter_evaluation, run through Dagster
on crafted adapter files (no training needed): they read the path the latest materialization recorded."""

import json

import dagster as dg
import pytest

from corpus_platform.defs.evaluation.checks import promotion_gate
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.defs.training.checks import train_eval_loss_gap_below_threshold
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.evaluation.promotion import current_adapter


@pytest.fixture(scope="module")
def instance():
    """One instance for the module: every test reports its own materialization first, so the latest is its own."""
    with dg.instance_for_test() as instance:
        yield instance


def run_check(check, instance, home, **settings):
    context = dg.build_asset_check_context(instance=instance, resources={
        "corpus_home": CorpusHome(path=str(home)), "training": TrainingSettings(**settings)})
    try:
        return check(context)
    finally:
        context.op_execution_context.__exit__(None, None, None)  # tear resources down now, not at interpreter exit


def crafted_adapter(home, name, **files):
    path = home / "adapters" / name
    path.mkdir(parents=True)
    for filename, payload in files.items():
        (path / f"{filename}.json").write_text(json.dumps(payload))
    (home / "adapters" / "LATEST").write_text(name + "\n")
    return path


@pytest.mark.parametrize("eval_loss, train_loss, threshold, passed", [
    (1.9, 1.7, 0.3, True),
    (2.2, 1.7, 0.3, False),
    (2.2, 1.7, 0.6, True),   # the threshold is configuration
])
def test_loss_gap_check_reads_metrics_json(instance, tmp_path, eval_loss, train_loss, threshold, passed):
    # LATEST points elsewhere: the check must follow the path the materialization recorded.
    path = crafted_adapter(tmp_path, "a1",
                           metrics={"eval_loss": eval_loss, "final_train_loss": train_loss, "train_loss": 9.0})
    crafted_adapter(tmp_path, "a2", metrics={"eval_loss": 0.0, "final_train_loss": 9.0})
    instance.report_runless_asset_event(dg.AssetMaterialization("lora_adapter", metadata={"path": dg.MetadataValue.path(str(path))}))
    result = run_check(train_eval_loss_gap_below_threshold, instance, tmp_path, max_train_eval_gap=threshold)
    assert result.passed is passed
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["gap"].value == pytest.approx(eval_loss - train_loss)


def test_loss_gap_check_without_eval_loss_warns(instance, tmp_path):
    path = crafted_adapter(tmp_path, "a1", metrics={"eval_loss": None, "final_train_loss": 1.0})
    instance.report_runless_asset_event(dg.AssetMaterialization("lora_adapter", metadata={"path": dg.MetadataValue.path(str(path))}))
    result = run_check(train_eval_loss_gap_below_threshold, instance, tmp_path)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN


def statistics(p, d):
    return {"source": "per-example NLL", "p_value": p, "cohens_d": d, "win_rate": 0.8, "win_rate_ci": [0.6, 0.95]}


def test_promotion_gate_promotes_only_on_a_pass(instance, tmp_path):
    good = crafted_adapter(tmp_path, "good",
                           evaluation={"statistics": statistics(0.001, 0.8)})
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "adapter_evaluation", metadata={"adapter_path": dg.MetadataValue.path(str(good))}))
    passed = run_check(promotion_gate, instance, tmp_path)
    assert passed.passed and passed.metadata["promoted"].value is True
    assert current_adapter(tmp_path / "adapters") == good and (good / "promoted.json").is_file()
    assert "Promotion gate: **PROMOTED**" in (good / "README.md").read_text()

    weak = crafted_adapter(tmp_path, "weak",
                           evaluation={"statistics": statistics(0.001, 0.2)})
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "adapter_evaluation", metadata={"adapter_path": dg.MetadataValue.path(str(weak))}))
    failed = run_check(promotion_gate, instance, tmp_path)
    assert not failed.passed and "d = 0.2 <= 0.3" in failed.description
    assert current_adapter(tmp_path / "adapters") == good and not (weak / "promoted.json").exists()

    # The thresholds are configuration: a laxer gate promotes the same evaluation.
    lax = run_check(promotion_gate, instance, tmp_path, promotion_min_d=0.1)
    assert lax.passed and current_adapter(tmp_path / "adapters") == weak
