"""The metrics evaluate reports: classification, text overlap, percentiles, recall@k. No torch here."""

from __future__ import annotations

import re

import numpy as np


def classification(actual: list[str], predicted: list[str | None], ranked: list[list[str]] | None = None) -> dict:
    """Accuracy and macro-F1 over the diseases present; top-3 when rankings are given."""
    from sklearn.metrics import f1_score

    if not actual:
        return {}
    labels = sorted(set(actual))
    guessed = [p if p is not None else "(none)" for p in predicted]
    out = {
        "n": len(actual),
        "accuracy": round(sum(a == p for a, p in zip(actual, guessed)) / len(actual), 4),
        "macro_f1": round(float(f1_score(actual, guessed, labels=labels, average="macro", zero_division=0)), 4),
    }
    if ranked is not None:
        out["top3"] = round(sum(a in r[:3] for a, r in zip(actual, ranked)) / len(actual), 4)
    return out


def text_overlap(references: list[str], hypotheses: list[str]) -> dict:
    """Corpus BLEU (sacrebleu) and mean ROUGE-L F1 against the reference replies."""
    import sacrebleu

    if not references:
        return {}
    bleu = sacrebleu.corpus_bleu(hypotheses, [references]).score
    rouge = sum(rouge_l(r, h) for r, h in zip(references, hypotheses)) / len(references)
    return {"bleu": round(bleu, 2), "rougeL": round(rouge, 4)}


_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenizer without stemming: lower case, runs of letters and digits."""
    return _NON_ALPHANUMERIC.sub(" ", text.lower()).split()


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Crochemore et al. 2001): one big-integer
    update per token of `b` instead of a len(a) x len(b) table of Python ints, which made rouge-score's
    ROUGE-L the slowest metric of the evaluate stage. Bit i of `v` is 0 where the LCS grew at a[i]."""
    matches: dict[str, int] = {}
    for i, token in enumerate(a):
        matches[token] = matches.get(token, 0) | 1 << i
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & matches.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(reference: str, hypothesis: str) -> float:
    """ROUGE-L F1 of one reply, equal to rouge-score's RougeScorer(["rougeL"]) fmeasure (pinned in a test)."""
    ref, hyp = rouge_tokens(reference), rouge_tokens(hypothesis)
    if not ref or not hyp:
        return 0.0
    common = lcs_length(ref, hyp)
    precision, recall = common / len(hyp), common / len(ref)
    return 2 * precision * recall / (precision + recall) if common else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) — no interpolation, so it is always an observed value."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def recall_at(
    ranked: list[list[str]], answers: list[str], ks: tuple[int, ...] = (1, 3, 5)
) -> dict[str, float | int | None]:
    """Share of queries whose right disease is among the first k, for each k."""
    result: dict[str, float | int | None] = {
        f"recall@{k}": round(float(np.mean([a in r[:k] for r, a in zip(ranked, answers)])), 4) if answers else None
        for k in ks
    }
    result["n"] = len(answers)
    return result
