"""Fixtures for the perplexity tests: a tiny random model stands in for SmolLM2 so the suite stays fast and offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from corpus_platform.training.models import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
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
