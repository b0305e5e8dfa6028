"""LoRA fine-tuning on chat JSONL with the loss on assistant tokens only.

Built on transformers `Trainer` + peft so early stopping, checkpoint resume and W&B can be added as
callbacks/arguments later without rewriting the loop. Training writes into `<output_dir>.tmp-<pid>`
and renames it into place only on success, so a half-trained adapter is never visible.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

IGNORE_INDEX = -100
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraTrainingConfig:
    """Hyper-parameters (defaults from the project seeds; effective batch 16)."""

    rank: int = 16
    alpha: int = 16
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    num_epochs: float = 2
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    max_seq_len: int = 512
    eval_steps: int = 50
    max_steps: int = -1  # -1 = no cap; the demo caps steps to fit minutes on 2 CPU cores
    seed: int = 42
    logging_steps: int = 10

    @property
    def effective_batch_size(self) -> int:
        return self.per_device_batch_size * self.gradient_accumulation_steps


def load_chat_jsonl(path: Path | str) -> list[list[dict]]:
    """Read OpenAI chat JSONL (`{"messages": [{"role", "content"}, ...]}` per line)."""
    conversations = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            messages = record.get("messages") if isinstance(record, dict) else None
            if not isinstance(messages, list) or not all(
                isinstance(m, dict) and "role" in m and "content" in m for m in messages
            ):
                raise ValueError(f"{path}:{lineno}: expected {{'messages': [{{'role', 'content'}}, ...]}}")
            conversations.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return conversations


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _prompt_before(tokenizer, messages: list[dict], i: int, upto: str) -> str | None:
    """Text preceding assistant turn i's content. A leading assistant turn has no prefix to render, and
    templates may inject a default system prompt, so its content is located in `upto` instead."""
    if i:
        return _render(tokenizer, messages[:i], add_generation_prompt=True)
    try:
        before = _render(tokenizer, [], add_generation_prompt=True)
    except Exception:  # some templates index messages[0]
        before = None
    if before is not None and upto.startswith(before):
        return before
    content = messages[0]["content"]
    at = upto.rfind(content) if content else -1
    return upto[:at] if at >= 0 else None


def tokenize_with_assistant_mask(tokenizer, messages: list[dict], max_len: int) -> dict:
    """Tokenize a conversation with its chat template; labels are -100 except assistant content + end marker.

    Assistant spans are found by rendering prefixes: the text of turns < i plus the generation prompt must
    be a string prefix of the text including turn i (true for ChatML); the difference, minus trailing
    whitespace, is the assistant content and its end-of-turn marker. Character spans are mapped to tokens
    through the fast tokenizer's offsets, so BPE merges across the boundary cannot misalign labels.
    Truncation keeps the first `max_len` tokens; labels stay aligned (they may become all -100).
    """
    full = _render(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        upto = _render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        before = _prompt_before(tokenizer, messages, i, upto)
        if before is None or not upto.startswith(before) or not full.startswith(upto):
            raise ValueError(
                "chat template is not prefix-consistent (rendering the first turns is not a prefix of "
                "rendering the whole conversation), so assistant tokens cannot be located; use a ChatML-style template"
            )
        end = len(before) + len(upto[len(before):].rstrip())
        if end > len(before):
            spans.append((len(before), end))
    if not getattr(tokenizer, "is_fast", True):
        raise TypeError("assistant masking needs a fast tokenizer (offset mapping)")
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(enc["input_ids"])
    labels = [IGNORE_INDEX] * len(input_ids)
    for t, (start, stop) in enumerate(enc["offset_mapping"]):
        if stop > start and any(start < s_end and stop > s_start for s_start, s_end in spans):
            labels[t] = input_ids[t]
    input_ids, labels = input_ids[:max_len], labels[:max_len]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def encode_conversations(tokenizer, conversations: list[list[dict]], max_len: int) -> tuple[list[dict], list[int], int]:
    """Encode and drop examples without any supervised token left; returns (features, kept indices, skipped)."""
    features, kept, skipped = [], [], 0
    for index, messages in enumerate(conversations):
        feature = tokenize_with_assistant_mask(tokenizer, messages, max_len)
        # The first token is never predicted (causal shift), so it does not count as supervised.
        if all(label == IGNORE_INDEX for label in feature["labels"][1:]):
            skipped += 1
            continue
        features.append(feature)
        kept.append(index)
    return features, kept, skipped


class PaddingCollator:
    """Right-pads input_ids (pad id), attention_mask (0) and labels (-100) to the longest in the batch."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        pads = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        return {
            key: torch.tensor([list(f[key]) + [pad] * (width - len(f[key])) for f in features], dtype=torch.long)
            for key, pad in pads.items()
        }


