"""Reply latency and batched throughput: the library's greedy `generate` against drafted decoding.

    python benchmarks/generation_speed.py [--model models/chatbot] [--samples 100] [--batch-size 64]

Run after `dvc repro` (it reads the packaged chatbot and data/split/test.jsonl). Outside CI.
Both decoders run on the same seeded sample of test messages (every task), one message at a time for
latency and in batches for throughput; their replies must be identical (drafting is lossless).
Results: metrics/generation.json (one entry per --model) and a table on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import time
from pathlib import Path

import torch

from medchat.artifacts import read_jsonl
from medchat.eval.scoring import percentile
from medchat.inference.chat_model import ChatModel
from medchat.inference.drafting import load_drafts
from medchat.model.loading import quiet_progress
from medchat.params import load_params
from medchat.retrieval.prompts import PROMPTS_FILE, PromptBuilder

OUT = Path("metrics/generation.json")


def measure(chat: ChatModel, users: list[str], batch_size: int) -> tuple[dict, list[str]]:
    single = copy.copy(chat)
    single.batch_size = 1
    single.generate(users[:2])  # warm-up
    times, replies = [], []
    for user in users:
        started = time.perf_counter()
        replies += single.generate([user]).replies
        times.append((time.perf_counter() - started) * 1000)
    chat.batch_size = batch_size
    batched = chat.generate(users)
    assert batched.replies == replies, "batched and one-at-a-time replies differ"
    return {
        "latency_ms": {
            "p50": round(percentile(times, 50), 1),
            "p95": round(percentile(times, 95), 1),
            "max": round(max(times), 1),
        },
        "replies_per_s": round(len(users) / batched.seconds, 1),
        "tokens_per_s": round(batched.new_tokens / batched.seconds, 1),
    }, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/chatbot")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    quiet_progress()
    params = load_params()
    rows = read_jsonl("data/split/test.jsonl")
    users = [r["user"] for r in random.Random(params.seed).sample(rows, min(args.samples, len(rows)))]
    if (Path(args.model) / PROMPTS_FILE).exists():
        users = PromptBuilder.load(args.model)(users)
    # a packaged chatbot carries its drafts; for models/train or models/finetune take the training replies
    drafts = load_drafts(args.model) or sorted({r["reply"] for r in read_jsonl("data/split/train.jsonl")})
    drafted = ChatModel.load(args.model, max_new_tokens=params.evaluate.max_new_tokens, drafts=drafts)
    library = ChatModel(drafted.model, drafted.tokenizer, max_new_tokens=params.evaluate.max_new_tokens)
    results = {}
    results["library_generate"], reference = measure(library, users, args.batch_size)
    results["drafted"], replies = measure(drafted, users, args.batch_size)
    assert replies == reference, "drafted decoding changed a reply"
    report = {
        "device": f"{platform.machine()} x{torch.get_num_threads()} threads",
        "messages": len(users),
        "batch_size": args.batch_size,
        "identical_replies": True,
        **results,
    }
    saved = json.loads(OUT.read_text()) if OUT.exists() else {}
    saved[args.model] = report  # one entry per model measured
    OUT.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    print("| decoding | p50 ms | p95 ms | max ms | replies/s (batched) | tokens/s (batched) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        lat = r["latency_ms"]
        print(f"| {name} | {lat['p50']} | {lat['p95']} | {lat['max']} | {r['replies_per_s']} | {r['tokens_per_s']} |")


if __name__ == "__main__":
    main()
