"""Perplexity on assistant tokens: finite numbers, per-example rows, and a trained adapter beats its base."""

import json
import math

from corpus_platform.evaluation.perplexity import evaluate_perplexity
from corpus_platform.training.lora import LoraTrainingConfig, train_lora


def write_chat_jsonl(path, conversations):
    with open(path, "w", encoding="utf-8") as fh:
        for messages in conversations:
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def repetitive(n):
    """The same answer shape every time: easy for an adapter to learn, unknown to a random base model."""
    return [
        [
            {"role": "user", "content": f"Tell me about item {i}."},
            {"role": "assistant", "content": "Thanks, that was useful. You're welcome, happy to help!"},
        ]
        for i in range(n)
    ]


def test_adapter_lowers_nll_on_what_it_learned(tiny_model_dir, tmp_path):
    train = write_chat_jsonl(tmp_path / "train.jsonl", repetitive(24))
    test = write_chat_jsonl(tmp_path / "test.jsonl", repetitive(30)[24:] + [repetitive(1)[0][:1]])
    adapter = tmp_path / "adapter"
    config = LoraTrainingConfig(
        rank=8, alpha=16, dropout=0.0, learning_rate=2e-2, warmup_ratio=0.0, per_device_batch_size=4,
        gradient_accumulation_steps=1, max_steps=60, eval_steps=1000, logging_steps=10, max_seq_len=64,
    )
    train_lora(tiny_model_dir, train, test, adapter, config)

    result = evaluate_perplexity(tiny_model_dir, adapter, test, max_seq_len=64, batch_size=4)

    assert result["examples"] == 6 and result["skipped_examples"] == 1  # the last one has no assistant turn
    assert [row["index"] for row in result["per_example"]] == list(range(6))
    for side in ("base", "adapter"):
        summary = result[side]
        assert math.isfinite(summary["mean_nll"]) and summary["tokens"] == sum(r["tokens"] for r in result["per_example"])
        assert math.isclose(summary["perplexity"], math.exp(summary["mean_nll"]))
    weighted = sum(r["base_nll"] * r["tokens"] for r in result["per_example"]) / result["base"]["tokens"]
    assert math.isclose(weighted, result["base"]["mean_nll"], rel_tol=1e-6)
    # A random base is near-uniform over the vocabulary; the adapter has memorised the answer.
    assert result["base"]["mean_nll"] > 5
    assert result["adapter"]["mean_nll"] < 0.5 * result["base"]["mean_nll"]
    assert all(r["adapter_nll"] < r["base_nll"] for r in result["per_example"])
