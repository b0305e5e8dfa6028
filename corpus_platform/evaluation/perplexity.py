"""Held-out perplexity of the base model vs base + LoRA adapter, on assistant tokens only.

Uses the same masking as training so the numbers measure what the adapter was trained to predict,
and reports per-example NLLs so paired comparisons (e.g. a sign test) are possible downstream.
"""

from __future__ import annotations

import math
from pathlib import Path

from corpus_platform.training.lora import IGNORE_INDEX, PaddingCollator, encode_conversations, load_chat_jsonl


def _nll_per_example(model, collate, features: list[dict], batch_size: int) -> list[tuple[float, int]]:
    """(sum of token NLL, supervised token count) for each feature, in order."""
    import torch
    import torch.nn.functional as F

    results = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            batch = collate(features[start:start + batch_size])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            labels = batch["labels"][:, 1:]
            nll = F.cross_entropy(
                logits[:, :-1].transpose(1, 2), labels.clamp(min=0), reduction="none"
            )
            mask = labels != IGNORE_INDEX
            sums = (nll * mask).sum(dim=1)
            counts = mask.sum(dim=1)
            results.extend((float(s), int(c)) for s, c in zip(sums, counts))
    return results


def _summary(rows: list[tuple[float, int]]) -> dict:
    total_nll = sum(s for s, _ in rows)
    tokens = sum(c for _, c in rows)
    mean_nll = total_nll / tokens if tokens else float("nan")
    return {"perplexity": math.exp(mean_nll) if tokens else float("nan"), "mean_nll": mean_nll, "tokens": tokens}


def evaluate_perplexity(base_model_path: Path | str, adapter_dir: Path | str, test_path: Path | str,
                        max_seq_len: int = 512, batch_size: int = 4) -> dict:
    """Perplexity = exp(token-weighted mean NLL) for base and base+adapter, plus per-example mean NLLs."""
    from peft import PeftModel

    from corpus_platform.training.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(base_model_path)
    features, indices, skipped = encode_conversations(tokenizer, load_chat_jsonl(test_path), max_seq_len)
    collate = PaddingCollator(tokenizer.pad_token_id)
    base_rows = _nll_per_example(model, collate, features, batch_size)
    # Computed before wrapping: PeftModel injects the LoRA layers into the base model in place.
    adapted = PeftModel.from_pretrained(model, str(adapter_dir))
    adapter_rows = _nll_per_example(adapted, collate, features, batch_size)
    per_example = [
        {"index": index, "base_nll": b_sum / count, "adapter_nll": a_sum / count, "tokens": count}
        for index, (b_sum, count), (a_sum, _) in zip(indices, base_rows, adapter_rows)
    ]
    return {
        "base": _summary(base_rows),
        "adapter": _summary(adapter_rows),
        "per_example": per_example,
        "examples": len(features),
        "skipped_examples": skipped,
    }
