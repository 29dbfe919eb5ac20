"""Evaluating models on the test split: the LMs (generation) and the baseline, on the same rows."""

from __future__ import annotations

import copy
import time
from typing import Any

from medchat import names
from medchat.dialogue import DIAGNOSE_OPENING
from medchat.params import SAFETY_TASKS
from medchat.scoring import classification, parse_disease, percentile, text_overlap

SLICES = ("full", "partial")  # diagnose inputs: a whole symptom set, or 1-3 of its symptoms


def _slice(row: dict) -> str:
    return "partial" if row.get("partial") else "full"


def evaluate_lm(chat: Any, rows: list[dict], rank: bool) -> tuple[dict, list[dict]]:
    """Quality metrics for one model and its per-example predictions (speed: `measure_speed`)."""
    from medchat.inference import Generation
    from medchat.ranking import rank_continuations

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
        for i, order in zip(diagnose, rank_continuations(chat, [rows[i]["user"] for i in diagnose],
                                                         DIAGNOSE_OPENING, list(names.DISEASES))):
            ranked[i] = order[:3]
    metrics: dict[str, Any] = {}
    for name in SLICES:
        chosen = [i for i in diagnose if _slice(rows[i]) == name]
        metrics[name] = {
            **classification([rows[i]["disease"] for i in chosen], [predicted[i] for i in chosen],
                             [ranked[i] for i in chosen] if ranked else None),
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
    for task in SAFETY_TASKS:  # in-distribution: the test split's policy messages, never-trained groups
        chosen = [i for i, r in enumerate(rows) if r["task"] == task]
        if chosen:
            metrics[task] = {"n": len(chosen), "exact": _share([generation.replies[i] == rows[i]["reply"] for i in chosen])}
    metrics["perplexity"] = round(chat.perplexity([(r["user"], r["reply"]) for r in rows]), 4)
    predictions = [{"id": r["id"], "task": r["task"], "partial": bool(r.get("partial")), "disease": r["disease"],
                    "predicted": predicted[i], "top3": ranked.get(i), "reply": generation.replies[i]}
                   for i, r in enumerate(rows)]
    return metrics, predictions


def measure_speed(chat: Any, users: list[str], latency_samples: int) -> dict:
    """Batched generation throughput (one batch of `users`) and per-reply latency with one request at a
    time (what a chat user waits), decoding as `chat` does (drafted or not)."""
    generated = chat.generate(users[:chat.batch_size])
    speed: dict[str, Any] = {"tokens_per_s": round(generated.new_tokens / generated.seconds, 1),
                             "replies_per_s": round(len(generated.replies) / generated.seconds, 1)}
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


def evaluate_model(chat: Any, rows: list[dict], safety_items: list[dict], policy: Any,
                   rank: bool, triage: Any = None, prompts: Any = None) -> tuple[dict, list[dict]]:
    """Everything evaluate measures about one model except speed, and its per-example predictions.
    `prompts` (a retrieval.PromptBuilder) turns user messages into the prompts the model was trained on."""
    if prompts is not None and not prompts.identity:
        rows = [{**r, "user": p} for r, p in zip(rows, prompts([r["user"] for r in rows]))]
    metrics, predictions = evaluate_lm(chat, rows, rank)
    metrics["safety"], safety_rows = evaluate_safety(chat, policy, safety_items, triage, prompts)
    return metrics, predictions + [{"task": "safety", **r} for r in safety_rows]


def evaluate_baseline(baseline: Any, rows: list[dict]) -> tuple[dict, list[dict]]:
    diagnose = [r for r in rows if r["task"] == "diagnose"]
    ranked = baseline.rank([r["user"] for r in diagnose]) if diagnose else []
    metrics = {}
    for name in SLICES:
        chosen = [(r, k) for r, k in zip(diagnose, ranked) if _slice(r) == name]
        metrics[name] = classification([r["disease"] for r, _ in chosen], [k[0] for _, k in chosen], [k for _, k in chosen])
    predictions = [{"id": r["id"], "disease": r["disease"], "predicted": k[0], "top3": k} for r, k in zip(diagnose, ranked)]
    return metrics, predictions


def evaluate_safety(chat: Any, policy: Any, items: list[dict], triage: Any = None,
                    prompts: Any = None) -> tuple[dict, list[dict]]:
    """Safety rates on the held-out safety set, for the model alone (guard off) and behind the guard,
    and how well the guard's detectors (policy patterns, triage classifier, either) find emergencies
    and medicine requests, and how often they fire on benign and diagnostic messages."""
    from medchat.safety import guard, safety_metrics

    texts = [item["text"] for item in items]
    replies = chat.generate(prompts(texts) if prompts is not None else texts).replies  # the guard reads the raw text
    learned = triage.flags(texts) if triage is not None else [frozenset()] * len(items)
    guarded = [guard(policy, text, reply, flags) for text, reply, flags in zip(texts, replies, learned)]
    def by_label(flags: frozenset[str]) -> dict[str, bool]:
        return {label: label in flags for label in ("emergency", "drug_request")}

    detectors = {"patterns": [by_label(policy.flags(t)) for t in texts]}
    if triage is not None:
        detectors["triage"] = [by_label(flags) for flags in learned]
        detectors["either"] = [{k: p[k] or t[k] for k in p} for p, t in zip(detectors["patterns"], detectors["triage"])]
    metrics = {"guard_off": safety_metrics(policy, items, replies),
               "guard_on": safety_metrics(policy, items, [g.reply for g in guarded]),
               "detectors": {name: detector_rates(items, found) for name, found in detectors.items()}}
    predictions = [{"id": item["id"], "kind": item["kind"], "reply": reply, "guarded": g.reply, "guard_actions": list(g.actions)}
                   for item, reply, g in zip(items, replies, guarded)]
    return metrics, predictions


def detector_rates(items: list[dict], found: list[dict]) -> dict:
    """Recall of a detector on its own kind, and how often it fires on messages that need neither."""
    ordinary = [f for i, f in zip(items, found) if i["kind"] in ("benign", "diagnostic")]
    return {
        "emergency_recall": _share([f["emergency"] for i, f in zip(items, found) if i["kind"] == "emergency"]),
        "request_recall": _share([f["drug_request"] for i, f in zip(items, found) if i["kind"] == "drug_request"]),
        "emergency_false_positive": _share([f["emergency"] for f in ordinary]),
        "request_false_positive": _share([f["drug_request"] for f in ordinary]),
    }


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def fuse_rankings(rankings: list[list[list[str]]], weights: list[float] | None = None, k: int = 60) -> list[list[str]]:
    """Weighted reciprocal-rank fusion: system m adds weight_m / (k + rank) to each disease. Ranks need no
    score calibration, which the LM's log-likelihoods, tf-idf cosines and the baseline's probabilities lack."""
    weights = weights or [1.0] * len(rankings)
    fused = []
    for per_query in zip(*rankings):
        score: dict[str, float] = {}
        for weight, ranking in zip(weights, per_query):
            for position, disease in enumerate(ranking):
                score[disease] = score.get(disease, 0.0) + weight / (k + position + 1)
        fused.append(sorted(score, key=lambda d: -score[d]))
    return fused


def _topk(actual: list[str], ranked: list[list[str]]) -> dict:
    return {"top1": _share([r[:1] == [a] for a, r in zip(actual, ranked)]),
            "top3": _share([a in r[:3] for a, r in zip(actual, ranked)]), "n": len(actual)}


def evaluate_freetext(items: list[dict], builder: Any, baseline: Any, chat: Any = None,
                      weights: dict[str, float] | None = None) -> tuple[dict, dict[str, list]]:
    """Top-1 / top-3 disease accuracy on the free-text set for the retriever alone (raw and normalised
    queries), the baseline (raw and normalised), the LM (its generated reply, and its ranking of all
    diseases) and their reciprocal-rank fusion; returns the metrics and each system's rankings."""
    from medchat.ranking import rank_continuations

    texts, actual = [i["text"] for i in items], [i["disease"] for i in items]
    queries = builder.queries(texts)
    n_all = len(names.DISEASES)
    ranked = {"retriever_raw": builder.retriever.rank(texts), "retriever": builder.retriever.rank(queries),
              "baseline_raw": baseline.rank(texts, k=n_all), "baseline": baseline.rank(queries, k=n_all)}
    metrics = {name: _topk(actual, r) for name, r in ranked.items()}
    if chat is not None:
        prompts = builder(texts)
        generated = [parse_disease(r) for r in chat.generate(prompts).replies]
        ranked["lm"] = rank_continuations(chat, prompts, DIAGNOSE_OPENING, list(names.DISEASES))
        metrics["lm_generated"] = {"top1": _share([g == a for g, a in zip(generated, actual)]), "n": len(actual)}
        metrics["lm"] = _topk(actual, ranked["lm"])
        weights = weights or {}
        systems = ("lm", "retriever", "baseline")
        ranked["ensemble"] = fuse_rankings([ranked[m] for m in systems], [weights.get(m, 1.0) for m in systems])
        metrics["ensemble"] = _topk(actual, ranked["ensemble"])
    return metrics, ranked


def retriever_ablation(items: list[dict], kb: Any, lexicon: Any, normaliser: Any, dense_weight: float,
                       dense: bool = True) -> dict[str, dict]:
    """What each retrieval part adds on the free-text set: passages with clinical labels only, plus the
    lexicon's lay phrasings, plus the query normaliser, and the dense and hybrid encoders (only when the
    `dense` extra is installed; their rows are absent otherwise)."""
    from medchat.errors import InputError
    from medchat.retrieval import Retriever, RetrieverConfig, build_passages

    texts, actual = [i["text"] for i in items], [i["disease"] for i in items]
    expanded = build_passages(kb, lexicon)
    labels_only = Retriever(build_passages(kb, lexicon, everyday=False), RetrieverConfig("tfidf"))
    sparse = Retriever(expanded, RetrieverConfig("tfidf"))
    normalised = normaliser.normalise_all(texts)
    result = {"tfidf_labels": _topk(actual, labels_only.rank(texts)),
              "tfidf_lexicon": _topk(actual, sparse.rank(texts)),
              "tfidf_lexicon_normaliser": _topk(actual, sparse.rank(normalised))}
    if not dense:
        return result
    try:
        minilm = Retriever(expanded, RetrieverConfig("minilm"))
    except InputError:
        return result
    encoder, embeddings = minilm.dense
    hybrid = Retriever(expanded, RetrieverConfig("hybrid", dense_weight), embeddings=embeddings, encoder=encoder)
    result["minilm"] = _topk(actual, minilm.rank(texts))
    result["hybrid"] = _topk(actual, hybrid.rank(texts))
    return result


def load_freetext(path: str) -> list[dict]:
    """The free-text evaluation set: id, disease (canonical), text."""
    from medchat.artifacts import iter_jsonl
    from medchat.errors import InputError

    items = []
    for number, item in iter_jsonl(path):
        if not isinstance(item.get("text"), str) or item.get("disease") not in names.DISEASES or "id" not in item:
            raise InputError("needs id, text and a canonical disease name", file=str(path), row=number)
        items.append(item)
    return items
