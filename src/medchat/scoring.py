"""Reading a disease out of a reply, and the metrics evaluate reports. No torch here."""

from __future__ import annotations

import re
from functools import lru_cache

from medchat import names


@lru_cache(maxsize=1)
def _disease_pattern() -> re.Pattern:
    spellings = sorted(names.disease_spellings(), key=len, reverse=True)  # longest first: "Hepatitis A" before "Hepatitis"
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(s).replace(r"\ ", r"\s+") for s in spellings) + r")(?!\w)",
                      re.IGNORECASE)


def parse_diseases(reply: str) -> list[str]:
    """Canonical diseases named in a reply, in order of first mention."""
    found: list[str] = []
    for match in _disease_pattern().finditer(reply):
        disease = names.canonical_disease(match.group(1))
        if disease and disease not in found:
            found.append(disease)
    return found


def parse_disease(reply: str) -> str | None:
    """The disease a reply names first (our replies name the likely one first), or None."""
    found = parse_diseases(reply)
    return found[0] if found else None


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
    """Corpus BLEU (sacrebleu) and mean ROUGE-L F1 (rouge-score) against the reference replies."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if not references:
        return {}
    bleu = sacrebleu.corpus_bleu(hypotheses, [references]).score
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = sum(scorer.score(r, h)["rougeL"].fmeasure for r, h in zip(references, hypotheses)) / len(references)
    return {"bleu": round(bleu, 2), "rougeL": round(rouge, 4)}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) — no interpolation, so it is always an observed value."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]
