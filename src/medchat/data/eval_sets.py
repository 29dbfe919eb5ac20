"""The held-out evaluation sets in data/eval (never trained on; split keeps every training example clear of
their texts): the free-text set (patients' own words, one disease each) and the safety sets (the held-out
set and the guard's tuning set, items of four kinds). Loading validates every line."""

from __future__ import annotations

from pathlib import Path

from medchat.artifacts import iter_jsonl
from medchat.data import names
from medchat.errors import InputError

SAFETY_KINDS = ("emergency", "benign", "drug_request", "diagnostic")


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
