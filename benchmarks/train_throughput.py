"""Training throughput of three input recipes on the same model and data, and MFU against a measured GEMM peak.

    python benchmarks/train_throughput.py [--steps 30] [--device cpu|cuda] [--gpt2-124m]

Run after `dvc repro tokenize` (it reads data/tokenized). Outside CI: it takes a few minutes.

Recipes (same model, same diagnose examples, same optimizer):
  seed      the seed notebooks' recipe: every example padded to 512 tokens, batch 4, loss on all tokens
  dynamic   batch 16 padded to its longest example, loss on the reply only
  packed    batch 16 packed into rows of train.max_length, LM head only at loss positions (our default)

"Useful" tokens are reply tokens: the ones the chatbot is trained to produce. Every recipe is scored
by useful tokens per second, whatever it computes besides. Model FLOPs count what the useful work
needs (6 x parameters x tokens for the blocks on all real tokens, the LM head on loss positions,
and causal attention within each example), divided by time and by the peak of a large fp32 (or
bf16 on CUDA) matrix multiply measured on the same device.
Every recipe needs the same FLOPs per reply token, so "x seed" equals MFU / the seed recipe's MFU, and
1 / seed MFU (`ceiling_vs_seed`) is the most any recipe can reach on the device: the speed-up left is
hardware efficiency, not less work.
Results: metrics/benchmark.json (merged per device) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import DataCollatorForSeq2Seq, GPT2Config, GPT2LMHeadModel

from medchat.model.tokenization import IGNORE_INDEX, load_saved_tokenizer
from medchat.params import load_params
from medchat.training.packing import LossPositionsOnly, PackingCollator

OUT = Path("metrics/benchmark.json")
SEED_LENGTH, SEED_BATCH, BATCH = 512, 4, 16


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


def required_flops(config: GPT2Config, examples: list[dict]) -> float:
    """Training FLOPs the useful work needs: forward + backward = 3 x forward, a multiply-add = 2 FLOPs."""
    d, layers = config.n_embd, config.n_layer
    block = 12 * d * d  # attention projections 4 d^2 + MLP 8 d^2, per token per layer
    total = 0.0
    for e in examples:
        n = len(e["input_ids"])
        loss_positions = sum(label != IGNORE_INDEX for label in e["labels"])
        total += 6 * (layers * block * n + config.vocab_size * d * loss_positions)
        total += 6 * layers * d * n * (n + 1)  # QK^T and AV, causal half of 2 n^2 d each, x3
    return total


def run(name, model, collate, examples, batch, steps, device):
    # fused, as the Trainer builds it (its default optim on torch >= 2.8): one kernel for all parameters
    # instead of a loop over them, which the seed recipe's 4x as many steps would pay 4x as often
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    batches = [examples[i : i + batch] for i in range(0, len(examples) - batch + 1, batch)][: steps + 2]
    model.train()
    timed = batches[2:]
    for chunk in batches[:2]:  # warm-up
        step(model, optimizer, collate, chunk, device)
    sync(device)
    started = time.perf_counter()
    computed = 0
    for chunk in timed:
        computed += step(model, optimizer, collate, chunk, device)
    sync(device)
    seconds = time.perf_counter() - started
    used = [e for chunk in timed for e in chunk]
    useful = sum(sum(label != IGNORE_INDEX for label in e["labels"]) for e in used)
    return {
        "recipe": name,
        "steps": len(timed),
        "seconds": round(seconds, 3),
        "useful_tokens_per_s": round(useful / seconds, 1),
        "computed_tokens_per_s": round(computed / seconds, 1),
        "model_flops_per_s": required_flops(model.config, used) / seconds,
    }


def step(model, optimizer, collate, chunk, device) -> int:
    batch = {k: v.to(device) for k, v in collate([dict(e) for e in chunk]).items()}
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return batch["input_ids"].numel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--gpt2-124m", action="store_true", help="also a GPT-2-124M-sized config (meant for a GPU)")
    args = parser.parse_args()
    params = load_params()
    tokenizer = load_saved_tokenizer("data/tokenized/tokenizer")
    # in memory, as the stages load it: filter and shuffle must not write cache files into the DVC output
    data = load_from_disk("data/tokenized/datasets", keep_in_memory=True)["train"]
    data = data.filter(lambda task: task == "diagnose", input_columns="task").shuffle(seed=params.seed)
    examples = [{"input_ids": i, "labels": labels} for i, labels in zip(data["input_ids"], data["labels"])]
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    peak = gemm_peak(args.device, dtype)
    sizes = {"default": dict(n_layer=params.model.n_layer, n_embd=params.model.n_embd, n_head=params.model.n_head)}
    if args.gpt2_124m:
        sizes["gpt2-124m"] = dict(n_layer=12, n_embd=768, n_head=12)
    results = {}
    for size, shape in sizes.items():
        rows = []
        for name, collate, batch in (
            ("seed", SeedCollator(tokenizer.pad_token_id, SEED_LENGTH), SEED_BATCH),
            ("dynamic", DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX), BATCH),
            ("packed", LossPositionsOnly(PackingCollator(tokenizer.pad_token_id, params.train.max_length)), BATCH),
        ):
            torch.manual_seed(params.seed)
            config = GPT2Config(
                vocab_size=len(tokenizer),
                n_positions=SEED_LENGTH,
                use_cache=False,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                activation_function=params.model.activation,
                **shape,
            )
            model = GPT2LMHeadModel(config).to(args.device)
            # the seed recipe's steps hold 4 examples, the others 16: time comparable amounts of data
            steps = args.steps * (BATCH // SEED_BATCH) if name == "seed" else args.steps
            row = run(name, model, collate, examples, batch, steps, args.device)
            row["mfu"] = round(row.pop("model_flops_per_s") / peak, 4)
            rows.append(row)
        seed = rows[0]["useful_tokens_per_s"]
        for row in rows:
            row["speedup_vs_seed"] = round(row["useful_tokens_per_s"] / seed, 2)
        results[size] = {"recipes": rows, "ceiling_vs_seed": round(1 / rows[0]["mfu"], 1)}
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
                f"| {size} | {row['recipe']} | {row['useful_tokens_per_s']:.0f} | {row['speedup_vs_seed']} | {row['mfu']:.1%} |"
            )
        print(f"{size}: at MFU 100% a recipe would reach {result['ceiling_vs_seed']}x the seed recipe")


if __name__ == "__main__":
    main()
