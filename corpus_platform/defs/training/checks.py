"""Checks on the trained adapter. They read the adapter's own files, not DuckDB, so they need no pool."""

import json

import dagster as dg

from corpus_platform.defs.resources import CorpusHome
from corpus_platform.defs.training.assets import latest_adapter, lora_adapter, materialized_path
from corpus_platform.defs.training.resources import TrainingSettings


def loss_gap(metrics: dict) -> float | None:
    """Eval loss of the shipped checkpoint minus the train loss around its step (older metrics: run mean)."""
    train = metrics.get("final_train_loss", metrics.get("train_loss"))
    if metrics.get("eval_loss") is None or train is None:
        return None
    return float(metrics["eval_loss"]) - float(train)


@dg.asset_check(asset=lora_adapter, blocking=False,
                description="Overfitting: final eval loss - final train loss stays below `max_train_eval_gap`.")
def train_eval_loss_gap_below_threshold(context: dg.AssetCheckExecutionContext, corpus_home: CorpusHome,
                                        training: TrainingSettings) -> dg.AssetCheckResult:
    adapter = materialized_path(context.instance, lora_adapter.key, "path") or latest_adapter(corpus_home.layout.adapters)
    metrics = json.loads((adapter / "metrics.json").read_text())
    gap = loss_gap(metrics)
    metadata = {"adapter": dg.MetadataValue.path(str(adapter)), "threshold": training.max_train_eval_gap,
                "eval_loss": metrics.get("eval_loss"), "final_train_loss": metrics.get("final_train_loss")}
    if gap is None:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
                                   description="no eval loss (no validation rows): overfitting cannot be assessed")
    return dg.AssetCheckResult(
        passed=gap <= training.max_train_eval_gap, severity=dg.AssetCheckSeverity.ERROR,
        metadata={**metadata, "gap": round(gap, 4)},
        description=f"eval - train loss = {gap:.3f} ({'<=' if gap <= training.max_train_eval_gap else '>'} "
                    f"{training.max_train_eval_gap})",
    )
