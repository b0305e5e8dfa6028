"""Greedy generations of the base model and the adapter for the test prompts.

Each test conversation becomes a prompt (every turn before its last assistant turn) and a reference
(that turn). Both models answer with the same greedy decoding, so the only difference is the adapter:
the base answers come from the same weights with the LoRA layers switched off.
"""

from __future__ import annotations

from pathlib import Path

from corpus_platform.evaluation.overlap import rouge_l, token_f1
from corpus_platform.training.lora import load_chat_jsonl


def prompts_and_references(conversations: list[list[dict]]) -> list[dict]:
    """(index, prompt messages, reference) for conversations with a final assistant turn after a prompt."""
    items = []
    for index, messages in enumerate(conversations):
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if not last:  # no assistant turn, or one with nothing before it to answer
            continue
        items.append({"index": index, "prompt": messages[:last], "reference": messages[last]["content"]})
    return items


def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, batch_size: int = 4,
             max_prompt_len: int = 512) -> list[str]:
    """Greedy continuations of chat prompts, batched with left padding (decoder-only models)."""
    import torch
    from transformers import GenerationConfig

    gen_config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=tokenizer.eos_token_id)
    padding_side, truncation_side = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"  # keep the end of long prompts
    outputs = []
    try:
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                         for p in prompts[start:start + batch_size]]
                batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                  max_length=max_prompt_len, add_special_tokens=False)
                generated = model.generate(**batch, generation_config=gen_config)
                new_tokens = generated[:, batch["input_ids"].shape[1]:]
                outputs += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = padding_side, truncation_side
    return outputs


def generate_pairs(base_model_path: Path | str, adapter_dir: Path | str, test_path: Path | str, *,
                   max_new_tokens: int = 64, batch_size: int = 4, max_prompt_len: int = 512) -> list[dict]:
    """One row per test prompt: prompt, reference, base and adapter answers, and their overlap scores."""
    from peft import PeftModel

    from corpus_platform.training.models import load_model_and_tokenizer

    items = prompts_and_references(load_chat_jsonl(test_path))
    if not items:
        return []
    model, tokenizer = load_model_and_tokenizer(base_model_path)
    adapted = PeftModel.from_pretrained(model, str(adapter_dir))
    prompts = [item["prompt"] for item in items]
    with adapted.disable_adapter():
        base_answers = generate(adapted, tokenizer, prompts, max_new_tokens, batch_size, max_prompt_len)
    adapter_answers = generate(adapted, tokenizer, prompts, max_new_tokens, batch_size, max_prompt_len)
    rows = []
    for item, base, adapter in zip(items, base_answers, adapter_answers, strict=True):
        rows.append({
            **item, "base": base, "adapter": adapter,
            "base_token_f1": token_f1(base, item["reference"]), "adapter_token_f1": token_f1(adapter, item["reference"]),
            "base_rouge_l": rouge_l(base, item["reference"]), "adapter_rouge_l": rouge_l(adapter, item["reference"]),
        })
    return rows