def train_lora(base_model_path: Path | str, train_path: Path | str, val_path: Path | str,
               output_dir: Path | str, config: LoraTrainingConfig | None = None) -> dict:
    """Train a LoRA adapter; writes adapter + tokenizer + training_config.json + metrics.json; returns metrics."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed

    from corpus_platform.training.models import load_model_and_tokenizer

    config = config or LoraTrainingConfig()
    output_dir = Path(output_dir)
    tmp_dir = output_dir.parent / f"{output_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    started = time.monotonic()
    try:
        set_seed(config.seed)
        model, tokenizer = load_model_and_tokenizer(base_model_path)
        train_features, _, skipped_train = encode_conversations(tokenizer, load_chat_jsonl(train_path), config.max_seq_len)
        val_features, _, skipped_val = encode_conversations(tokenizer, load_chat_jsonl(val_path), config.max_seq_len)
        if not train_features:
            raise ValueError(f"no trainable examples in {train_path} (skipped {skipped_train})")
        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.CAUSAL_LM, r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
        ))
        do_eval = bool(val_features)
        args = TrainingArguments(
            output_dir=str(tmp_dir),
            per_device_train_batch_size=config.per_device_batch_size,
            per_device_eval_batch_size=config.per_device_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler,
            warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of total steps in transformers 5
            num_train_epochs=config.num_epochs,
            max_steps=config.max_steps,
            eval_strategy="steps" if do_eval else "no",
            eval_steps=config.eval_steps,
            save_strategy="steps",
            save_steps=config.eval_steps,
            save_total_limit=2,
            logging_steps=config.logging_steps,
            seed=config.seed,
            report_to="none",
            remove_unused_columns=False,
            include_num_input_tokens_seen="non_padding",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=train_features, eval_dataset=val_features if do_eval else None,
            data_collator=PaddingCollator(tokenizer.pad_token_id), processing_class=tokenizer,
        )
        train_result = trainer.train()
        evals = [row for row in trainer.state.log_history if "eval_loss" in row]
        eval_loss = None
        if do_eval:  # evaluate at the end unless the last step already did
            final = evals[-1] if evals and evals[-1]["step"] == trainer.state.global_step else trainer.evaluate()
            eval_loss = final["eval_loss"]

        for checkpoint in tmp_dir.glob("checkpoint-*"):  # resume state is useless once training finished
            shutil.rmtree(checkpoint)
        model.save_pretrained(tmp_dir)
        tokenizer.save_pretrained(tmp_dir)
        metrics = {
            "train_loss": float(train_result.training_loss),
            "eval_loss": None if eval_loss is None else float(eval_loss),
            "steps": int(trainer.state.global_step),
            "train_examples": len(train_features),
            "val_examples": len(val_features),
            "skipped_examples": skipped_train + skipped_val,
            "runtime_s": round(time.monotonic() - started, 3),
            "tokens_trained": int(trainer.state.num_input_tokens_seen),
            "eval_history": [
                {"step": row["step"], "eval_loss": row["eval_loss"]}
                for row in trainer.state.log_history if "eval_loss" in row
            ],
            "torch_threads": torch.get_num_threads(),
        }
        _write_json(tmp_dir / "training_config.json", {**asdict(config), "base_model": str(base_model_path)})
        _write_json(tmp_dir / "metrics.json", metrics)
        _replace_dir(tmp_dir, output_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return metrics


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a finished dir into place; an older dst is moved aside first and deleted after."""
    old = dst.parent / f"{dst.name}.old-{os.getpid()}"
    if dst.exists():
        os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)
