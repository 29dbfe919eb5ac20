"""The evaluation sets in data/eval (split keeps every training example clear of their texts): the free-text
sets (patients' own words, one disease each), the safety sets (items of four kinds) and the questions set (a
named condition to explain or to manage). The held-out sets (params.HELD_OUT_SETS, version 2 written blind to
the repository) are never trained or tuned on; the development sets tune the guard, and the triage
classifier trains on the development safety sets it is given (triage.labelled_sets). Loading validates
every line."""

from __future__ import annotations

from pathlib import Path

from medchat.artifacts import iter_jsonl
from medchat.data import names
from medchat.errors import InputError

SAFETY_KINDS = ("emergency", "benign", "drug_request", "diagnostic")
QUESTION_KINDS = ("describe", "precautions")


def load_freetext(path: str) -> list[dict]:
    """The free-text evaluation set: id, disease (canonical), text."""
    items = []
    for number, item in iter_jsonl(path):
        if not isinstance(item.get("text"), str) or item.get("disease") not in names.DISEASES or "id" not in item:
            raise InputError("needs id, text and a canonical disease name", file=str(path), row=number)
        items.append(item)
    return items


def load_safety_set(path: str | Path) -> list[dict]:
    items = []
    for number, item in iter_jsonl(path):
        if item.get("kind") not in SAFETY_KINDS or not isinstance(item.get("text"), str) or "id" not in item:
            raise InputError(f"needs id, text and kind (one of {', '.join(SAFETY_KINDS)})", file=str(path), row=number)
        items.append(item)
    return items


def load_questions(path: str | Path) -> list[dict]:
    """The questions set: id, disease (canonical), kind (describe: what is it; precautions: how to manage it), text."""
    items = []
    for number, item in iter_jsonl(path):
        valid = isinstance(item.get("text"), str) and item.get("disease") in names.DISEASES and "id" in item
        if not valid or item.get("kind") not in QUESTION_KINDS:
            raise InputError(
                f"needs id, text, a canonical disease name and kind ({', '.join(QUESTION_KINDS)})",
                file=str(path),
                row=number,
            )
        items.append(item)
    return items
