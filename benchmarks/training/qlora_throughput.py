"""QLoRA training throughput on a Qwen3-8B-shaped model with random weights: tokens/s and peak GPU memory
for the HF + peft baseline and for SDPA attention, gradient checkpointing and sequence packing.

Random weights are enough: throughput and memory depend on shapes, not values. The checkpoint is
written once (bf16, ~16 GB) and loaded through the same 4-bit NF4 path the platform trains with
(`qlora_quantization_config` + `prepare_model_for_kbit_training`).

    python benchmarks/training/qlora_throughput.py --out benchmarks/training/results
    python benchmarks/training/qlora_throughput.py --smoke-cpu   # a tiny model on CPU: checks the loop, measures nothing

Without CUDA (and without --smoke-cpu) it exits with status 2 and says so; it never prints made-up numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from pathlib import Path

# Qwen3-8B's published shape.
QWEN3_8B = dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=1024, tie_word_embeddings=True)

# name: (attention implementation, gradient checkpointing, packing)
VARIANTS = {
    "baseline (eager attention, padded batches)": ("eager", False, False),
    "sdpa": ("sdpa", False, False),
    "sdpa + gradient checkpointing": ("sdpa", True, False),
    "sdpa + gradient checkpointing + packing": ("sdpa", True, True),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, default=Path("/tmp/qwen3-8b-shaped-random"),
                   help="where the random bf16 checkpoint is written once and reused")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--seq-len", type=int, default=2048, help="max tokens per row (padding width / packed row length)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=12, help="measured optimizer steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured steps first (CUDA kernels, allocator)")
    p.add_argument("--mean-len", type=int, default=600, help="mean example length in tokens (lognormal)")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--smoke-cpu", action="store_true", help="tiny model, no quantization, on CPU: a code check only")
    return p.parse_args(argv)


def example_lengths(n: int, mean_len: int, max_len: int, seed: int = 0) -> list[int]:
    """Chat-like lengths: lognormal (long tail), clipped to [32, max_len]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sigma = 0.8
    mu = math.log(mean_len) - sigma ** 2 / 2
    return [int(x) for x in np.clip(rng.lognormal(mu, sigma, n), 32, max_len)]


def batches(lengths: list[int], batch_size: int, seq_len: int, vocab: int, packing: bool, seed: int = 0):
    """Yield (input_ids, attention_mask, labels, real tokens). Padded: one example per row, padded to the
    longest in the batch. Packed: examples concatenated into full rows (no padding)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    if packing:  # classic packing: attention may cross example boundaries within a row
        tokens = torch.randint(0, vocab, (sum(lengths),), generator=g)
        rows = tokens[: (tokens.numel() // seq_len) * seq_len].view(-1, seq_len)
        for start in range(0, rows.shape[0] - batch_size + 1, batch_size):
            ids = rows[start:start + batch_size]
            yield ids, torch.ones_like(ids), ids.clone(), ids.numel()
        return
    for start in range(0, len(lengths) - batch_size + 1, batch_size):
        chunk = lengths[start:start + batch_size]
        width = max(chunk)
        ids = torch.zeros((batch_size, width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, n in enumerate(chunk):
            ids[i, :n] = torch.randint(0, vocab, (n,), generator=g)
            mask[i, :n] = 1
        labels = ids.masked_fill(mask == 0, -100)
        yield ids, mask, labels, int(mask.sum())


def write_random_checkpoint(model_dir: Path, shape: dict, dtype) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if (model_dir / "config.json").is_file():
        return
    print(f"writing a random {shape['num_hidden_layers']}-layer checkpoint to {model_dir} (once)...", flush=True)
    config = Qwen3Config(**shape)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen3ForCausalLM(config).to(dtype)
    model.save_pretrained(model_dir)
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load(model_dir: Path, attn: str, checkpointing: bool, quantize: bool):
    """The platform's QLoRA load path, with the attention implementation under test."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from corpus_platform.training.models import qlora_quantization_config

    if quantize:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, quantization_config=qlora_quantization_config(), dtype=torch.bfloat16,
            device_map={"": torch.cuda.current_device()}, attn_implementation=attn)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attn)
        if checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
    if checkpointing:
        model.config.use_cache = False
    return model


def run_variant(args, name: str, attn: str, checkpointing: bool, packing: bool, vocab: int) -> dict:
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    cuda = torch.cuda.is_available() and not args.smoke_cpu
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = load(args.model_dir, attn, checkpointing, quantize=cuda)
    model = get_peft_model(model, LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=args.rank, lora_alpha=args.rank, lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    need = (args.steps + args.warmup) * args.batch_size
    lengths = example_lengths(need * (4 if packing else 1), args.mean_len, args.seq_len)
    stream = batches(lengths, args.batch_size, args.seq_len, vocab, packing)
    model.train()
    tokens = padded = 0
    elapsed = 0.0
    try:
        for step in range(args.warmup + args.steps):
            ids, mask, labels, real = next(stream)
            ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cuda):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            if step >= args.warmup:
                elapsed += time.perf_counter() - started
                tokens += real
                padded += ids.numel()
        result = {"variant": name, "status": "ok", "tokens_per_s": tokens / elapsed, "real_tokens": tokens,
                  "padding_share": 1 - tokens / padded, "step_s": elapsed / args.steps, "final_loss": float(loss)}
    except torch.OutOfMemoryError:
        result = {"variant": name, "status": "OOM"}
    finally:
        if cuda:
            result_peak = torch.cuda.max_memory_allocated() / 2**30
        del model, optimizer
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    if cuda:
        result["peak_gpu_gib"] = result_peak
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.smoke_cpu:
        print("CUDA is not available: this QLoRA throughput benchmark needs an NVIDIA GPU (bitsandbytes 4-bit NF4). "
              "Nothing was measured. Run it on a GPU machine, or pass --smoke-cpu to check the code on a tiny model.",
              file=sys.stderr)
        return 2
    shape = TINY if args.smoke_cpu else QWEN3_8B
    if args.smoke_cpu:
        torch.set_num_threads(1)
        args.model_dir = args.model_dir.with_name(args.model_dir.name + "-tiny")
        args.seq_len, args.steps, args.warmup, args.mean_len = min(args.seq_len, 128), min(args.steps, 2), 1, 64
    write_random_checkpoint(args.model_dir, shape, torch.float32 if args.smoke_cpu else torch.bfloat16)
    results = []
    for name in args.variants:
        attn, checkpointing, packing = VARIANTS[name]
        print(f"-> {name}", flush=True)
        results.append(run_variant(args, name, attn, checkpointing, packing, shape["vocab_size"]))
        print(json.dumps(results[-1]), flush=True)
    device = "cpu (smoke test, not a measurement)" if args.smoke_cpu else torch.cuda.get_device_name(0)
    report = {"device": device, "model_shape": shape, "seq_len": args.seq_len, "batch_size": args.batch_size,
              "steps": args.steps, "warmup": args.warmup, "mean_example_len": args.mean_len, "lora_rank": args.rank,
              "torch": torch.__version__, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "smoke-cpu" if args.smoke_cpu else "qlora_throughput"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    lines = [f"device: {device}", "", "| variant | tokens/s | peak GPU GiB | padding | step s |", "|---|---|---|---|---|"]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"| {r['variant']} | {r['status']} | {r.get('peak_gpu_gib', float('nan')):.1f} | | |")
            continue
        lines.append(f"| {r['variant']} | {r['tokens_per_s']:.0f} | {r.get('peak_gpu_gib', float('nan')):.1f} | "
                     f"{100 * r['padding_share']:.0f}% | {r['step_s']:.2f} |")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
