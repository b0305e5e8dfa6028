"""adapter_evaluation: base model vs adapter on the test split the adapter was exported with."""

import json
import os
from pathlib import Path

import dagster as dg

from corpus_platform.defs.resources import CorpusHome
from corpus_platform.defs.training.assets import latest_adapter, lora_adapter
from corpus_platform.defs.training.resources import TrainingSettings
from corpus_platform.evaluation.perplexity import evaluate_perplexity


@dg.asset(
    deps=[lora_adapter], group_name="evaluation", kinds={"pytorch"},
    description="Perplexity on assistant tokens of the test split, base model vs adapter; JSON beside the adapter.",
)
def adapter_evaluation(context: dg.AssetExecutionContext, corpus_home: CorpusHome, training: TrainingSettings) -> dg.MaterializeResult:
    adapter_dir = latest_adapter(corpus_home.layout.adapters)
    lineage = json.loads((adapter_dir / "data_version.json").read_text())
    test_path = Path(lineage["export_dir"]) / "openai_chat" / "test.jsonl"
    if not test_path.exists() or test_path.stat().st_size == 0:
        raise dg.Failure(description=f"no test rows in export {lineage['export_version']}: nothing to evaluate on")
    result = evaluate_perplexity(
        base_model_path=lineage["base_model_path"],
        adapter_dir=adapter_dir,
        test_path=test_path,
        max_seq_len=training.max_seq_len,
        batch_size=training.eval_batch_size,
    )
    result["adapter"]["path"] = str(adapter_dir)
    result["export_version"] = lineage["export_version"]
    tmp = adapter_dir / f".evaluation.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, adapter_dir / "evaluation.json")
    base_ppl, adapter_ppl = result["base"]["perplexity"], result["adapter"]["perplexity"]
    context.log.info(f"perplexity base {base_ppl:.3f} -> adapter {adapter_ppl:.3f} on {result['examples']} test examples")
    return dg.MaterializeResult(metadata={
        "test_examples": result["examples"],
        "base_perplexity": float(base_ppl),
        "adapter_perplexity": float(adapter_ppl),
        "perplexity_change_pct": round(100.0 * (adapter_ppl - base_ppl) / base_ppl, 2),
        "evaluation_path": dg.MetadataValue.path(str(adapter_dir / "evaluation.json")),
        "adapter_path": dg.MetadataValue.path(str(adapter_dir)),
    })
