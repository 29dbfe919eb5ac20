"""Training throughput of the seed recipe and of each of our changes to it, on the default model, and MFU
against a measured GEMM peak.

    python benchmarks/train_throughput.py [--examples 32] [--device cpu|cuda] [--gpt2-124m]

Run after `dvc repro tokenize base` (it reads data/tokenized and models/base). Outside CI: about 5 minutes
on 2 cores.

Recipes, each adding one change to the one before, on the same model, data and optimizer:
  seed          the seed notebooks' recipe: every example padded to 512 tokens, batch 4, full fine-tuning,
                loss on all tokens (padding included)
  packed        batch 16 packed into rows of train.max_length, loss on the reply only
  lora          + LoRA adapters (train.lora) on every decoder block, the base weights frozen
  lora_top      + adapters on the top train.lora.layers blocks only: backward stops below them
  reply_logits  + the LM head only at loss positions (the train stage's recipe)
A model without pretrained weights (the scratch profile, --gpt2-124m) runs seed, packed and reply_logits:
LoRA only makes sense on weights worth keeping.

"Useful" tokens are reply tokens: the ones the chatbot is trained to produce. Every recipe is scored by
useful tokens per second, whatever it computes besides. MFU counts the FLOPs each recipe's method needs on
real tokens (forward of every real token, the LM head where that recipe takes its loss; backward: weights
and activations for full fine-tuning, activations of the adapted blocks only for LoRA), divided by time
and by the peak of a large fp32 (bf16 on CUDA) matrix multiply measured on the same device. LoRA needs
fewer FLOPs per token than full fine-tuning, so its speed-up is more than its gain in MFU.
Results: metrics/benchmark.json (merged per device) and a table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import GPT2Config, GPT2LMHeadModel

from medchat.model.loading import build_model, quiet_progress
from medchat.model.tokenization import IGNORE_INDEX, load_saved_tokenizer
from medchat.params import load_params
from medchat.training.lora import with_lora
from medchat.training.packing import LossPositionsOnly, PackingCollator

OUT = Path("metrics/benchmark.json")
BASE = "models/base"
SEED_LENGTH, SEED_BATCH, BATCH = 512, 4, 16
# (name, packed rows, LoRA blocks: None = full fine-tuning, 0 = every block, "top" = train.lora.layers, logits)
RECIPES = (
    ("seed", False, None, "all"),
    ("packed", True, None, "all"),
    ("lora", True, 0, "all"),
    ("lora_top", True, "top", "all"),
    ("reply_logits", True, "top", "loss"),
)


def gemm_peak(device: str, dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a square matrix multiply, the best the device does on dense work."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(3):
        sync(device)
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(device)
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - started))
    return best


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class SeedCollator:
    """Pad to a fixed length; labels are the input ids everywhere (padding included), as in the seed."""

    def __init__(self, pad_id: int, length: int):
        self.pad_id, self.length = pad_id, length

    def __call__(self, features):
        ids = torch.full((len(features), self.length), self.pad_id, dtype=torch.long)
        for r, f in enumerate(features):
            ids[r, : len(f["input_ids"])] = torch.as_tensor(f["input_ids"][: self.length])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def block_shape(model) -> tuple[int, int, int, int]:
    """(blocks, weights per block, hidden size, vocabulary) of a decoder-only model, counted from its modules."""
    blocks = max((m for m in model.modules() if isinstance(m, torch.nn.ModuleList)), key=len)
    per_block = sum(p.numel() for name, p in blocks[0].named_parameters() if p.dim() == 2 and "lora_" not in name)
    head = model.get_output_embeddings().weight
    return len(blocks), per_block, head.shape[1], head.shape[0]


def required_flops(shape, examples: list[dict], lora_blocks: int | None, loss_everywhere: bool) -> float:
    """FLOPs a recipe's method needs on the real tokens of `examples` (a multiply-add = 2 FLOPs).

    Forward: every block on every token, causal attention within the example, the head at loss positions.
    Backward: full fine-tuning 2x the forward (activation and weight gradients); LoRA the activation gradients
    of the head and of the adapted blocks only (the adapters' own weights are negligible)."""
    layers, per_block, d, vocab = shape
    total = 0.0
    for e in examples:
        n = len(e["input_ids"])
        heads = n if loss_everywhere else sum(label != IGNORE_INDEX for label in e["labels"])
        block = 2 * per_block * n + 2 * d * n * (n + 1)  # weights, then QK^T and AV over the causal half
        forward = layers * block + 2 * vocab * d * heads
        backward = 2 * forward if lora_blocks is None else (lora_blocks or layers) * block + 2 * vocab * d * heads
        total += forward + backward
    return total


def run(model, collate, examples, batch, device):
    # fused, as the Trainer builds it (its default optim on torch >= 2.8): one kernel for all parameters
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    batches = [examples[i : i + batch] for i in range(0, len(examples) - batch + 1, batch)]
    model.train()
    step(model, optimizer, collate, batches[0], device)  # warm-up (allocations, kernel choice)
    sync(device)
    started = time.perf_counter()
    for chunk in batches:
        step(model, optimizer, collate, chunk, device)
    sync(device)
    seconds = time.perf_counter() - started
    useful = sum(sum(label != IGNORE_INDEX for label in e["labels"]) for e in examples[: len(batches) * batch])
    return seconds, useful


def step(model, optimizer, collate, chunk, device) -> None:
    batch = {k: v.to(device) for k, v in collate([dict(e) for e in chunk]).items()}
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def load_model(size: str, params, tokenizer, device: str):
    torch.manual_seed(params.seed)
    if size != "gpt2-124m":
        return build_model(params.model, tokenizer, 0.0, weights=BASE).to(device)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=SEED_LENGTH,
        n_layer=12,
        n_embd=768,
        n_head=12,
        use_cache=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=32, help="examples timed per recipe (a multiple of 16)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--gpt2-124m", action="store_true", help="also a GPT-2-124M config from scratch (for a GPU)")
    args = parser.parse_args()
    quiet_progress()
    params = load_params()
    tokenizer = load_saved_tokenizer("data/tokenized/tokenizer")
    # in memory, as the stages load it: filter and shuffle must not write cache files into the DVC output
    data = load_from_disk("data/tokenized/datasets", keep_in_memory=True)["train"]
    data = data.filter(lambda task: task in params.train.tasks, input_columns="task").shuffle(seed=params.seed)
    examples = [{"input_ids": i, "labels": labels} for i, labels in zip(data["input_ids"], data["labels"])]
    examples = examples[: args.examples]
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    peak = gemm_peak(args.device, dtype)
    pretrained = params.model.name != "scratch"
    sizes = [params.model.name] + (["gpt2-124m"] if args.gpt2_124m else [])
    results = {}
    for size in sizes:
        rows = []
        for name, packed, lora_blocks, logits in RECIPES:
            if lora_blocks is not None and (size == "gpt2-124m" or not pretrained):
                continue
            model = load_model(size, params, tokenizer, args.device)
            shape = block_shape(model)
            if lora_blocks is not None:
                top = params.train.lora.layers if lora_blocks == "top" else 0
                model = with_lora(model, dataclasses.replace(params.train.lora, layers=top), params.seed)
                lora_blocks = min(top or shape[0], shape[0])
            if packed:
                collate = PackingCollator(tokenizer.pad_token_id, params.train.max_length)
                collate = LossPositionsOnly(collate) if logits == "loss" else collate
            else:
                collate = SeedCollator(tokenizer.pad_token_id, SEED_LENGTH)
            seconds, useful = run(model, collate, examples, BATCH if packed else SEED_BATCH, args.device)
            flops = required_flops(shape, examples, lora_blocks, loss_everywhere=not packed)
            rows.append(
                {
                    "recipe": name,
                    "seconds": round(seconds, 2),
                    "useful_tokens_per_s": round(useful / seconds, 1),
                    "mfu": round(flops / seconds / peak, 4),
                }
            )
            print(f"{size} {name}: {rows[-1]}", flush=True)
            del model
        seed = rows[0]["useful_tokens_per_s"]
        for row in rows:
            row["speedup_vs_seed"] = round(row["useful_tokens_per_s"] / seed, 2)
        results[size] = {"recipes": rows, "examples": len(examples)}
    device_name = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
    )
    report = {
        "device": device_name,
        "dtype": str(dtype).replace("torch.", ""),
        "gemm_peak_tflops": round(peak / 1e12, 4),
        "models": results,
    }
    merged = json.loads(OUT.read_text()) if OUT.exists() else {}
    merged[args.device] = report
    OUT.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print(f"{device_name}: GEMM peak {peak / 1e9:.1f} GFLOP/s ({report['dtype']})")
    print("| model | recipe | useful tokens/s | x seed | MFU |\n|---|---|---:|---:|---:|")
    for size, result in results.items():
        for row in result["recipes"]:
            print(
                f"| {size} | {row['recipe']} | {row['useful_tokens_per_s']:.1f} | {row['speedup_vs_seed']} "
                f"| {row['mfu']:.1%} |"
            )


if __name__ == "__main__":
    main()
