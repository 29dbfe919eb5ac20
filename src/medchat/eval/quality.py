"""Quality and speed of a model on the test split (generation, ranking, text overlap) and of the baseline,
on the same rows."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from medchat.data import names
from medchat.data.dialogue import DIAGNOSE_OPENING
from medchat.data.names import parse_disease
from medchat.eval.scoring import classification, percentile, share, text_overlap
from medchat.params import SAFETY_TASKS

if TYPE_CHECKING:
    from medchat.eval.baseline import Baseline
    from medchat.inference.chat_model import ChatModel
    from medchat.retrieval.prompts import PromptBuilder

SLICES = ("full", "partial")  # diagnose inputs: a whole symptom set, or 1-3 of its symptoms


def _slice(row: dict) -> str:
    return "partial" if row.get("partial") else "full"


def evaluate_lm(
    chat: ChatModel, rows: list[dict], rank: bool, target: Callable[[str], str] | None = None
) -> tuple[dict, list[dict]]:
    """Quality metrics for one model and its per-example predictions (speed: `measure_speed`). `target` maps a
    row's reply to what the model was trained to generate (a decision model: its opening), which perplexity
    scores; the generated replies are compared with the whole reply."""
    from medchat.inference.chat_model import Generation
    from medchat.inference.ranking import rank_continuations

    # Generate task by task: a batched generate runs until its longest reply ends, so mixing short diagnose
    # replies with long descriptions in one batch would make every diagnose reply pay for the longest.
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["task"], i))
    generated = chat.generate([rows[i]["user"] for i in order])
    replies = [""] * len(rows)
    for i, reply in zip(order, generated.replies):
        replies[i] = reply
    generation = Generation(replies, generated.seconds, generated.new_tokens)
    predicted = [parse_disease(reply) for reply in generation.replies]
    diagnose = [i for i, r in enumerate(rows) if r["task"] == "diagnose"]
    ranked: dict[int, list[str]] = {}
    if rank and diagnose:
        for i, top in zip(
            diagnose,
            rank_continuations(chat, [rows[i]["user"] for i in diagnose], DIAGNOSE_OPENING, list(names.DISEASES)),
        ):
            ranked[i] = top[:3]
    metrics: dict[str, Any] = {}
    for name in SLICES:
        chosen = [i for i in diagnose if _slice(rows[i]) == name]
        metrics[name] = {
            **classification(
                [rows[i]["disease"] for i in chosen],
                [predicted[i] for i in chosen],
                [ranked[i] for i in chosen] if ranked else None,
            ),
            **text_overlap([rows[i]["reply"] for i in chosen], [generation.replies[i] for i in chosen]),
        }
    for task in ("describe", "precautions"):
        chosen = [i for i, r in enumerate(rows) if r["task"] == task]
        if chosen:
            metrics[task] = {
                "n": len(chosen),
                "names_disease": round(sum(predicted[i] == rows[i]["disease"] for i in chosen) / len(chosen), 4),
                **text_overlap([rows[i]["reply"] for i in chosen], [generation.replies[i] for i in chosen]),
            }
    for task in SAFETY_TASKS:  # in-distribution: the test split's safety messages, never-trained groups
        chosen = [i for i, r in enumerate(rows) if r["task"] == task]
        if chosen:
            metrics[task] = {
                "n": len(chosen),
                "exact": share([generation.replies[i] == rows[i]["reply"] for i in chosen]),
            }
    target = target or (lambda reply: reply)
    metrics["perplexity"] = round(chat.perplexity([(r["user"], target(r["reply"])) for r in rows]), 4)
    predictions = [
        {
            "id": r["id"],
            "task": r["task"],
            "partial": bool(r.get("partial")),
            "disease": r["disease"],
            "predicted": predicted[i],
            "top3": ranked.get(i),
            "reply": generation.replies[i],
        }
        for i, r in enumerate(rows)
    ]
    return metrics, predictions


def measure_speed(chat: ChatModel, users: list[str], latency_samples: int) -> dict:
    """Batched generation throughput (all of `users`, in batches of chat.batch_size) and per-reply latency
    with one request at a time (what a chat user waits), decoding as `chat` does (drafted or not)."""
    chat.generate(users[:1])  # the first call computes the prompts' shared prefix once
    generated = chat.generate(users)
    speed: dict[str, Any] = {
        "tokens_per_s": round(generated.new_tokens / generated.seconds, 1),
        "replies_per_s": round(len(generated.replies) / generated.seconds, 1),
    }
    single = copy.copy(chat)
    single.batch_size = 1
    times = []
    for user in users[:latency_samples]:
        started = time.perf_counter()
        single.generate([user])
        times.append((time.perf_counter() - started) * 1000)
    if times:
        speed["latency_ms"] = {"p50": round(percentile(times, 50), 1), "p95": round(percentile(times, 95), 1)}
    return speed


def evaluate_model(
    chat: ChatModel,
    rows: list[dict],
    rank: bool,
    prompts: PromptBuilder | None = None,
    target: Callable[[str], str] | None = None,
) -> tuple[dict, list[dict]]:
    """`evaluate_lm` on the prompts and targets the model was trained on: `prompts` (a retrieval.PromptBuilder)
    turns the rows' user messages into them, `target` their replies (see evaluate_lm)."""
    if prompts is not None and not prompts.identity:
        rows = [{**r, "user": p} for r, p in zip(rows, prompts([r["user"] for r in rows]))]
    return evaluate_lm(chat, rows, rank, target)


