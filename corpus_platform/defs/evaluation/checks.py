"""The promotion gate: an adapter becomes `adapters/current` only when it is significantly and
meaningfully better than its base. Reads evaluation.json beside the adapter (no DuckDB, no pool)."""

import json

import dagster as dg

from corpus_platform.defs.evaluation.assets import adapter_evaluation
from corpus_platform.defs.resources import CorpusHome
from corpus_platform.defs.training.assets import latest_adapter, materialized_path
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.evaluation.promotion import gate, record_verdict
from corpus_platform.training.card import write_model_card


@dg.asset_check(asset=adapter_evaluation, blocking=False,
                description="Passes when p < promotion_max_p and Cohen's d > promotion_min_d (adapter better); "
                            "then marks the adapter promoted and points adapters/current at it.")
def promotion_gate(context: dg.AssetCheckExecutionContext, corpus_home: CorpusHome,
                   training: TrainingSettings) -> dg.AssetCheckResult:
    adapter = (materialized_path(context.instance, adapter_evaluation.key, "adapter_path")
               or latest_adapter(corpus_home.layout.adapters))
    evaluation = json.loads((adapter / "evaluation.json").read_text())
    verdict = record_verdict(adapter, gate(evaluation["statistics"], training.promotion_max_p, training.promotion_min_d))
    write_model_card(adapter)
    lo, hi = evaluation["statistics"]["win_rate_ci"]
    context.log.info(f"promotion gate {'PASSED' if verdict['passed'] else 'failed'} for {adapter.name}: {verdict['reason']}")
    return dg.AssetCheckResult(
        passed=verdict["passed"], severity=dg.AssetCheckSeverity.ERROR,
        description=("promoted: " if verdict["passed"] else "not promoted: ") + verdict["reason"],
        metadata={
            "adapter": dg.MetadataValue.path(str(adapter)),
            "promoted": verdict["passed"],
            "source": str(verdict["source"]),
            "p_value": _finite(verdict["p_value"]),
            "cohens_d": _finite(verdict["cohens_d"]),
            "win_rate": evaluation["statistics"]["win_rate"],
            "win_rate_ci_low": lo,
            "win_rate_ci_high": hi,
            "max_p": training.promotion_max_p,
            "min_d": training.promotion_min_d,
        },
    )


def _finite(value):
    """Metadata floats must be finite; an infinite d (no spread at all) is shown as text."""
    return value if isinstance(value, (int, float)) and abs(value) != float("inf") and value == value else str(value)
