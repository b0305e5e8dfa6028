"""LoRA fine-tuning on chat JSONL with the loss on assistant tokens only.

Built on transformers `Trainer` + peft: early stopping on eval loss with the best checkpoint loaded at
the end, checkpoints in a stable work dir so an interrupted run resumes where it stopped, QLoRA (4-bit
NF4) when CUDA is present, and W&B tracking through a callback. The finished adapter is written into
a hidden `.<name>.tmp-<pid>` beside `output_dir` and renamed into place only on success, so a listing of
the adapters folder never shows a half-written one: every visible adapter directory is complete, and
what a killed run leaves behind is hidden and removed by the next run in that folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corpus_platform.curation.hashing import file_sha256

IGNORE_INDEX = -100
LOSS_CURVES = "loss_curves.png"
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
    logging_steps: int = 1  # per-step train loss, learning rate and grad norm for tracking and loss curves
    early_stopping_patience: int = 3  # evaluations without improvement before training stops; 0 = off
    early_stopping_threshold: float = 0.01  # an eval-loss decrease must exceed this to count as improvement
    save_total_limit: int = 3  # checkpoints kept in the work dir (the best one is always kept too)
    quantization: str = "auto"  # auto: QLoRA 4-bit NF4 when CUDA is present | none | nf4 (requires CUDA)

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


RUN_SPEC = "run_spec.json"


def default_work_dir(output_dir: Path) -> Path:
    return output_dir.parent / ".work" / output_dir.name


def _finished(checkpoint: Path) -> bool:
    """Whether training had ended when this checkpoint was saved (max_steps reached or early stopping):
    the Trainer records its stop flag in the checkpoint's trainer_state.json."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    control = state.get("stateful_callbacks", {}).get("TrainerControl", {}).get("args", {})
    max_steps = state.get("max_steps") or 0
    return bool(control.get("should_training_stop")) or (max_steps > 0 and state.get("global_step", 0) >= max_steps)


