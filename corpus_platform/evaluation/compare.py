"""Base vs adapter on the test split: perplexity, generations, reference overlap, an optional LLM judge,
and the statistics the promotion gate reads.

The gate's numbers (`statistics`) come from the judge when one is configured; without one they come
from the per-example NLLs, which every evaluation has, so the gate can always decide.
"""

from __future__ import annotations

from pathlib import Path

from corpus_platform.evaluation.generation import generate_pairs
from corpus_platform.evaluation.perplexity import evaluate_perplexity
from corpus_platform.evaluation.stats import compare

JUDGE_SKIPPED = "skipped (no endpoint configured)"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def evaluate_adapter(base_model_path: Path | str, adapter_dir: Path | str, test_path: Path | str, *,
                     max_seq_len: int = 512, batch_size: int = 4, max_new_tokens: int = 64, judge=None,
                     n_resamples: int = 10_000, seed: int = 0) -> tuple[dict, list[dict]]:
    """Returns (evaluation, generation rows). `judge`: a `Judge`, or None to skip it."""
    result = evaluate_perplexity(base_model_path, adapter_dir, test_path, max_seq_len=max_seq_len, batch_size=batch_size)
    if not result["per_example"]:
        raise ValueError(f"no test example in {test_path} has assistant tokens to evaluate on")
    rows = generate_pairs(base_model_path, adapter_dir, test_path, max_new_tokens=max_new_tokens,
                          batch_size=batch_size, max_prompt_len=max_seq_len)
    per = result["per_example"]
    stats_kw = dict(n_resamples=n_resamples, seed=seed)
    result["statistics_nll"] = {"source": "per-example NLL (paired sign for the win rate)",
                                **compare([r["base_nll"] for r in per], [r["adapter_nll"] for r in per],
                                          higher_is_better=False, **stats_kw)}
    result["generations"] = {
        "examples": len(rows), "max_new_tokens": max_new_tokens, "decoding": "greedy",
        **{side: {metric: _mean([r[f"{side}_{metric}"] for r in rows]) for metric in ("token_f1", "rouge_l")}
           for side in ("base", "adapter")},
    }
    if rows:
        result["statistics_token_f1"] = {"source": "token F1 vs reference",
                                         **compare([r["base_token_f1"] for r in rows], [r["adapter_token_f1"] for r in rows],
                                                   higher_is_better=True, **stats_kw)}
    if judge is None or not rows:
        result["judge"] = {"status": JUDGE_SKIPPED if judge is None else "skipped (no generations)"}
        result["statistics"] = result["statistics_nll"]
        return result, rows

    from corpus_platform.evaluation.judge import judge_both_orders

    verdicts = judge_both_orders(judge, rows)
    by_index = {v["index"]: v for v in verdicts}
    for row in rows:
        row["judge"] = by_index[row["index"]]
    judge_rows = [by_index[r["index"]] for r in rows]
    judge_stats = compare([v["base_score"] for v in judge_rows], [v["adapter_score"] for v in judge_rows],
                          higher_is_better=True, outcomes=[v["outcome"] for v in judge_rows], **stats_kw)
    result["judge"] = {
        "status": "ran", "model": judge.model, "orders": "both (a win needs both orders to agree)",
        "wins": judge_stats["wins"], "ties": judge_stats["ties"], "losses": judge_stats["losses"],
        "unparsed": sum(not v["parsed"] for v in judge_rows),
    }
    result["statistics"] = {"source": "LLM judge scores (both orders) and verdicts", **judge_stats}
    return result, rows
