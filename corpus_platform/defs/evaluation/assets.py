"""adapter_evaluation: base model vs adapter on the test split the adapter was exported with."""

import json
import math
import os
from pathlib import Path

import dagster as dg

from corpus_platform.defs.resources import CorpusHome
from corpus_platform.defs.training.assets import latest_adapter, lora_adapter
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.evaluation.compare import evaluate_adapter
from corpus_platform.training.card import write_model_card


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _judge(training: TrainingSettings):
    if not training.judge_base_url:
        return None
    from corpus_platform.evaluation.judge import Judge

    api_key = training.judge_api_key or os.environ.get("JUDGE_API_KEY")
    return Judge(training.judge_base_url, training.judge_model, api_key=api_key)


def _metadata_number(value):
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else str(value)


@dg.asset(
    deps=[lora_adapter], group_name="evaluation", kinds={"pytorch"},
    description="Base vs adapter on the test split: perplexity, greedy generations with reference overlap, an "
                "optional LLM judge (both orders), Mann-Whitney U, Cohen's d and a bootstrap CI of the win rate.",
)
def adapter_evaluation(context: dg.AssetExecutionContext, corpus_home: CorpusHome, training: TrainingSettings) -> dg.MaterializeResult:
    adapter_dir = latest_adapter(corpus_home.layout.adapters)
    lineage = json.loads((adapter_dir / "data_version.json").read_text())
    test_path = Path(lineage["export_dir"]) / "openai_chat" / "test.jsonl"
    if not test_path.exists() or test_path.stat().st_size == 0:
        raise dg.Failure(description=f"no test rows in export {lineage['export_version']}: nothing to evaluate on")
    result, generations = evaluate_adapter(
        base_model_path=lineage["base_model_path"],
        adapter_dir=adapter_dir,
        test_path=test_path,
        max_seq_len=training.max_seq_len,
        batch_size=training.eval_batch_size,
        max_new_tokens=training.eval_max_new_tokens,
        judge=_judge(training),
        n_resamples=training.bootstrap_resamples,
        seed=training.stats_seed,
    )
    result["adapter"]["path"] = str(adapter_dir)
    result["export_version"] = lineage["export_version"]
    _write_atomic(adapter_dir / "generations.jsonl", "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in generations))
    _write_atomic(adapter_dir / "evaluation.json", json.dumps(result, indent=1))
    write_model_card(adapter_dir)

    base_ppl, adapter_ppl = result["base"]["perplexity"], result["adapter"]["perplexity"]
    stats, gen = result["statistics"], result["generations"]
    lo, hi = stats["win_rate_ci"]
    context.log.info(f"perplexity base {base_ppl:.3f} -> adapter {adapter_ppl:.3f} on {result['examples']} test examples; "
                     f"{stats['source']}: p={stats['p_value']:.3g}, d={stats['cohens_d']:.3g}, "
                     f"win rate {stats['win_rate']:.2f} [{lo:.2f}, {hi:.2f}]; judge: {result['judge']['status']}")
    overlap = {f"{side}_{metric}": _metadata_number(gen[side][metric]) for side in ("base", "adapter")
               for metric in ("token_f1", "rouge_l") if gen[side][metric] is not None}
    return dg.MaterializeResult(metadata={
        "test_examples": result["examples"],
        "base_perplexity": float(base_ppl),
        "adapter_perplexity": float(adapter_ppl),
        "perplexity_change_pct": round(100.0 * (adapter_ppl - base_ppl) / base_ppl, 2),
        **overlap,
        "generations": gen["examples"],
        "judge": result["judge"]["status"],
        "statistics_source": stats["source"],
        "p_value": _metadata_number(stats["p_value"]),
        "cohens_d": _metadata_number(stats["cohens_d"]),
        "win_rate": _metadata_number(stats["win_rate"]),
        "win_rate_ci_low": _metadata_number(lo),
        "win_rate_ci_high": _metadata_number(hi),
        "evaluation_path": dg.MetadataValue.path(str(adapter_dir / "evaluation.json")),
        "generations_path": dg.MetadataValue.path(str(adapter_dir / "generations.jsonl")),
        "adapter_path": dg.MetadataValue.path(str(adapter_dir)),
    })