def prepare_work_dir(work_dir: Path, spec: dict) -> Path | None:
    """Reuse `work_dir` only for the same run spec (config, base model, data hashes); returns the last
    complete checkpoint to resume from. A checkpoint is complete once its trainer_state.json exists
    (Trainer writes it last), so one cut short by a kill is deleted instead of crashing the resume.

    A checkpoint saved when training had already ended (a run killed while saving the adapter) is not
    resumed from: the Trainer would take one more optimizer step past the end (transformers 5 checks
    max_steps only after a step). The run resumes from the checkpoint before it and replays the last
    steps, which ends where the uninterrupted run ended; with no earlier checkpoint it starts over."""
    spec_path = work_dir / RUN_SPEC
    if spec_path.is_file() and json.loads(spec_path.read_text()) != spec:
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    _write_json(spec_path, spec)
    complete = []
    for path in work_dir.glob("checkpoint-*"):
        if not path.name.split("-", 1)[1].isdigit():
            continue
        if (path / "trainer_state.json").is_file():
            complete.append(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
    complete.sort(key=lambda p: int(p.name.split("-", 1)[1]))
    while complete and _finished(complete[-1]):
        shutil.rmtree(complete.pop())  # replayed from the one before (same data order, same RNG state)
    return complete[-1] if complete else None


def _train_loss_near(history: list[dict], step: int, window: int, fallback: float) -> float:
    """Mean logged train loss over the eval interval ending at `step`: the train loss of the shipped model."""
    losses = [row["loss"] for row in history if "loss" in row and step - window < row["step"] <= step]
    if not losses:
        losses = [row["loss"] for row in history if "loss" in row and row["step"] <= step][-1:]
    return float(sum(losses) / len(losses)) if losses else float(fallback)


def train_lora(base_model_path: Path | str, train_path: Path | str, val_path: Path | str,
               output_dir: Path | str, config: LoraTrainingConfig | None = None, *,
               work_dir: Path | str | None = None, lineage: dict | None = None, tracking=None,
               callbacks: tuple = ()) -> dict:
    """Train a LoRA adapter; returns its metrics.

    Writes adapter + tokenizer, training_config.json, metrics.json, loss_curves.png, a model card README.md
    and (given `lineage`) data_version.json. Checkpoints go to `work_dir` (default `<parent>/.work/<name>`):
    a rerun with the same spec resumes from the last one; it is deleted once the adapter is in place.
    `tracking` (a `WandbSettings`) opens a W&B run that gets the per-step history and the adapter artifact.
    """
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainingArguments, set_seed

    from corpus_platform.training.card import write_model_card
    from corpus_platform.training.models import load_model_for_training, use_qlora
    from corpus_platform.training.tracking import WandbTracker, plot_loss_curves

    config = config or LoraTrainingConfig()
    output_dir = Path(output_dir)
    work_dir = Path(work_dir) if work_dir else default_work_dir(output_dir)
    tmp_dir = output_dir.parent / f".{output_dir.name}.tmp-{os.getpid()}"
    _remove_stale_temps(output_dir.parent)
    qlora = use_qlora(config.quantization)
    spec = {"config": asdict(config), "base_model": str(base_model_path), "qlora": qlora,
            "train_sha256": file_sha256(Path(train_path)), "val_sha256": file_sha256(Path(val_path))}
    resume_from = prepare_work_dir(work_dir, spec)
    tracker = WandbTracker(tracking) if tracking is not None else None
    started = time.monotonic()
    try:
        set_seed(config.seed)
        model, tokenizer = load_model_for_training(base_model_path, qlora=qlora)
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
            output_dir=str(work_dir),
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
            save_steps=config.eval_steps,  # equal to eval_steps, as load_best_model_at_end requires
            save_total_limit=config.save_total_limit,
            load_best_model_at_end=do_eval,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
            logging_steps=config.logging_steps,
            seed=config.seed,
            report_to="none",  # W&B goes through our callback, so offline/online is decided in one place
            remove_unused_columns=False,
            include_num_input_tokens_seen="non_padding",
            disable_tqdm=True,
            bf16=qlora,
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        all_callbacks = list(callbacks)
        if do_eval and config.early_stopping_patience > 0:
            all_callbacks.append(EarlyStoppingCallback(config.early_stopping_patience, config.early_stopping_threshold))
        if tracker is not None:
            tracker.start(config={**spec["config"], **{k: v for k, v in spec.items() if k != "config"},
                                  "train_examples": len(train_features), "val_examples": len(val_features),
                                  "resume_from": resume_from.name if resume_from else None, **(lineage or {})},
                          name=output_dir.name)
            all_callbacks.append(tracker.callback())
        trainer = Trainer(
            model=model, args=args, train_dataset=train_features, eval_dataset=val_features if do_eval else None,
            data_collator=PaddingCollator(tokenizer.pad_token_id), processing_class=tokenizer, callbacks=all_callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # per-step dicts on stdout; the history goes to W&B and the PNG
        train_result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        state = trainer.state
        history = state.log_history
        best_step = state.best_global_step if do_eval and state.best_global_step else state.global_step
        eval_loss = None
        if do_eval:  # the best checkpoint is loaded: its eval loss is best_metric
            eval_loss = state.best_metric if state.best_metric is not None else trainer.evaluate()["eval_loss"]
        final_train_loss = _train_loss_near(history, best_step, config.eval_steps, train_result.training_loss)

        tmp_dir.mkdir(parents=True)
        model.save_pretrained(tmp_dir)
        tokenizer.save_pretrained(tmp_dir)
        metrics = {
            "train_loss": float(train_result.training_loss),  # mean over the whole run
            "final_train_loss": final_train_loss,
            "eval_loss": None if eval_loss is None else float(eval_loss),
            "train_eval_gap": None if eval_loss is None else float(eval_loss) - final_train_loss,
            "steps": int(state.global_step),
            "max_steps": int(state.max_steps),
            "best_step": int(best_step),
            "stopped_early": bool(do_eval and state.global_step < state.max_steps),
            "resumed_from_step": int(resume_from.name.split("-", 1)[1]) if resume_from else None,
            "qlora": qlora,
            "train_examples": len(train_features),
            "val_examples": len(val_features),
            "skipped_examples": skipped_train + skipped_val,
            "runtime_s": round(time.monotonic() - started, 3),
            "tokens_trained": int(state.num_input_tokens_seen),
            "train_history": [
                {k: row[k] for k in ("step", "loss", "learning_rate", "grad_norm") if k in row}
                for row in history if "loss" in row
            ],
            "eval_history": [{"step": row["step"], "eval_loss": row["eval_loss"]} for row in history if "eval_loss" in row],
            "torch_threads": torch.get_num_threads(),
        }
        if tracker is not None:
            metrics["wandb"] = tracker.info()
        plot_loss_curves(metrics["train_history"], metrics["eval_history"], tmp_dir / LOSS_CURVES,
                         best_step=best_step if do_eval else None, title=output_dir.name)
        _write_json(tmp_dir / "training_config.json", {**asdict(config), "base_model": str(base_model_path),
                                                       "qlora": qlora})
        _write_json(tmp_dir / "metrics.json", metrics)
        if lineage is not None:
            _write_json(tmp_dir / "data_version.json", lineage)
        write_model_card(tmp_dir, location=output_dir)
        _replace_dir(tmp_dir, output_dir)
        if tracker is not None:
            tracker.log_image("loss_curves", output_dir / LOSS_CURVES)
            tracker.log_adapter(output_dir, summary={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
            tracker.finish()
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if tracker is not None:
            tracker.finish(exit_code=1)
        if not any(work_dir.glob("checkpoint-*")):  # nothing to resume from
            _remove_work_dir(work_dir)
        raise
    _remove_work_dir(work_dir)  # the adapter is in place; resume state is useless now
    return metrics


def _remove_work_dir(work_dir: Path) -> None:
    shutil.rmtree(work_dir, ignore_errors=True)
    if work_dir.parent.name == ".work":
        try:
            work_dir.parent.rmdir()  # only when empty
        except OSError:
            pass


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _remove_stale_temps(parent: Path) -> None:
    """Clean up after runs that died mid-write (kill -9, OOM): their hidden temp dirs are deleted, and an
    adapter moved aside for a replacement that never landed is moved back."""
    if not parent.is_dir():
        return
    for path in sorted(parent.iterdir()):
        m = _TEMP.match(path.name)
        if not m or not path.is_dir() or path.is_symlink() or _pid_alive(int(m["pid"])):
            continue
        if m["kind"] == "old" and not (parent / m["name"]).exists():
            os.rename(path, parent / m["name"])
        else:
            shutil.rmtree(path, ignore_errors=True)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a finished dir into place; an older dst is moved aside (hidden) first and deleted after."""
    old = dst.parent / f".{dst.name}.old-{os.getpid()}"
    if dst.exists():
        os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)
