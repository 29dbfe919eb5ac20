"""Leak-free split: groups (canonical symptom sets, or question templates) never straddle splits.

Groups are stratified by (task, disease): within each stratum they are shuffled with the seed
and dealt out by fraction, so every disease is represented in every split it can be.
With k folds, the groups of each stratum are dealt round-robin into k folds; fold i is test and
the validation groups come from the remaining folds.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

SPLITS = ("train", "val", "test")
TRAIN_ONLY_TASKS = ("feedback",)  # users' corrections are few and meant to be learned, not held out


@dataclass(frozen=True)
class SplitConfig:
    val_fraction: float
    test_fraction: float
    folds: int
    fold: int
    seed: int


def assign_groups(examples: list[dict[str, Any]], config: SplitConfig) -> dict[str, str]:
    """group -> split name."""
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in examples:
        stratum = strata[(e["task"], e["disease"])]
        if e["group"] not in stratum:
            stratum.append(e["group"])
    rng = random.Random(config.seed)
    assignment: dict[str, str] = {}
    for key in sorted(strata):
        groups = sorted(set(strata[key]) - set(assignment))  # a group seen in another stratum keeps its split
        if key[0] in TRAIN_ONLY_TASKS:  # before the shuffle: new feedback never reshuffles the other tasks
            assignment.update(dict.fromkeys(groups, "train"))
            continue
        rng.shuffle(groups)
        if config.folds:
            test = [g for i, g in enumerate(groups) if i % config.folds == config.fold]
            rest = [g for g in groups if g not in set(test)]
            n_val = _share(len(rest), config.val_fraction / (1 - 1 / config.folds))
            val, train = rest[:n_val], rest[n_val:]
        else:
            n_test = _share(len(groups), config.test_fraction)
            n_val = _share(len(groups) - n_test, config.val_fraction / (1 - config.test_fraction))
            test, val, train = groups[:n_test], groups[n_test : n_test + n_val], groups[n_test + n_val :]
        for name, chosen in (("train", train), ("val", val), ("test", test)):
            assignment.update(dict.fromkeys(chosen, name))
    return assignment


def _share(n: int, fraction: float) -> int:
    """Groups for a split of `fraction`: at least one when the fraction is non-zero and one can be
    spared (a stratum keeps at least one group for training)."""
    if fraction <= 0 or n < 2:
        return 0
    return min(max(1, round(n * fraction)), n - 1)


def split_examples(examples: list[dict[str, Any]], config: SplitConfig) -> dict[str, list[dict[str, Any]]]:
    assignment = assign_groups(examples, config)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for e in examples:
        out[assignment[e["group"]]].append(e)
    return out


def overlap(splits: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Leaks across splits: groups, exact symptom sets (diagnose) and exact user texts, all must be 0."""

    def keys(name: str, field: str) -> set:
        if field == "symptoms":
            return {frozenset(e["symptoms"]) for e in splits[name] if e["symptoms"]}
        return {e[field].strip().casefold() if field == "user" else e[field] for e in splits[name]}

    counts = {}
    for field, label in (("group", "groups"), ("symptoms", "symptom_sets"), ("user", "user_texts")):
        counts[label] = sum(len(keys(a, field) & keys(b, field)) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1 :])
    return counts


def normalise(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .?!")


def held_out_overlap(splits: dict[str, list[dict[str, Any]]], held_out: list[str]) -> int:
    """Examples whose user text contains a held-out evaluation text (exactly or buried in a longer message)."""
    needles = [n for n in map(normalise, held_out) if n]
    texts = [normalise(e["user"]) for rows in splits.values() for e in rows]  # once each, not once per needle
    return sum(any(n in text for n in needles) for text in texts)