def evaluate_baseline(baseline: Baseline, rows: list[dict]) -> tuple[dict, list[dict]]:
    diagnose = [r for r in rows if r["task"] == "diagnose"]
    ranked = baseline.rank([r["user"] for r in diagnose]) if diagnose else []
    metrics = {}
    for name in SLICES:
        chosen = [(r, k) for r, k in zip(diagnose, ranked) if _slice(r) == name]
        metrics[name] = classification(
            [r["disease"] for r, _ in chosen], [k[0] for _, k in chosen], [k for _, k in chosen]
        )
    predictions = [
        {"id": r["id"], "disease": r["disease"], "predicted": k[0], "top3": k} for r, k in zip(diagnose, ranked)
    ]
    return metrics, predictions


SAFETY_GOALS = ("escalation_recall", "refusal_rate", "referral_rate")  # rates that should be 1
SAFETY_LIMITS = ("false_escalation", "leak_rate")  # rates that should be 0


def product_score(model: dict) -> float:
    """What a user gets from one model, on the development sets only (never the held-out v2 sets), in [0, 1]:
    the mean of (a) the chatbot's top-1 condition on free-text v1, (b) the share of the development questions
    (people's "what is X?" / "how do I manage X?") answered about X without a refusal or a needless escalation,
    and (c) the guarded safety rates on the tuning set: escalation, refusal and referral, and one minus false
    escalation and leaks. The templated test split's questions say little: every model answers them."""
    free = model.get("freetext", {})
    top1 = (free.get("chatbot") or free.get("lm_generated") or {}).get("top1", 0.0)
    questions = model.get("questions_dev", {})
    answered = (questions.get("chatbot") or questions.get("guard_on") or {}).get("answered", 0.0)
    safety = model.get("safety_tuning", {}).get("guard_on", {})
    rates = [safety.get(k, 0.0) for k in SAFETY_GOALS] + [1 - safety.get(k, 1.0) for k in SAFETY_LIMITS]
    parts = [top1, answered, sum(rates) / len(rates)]
    return round(sum(parts) / len(parts), 4)


def shipped_model(results: dict[str, dict], ship: str) -> str:
    """The model evaluate.ship names, or with "product" the one with the higher product_score (finetune on
    a tie: it also learned the domain tasks last)."""
    if ship != "product":
        return ship
    return max(("train", "finetune"), key=lambda m: (product_score(results[m]), m == "finetune"))


def confusion_rows(predictions: list[dict], model: str) -> list[dict[str, str]]:
    """plots/evaluate/confusion.json: actual and predicted disease of each test diagnose prompt of `model`."""
    return [
        {"actual": p["disease"], "predicted": p["predicted"] or "(none)"}
        for p in predictions
        if p["model"] == model and p["task"] == "diagnose"
    ]
