"""The adapter's model card (README.md), rendered from the JSON files beside it.

Regenerated whenever one of them changes (training, evaluation, promotion), so the card never
disagrees with training_config.json, data_version.json, metrics.json, evaluation.json or promoted.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

HYPER_PARAMETERS = ("rank", "alpha", "dropout", "target_modules", "learning_rate", "lr_scheduler", "warmup_ratio",
                    "num_epochs", "max_steps", "per_device_batch_size", "gradient_accumulation_steps", "max_seq_len",
                    "eval_steps", "early_stopping_patience", "early_stopping_threshold", "save_total_limit", "seed",
                    "qlora")


def _load(adapter_dir: Path, name: str) -> dict | None:
    path = adapter_dir / name
    return json.loads(path.read_text()) if path.is_file() else None


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{value:.{digits}f}"
    return str(value)


def _evaluation_section(evaluation: dict | None, promotion: dict | None) -> list[str]:
    if evaluation is None:
        return ["Not evaluated yet: `adapter_evaluation` fills this section."]
    base, adapter = evaluation.get("base", {}), evaluation.get("adapter", {})
    out = [f"On {evaluation.get('examples', '?')} test examples of the same export (assistant tokens only):", "",
           "| | base | adapter |", "|---|---|---|",
           f"| perplexity | {_num(base.get('perplexity'))} | {_num(adapter.get('perplexity'))} |"]
    gen = evaluation.get("generations")
    if gen and gen.get("examples"):
        for metric in ("token_f1", "rouge_l"):
            out.append(f"| {metric} vs reference | {_num(gen['base'][metric])} | {_num(gen['adapter'][metric])} |")
    judge = evaluation.get("judge", {})
    out += ["", f"LLM judge: {judge.get('status', 'skipped')}"]
    if judge.get("status") == "ran":
        out.append(f"(model `{judge.get('model')}`, both orders; a win needs both orders to agree: "
                   f"{judge.get('wins')} wins, {judge.get('ties')} ties, {judge.get('losses')} losses)")
    stats = evaluation.get("statistics")
    if stats:
        lo, hi = stats.get("win_rate_ci", (None, None))
        out += ["", f"Statistics on {stats.get('source')} (n = {stats.get('n', '?')}): Mann-Whitney U "
                    f"{_num(stats.get('mann_whitney_u'))}, p = {_num(stats.get('p_value'))}, Cohen's d = "
                    f"{_num(stats.get('cohens_d'))} (positive = adapter better), win rate {_num(stats.get('win_rate'))} "
                    f"(95% bootstrap CI {_num(lo)} to {_num(hi)})."]
    if promotion is not None:
        verdict = "PROMOTED" if promotion.get("promoted") else "not promoted"
        out += ["", f"Promotion gate: **{verdict}** ({promotion.get('reason', '')})"]
    return out


def render_model_card(adapter_dir: Path | str, location: Path | str | None = None) -> str:
    """`location`: where the dir will live when it is rendered inside a temp dir that is renamed later."""
    adapter_dir = Path(adapter_dir)
    location = Path(location) if location else adapter_dir
    config = _load(adapter_dir, "training_config.json") or {}
    lineage = _load(adapter_dir, "data_version.json") or {}
    metrics = _load(adapter_dir, "metrics.json") or {}
    evaluation = _load(adapter_dir, "evaluation.json")
    promotion = _load(adapter_dir, "promoted.json") or (evaluation or {}).get("promotion")
    base = lineage.get("base_model") or config.get("base_model", "?")
    out = ["---", f"base_model: {json.dumps(str(base))}", "library_name: peft",
           "tags: [lora, corpus_platform]", "---", "", f"# LoRA adapter `{location.name}`", "",
           "## Base model", "", f"`{base}`" + (f" (loaded from `{lineage['base_model_path']}`)"
                          if lineage.get("base_model_path") not in (None, str(base)) else ""),
           "", "## Data version", ""]
    if lineage:
        out.append(f"Export `{lineage.get('export_version')}` (`{lineage.get('export_dir')}`):")
        out += ["", "| file | rows | sha256 |", "|---|---|---|"]
        out += [f"| {f.get('path')} | {f.get('rows')} | `{f.get('sha256', '')[:16]}…` |" for f in lineage.get("export_files", [])]
    else:
        out.append("No data_version.json (trained outside the pipeline).")
    out += ["", "## Hyper-parameters", "", "| parameter | value |", "|---|---|"]
    out += [f"| {k} | {config[k]} |" for k in HYPER_PARAMETERS if k in config]
    out += ["", "## Training", "", "| metric | value |", "|---|---|"]
    for key in ("steps", "max_steps", "best_step", "stopped_early", "resumed_from_step", "final_train_loss", "eval_loss",
                "train_eval_gap", "train_loss", "train_examples", "val_examples", "tokens_trained", "runtime_s"):
        if key in metrics:
            out.append(f"| {key} | {_num(metrics[key])} |")
    out += ["", "The shipped weights are the checkpoint with the lowest eval loss (`best_step`).", "",
            "![loss curves](loss_curves.png)", "", "## Evaluation", "", *_evaluation_section(evaluation, promotion),
            "", "## Usage", "", "```python", "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM", "",
            f"base = AutoModelForCausalLM.from_pretrained({str(lineage.get('base_model_path') or base)!r})",
            f"model = PeftModel.from_pretrained(base, {str(location)!r})",
            "merged = model.merge_and_unload()  # a plain transformers model with the LoRA folded in", "```", ""]
    return "\n".join(out)


def write_model_card(adapter_dir: Path | str, location: Path | str | None = None) -> Path:
    adapter_dir = Path(adapter_dir)
    target = adapter_dir / "README.md"
    tmp = adapter_dir / f".README.md.tmp-{os.getpid()}"
    tmp.write_text(render_model_card(adapter_dir, location), encoding="utf-8")
    os.replace(tmp, target)
    return target
