"""Shared fixtures. Everything runs offline: a tiny config-built model stands in for SmolLM2."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from corpus_platform.training.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(autouse=True)
def single_torch_thread():
    """The tiny model's matmuls are too small to gain from threads, and when another job shares the 2 cores
    multi-threaded torch slows ~10x (measured); the library itself keeps torch's defaults."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_chat_jsonl(path, conversations):
    with open(path, "w", encoding="utf-8") as fh:
        for messages in conversations:
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def _arithmetic(n, start=0):
    return [
        [
            {"role": "user", "content": f"Add {i} and {i + 1}."},
            {"role": "assistant", "content": f"{i} plus {i + 1} is {2 * i + 1}."},
        ]
        for i in range(start, start + n)
    ]


_LINEAGE = {
    "base_model": "tiny-test-model",
    "base_model_path": None,  # filled in by the fixture
    "export_version": "abc123def456",
    "export_dir": "/nowhere/exports/abc123def456",
    "export_files": [{"format": "openai_chat", "split": "train", "path": "openai_chat/train.jsonl", "rows": 24,
                      "sha256": "0" * 64}],
}


@pytest.fixture(scope="session")
def tracked_adapter(tiny_model_dir, tmp_path_factory):
    """One tracked training run (W&B offline, lineage) shared by the versioning, merge, W&B, loss-curve and
    evaluation tests: training is the slow part, the assertions are cheap."""
    from corpus_platform.training.lora import LoraTrainingConfig, train_lora
    from corpus_platform.training.tracking import WandbSettings

    root = tmp_path_factory.mktemp("tracked")
    train = _write_chat_jsonl(root / "train.jsonl", _arithmetic(24))
    val = _write_chat_jsonl(root / "val.jsonl", _arithmetic(4, start=100))
    out = root / "adapters" / "20260101T000000Z-abc123def456"
    config = LoraTrainingConfig(rank=4, alpha=8, dropout=0.0, learning_rate=1e-2, warmup_ratio=0.0,
                                per_device_batch_size=4, gradient_accumulation_steps=1, max_steps=6, eval_steps=2,
                                max_seq_len=64)
    lineage = {**_LINEAGE, "base_model_path": str(tiny_model_dir)}
    metrics = train_lora(tiny_model_dir, train, val, out, config, lineage=lineage,
                         tracking=WandbSettings(dir=str(root / "wandb"), project="corpus-tests", mode="offline"))
    return {"out": out, "metrics": metrics, "train": train, "val": val, "root": root, "config": config}
