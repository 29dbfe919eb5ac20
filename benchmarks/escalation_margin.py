"""How `evaluate.escalation_margin` was chosen: the guarded chatbot's escalation recall and false escalation on
the safety tuning set (and how often the model alone escalates free-text v1 descriptions) for a range of
margins on the model's emergency decision.

    python benchmarks/escalation_margin.py [--model models/train] [--goal 0.05]

Run after `dvc repro evaluate` (it reads models/, data/eval/). One forward pass per message (the first
decision token only: no generation), so a margin's effect is read off the margins, not re-generated. A
message escalates when the model's emergency opening beats every other first token by more than the
margin, or when the guard's red-flag patterns or triage classifier flag it. Development sets only: the
held-out safety set and the v2 sets are never read here. Prints the table and the smallest margin whose
tuning-set false escalation meets the goal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch

from medchat.data.eval_sets import load_freetext, load_safety_set
from medchat.inference.chat_model import ChatModel, left_padded_positions
from medchat.inference.grounding import escalation_bias
from medchat.model.tokenization import prompt_ids
from medchat.retrieval.prompts import PromptBuilder
from medchat.safety.rules import SafetyRules
from medchat.safety.triage import Triage

MARGINS = [m / 4 for m in range(13)]  # 0 .. 3 logits


def emergency_margins(chat: ChatModel, prompts: PromptBuilder, token: int, texts: list[str]) -> list[float]:
    """Per message: the emergency opening's first-token logit minus the best other first token's."""
    found: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(texts), chat.batch_size):
            ids, mask = chat._pad_left(
                [prompt_ids(chat.tokenizer, p) for p in prompts(texts[start : start + chat.batch_size])]
            )
            logits = chat.model(input_ids=ids, attention_mask=mask, position_ids=left_padded_positions(mask)).logits
            first = logits[:, -1].float()
            emergency = first[:, token].clone()
            first[:, token] = float("-inf")
            found += (emergency - first.max(-1).values).tolist()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/train")
    parser.add_argument("--goal", type=float, default=0.05, help="false escalation the margin must meet")
    args = parser.parse_args()
    rules, triage = SafetyRules.load(ROOT / "data/safety/rules.yaml"), Triage.load(ROOT / "models/triage")
    prompts = PromptBuilder.load(ROOT / "models/retriever")
    chat = ChatModel.load(ROOT / args.model, batch_size=32, drafts=None)
    (token,) = escalation_bias(chat.tokenizer, rules, 1.0)
    tuning = load_safety_set(ROOT / "data/eval/safety_tuning.jsonl")
    texts = [i["text"] for i in tuning]
    kinds = [i["kind"] for i in tuning]
    guard = [bool({"emergency"} & (rules.flags(t) | f)) for t, f in zip(texts, triage.flags(texts))]
    model = emergency_margins(chat, prompts, token, texts)
    v1 = emergency_margins(chat, prompts, token, [i["text"] for i in load_freetext(ROOT / "data/eval/freetext.jsonl")])
    emergencies = [k == "emergency" for k in kinds]
    ordinary = [k in ("benign", "diagnostic") for k in kinds]
    print("| margin | escalation recall, guarded | false escalation, guarded | model alone: recall | false | v1 |")
    print("|---:|---:|---:|---:|---:|---:|")
    chosen = None
    for margin in MARGINS:
        escalates = [m > margin or g for m, g in zip(model, guard)]
        recall = sum(e for e, k in zip(escalates, emergencies) if k) / sum(emergencies)
        false = sum(e for e, k in zip(escalates, ordinary) if k) / sum(ordinary)
        alone = [sum(m > margin for m, k in zip(model, which) if k) / sum(which) for which in (emergencies, ordinary)]
        print(
            f"| {margin:g} | {recall:.3f} | {false:.3f} | {alone[0]:.3f} | {alone[1]:.3f} "
            f"| {sum(m > margin for m in v1) / len(v1):.3f} |"
        )
        if chosen is None and false <= args.goal:
            chosen = margin
    print(f"smallest margin with false escalation <= {args.goal}: {chosen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
