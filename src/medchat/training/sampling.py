"""What a training set holds: tasks resampled by weight, and the distinct reply sequences (drafts for
the accuracy probe's decoding)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from medchat.model.tokenization import IGNORE_INDEX

if TYPE_CHECKING:
    from datasets import Dataset


def weight_tasks(dataset: Dataset, weights: dict[str, float], seed: int) -> Any:
    """Resample each task to weight x its examples: whole copies, then a seeded sample for the fraction
    (weight 2.5 on 10 examples: every example twice and 5 of them a third time). Order is shuffled later."""
    if not weights:
        return dataset
    rng = random.Random(seed)
    tasks = list(dataset["task"])
    chosen: list[int] = []
    for task in dict.fromkeys(tasks):
        own = [i for i, t in enumerate(tasks) if t == task]
        weight = weights.get(task, 1.0)
        whole, fraction = int(weight), weight - int(weight)
        chosen += own * whole + sorted(rng.sample(own, round(len(own) * fraction)))
    return dataset.select(sorted(chosen))


def reply_sequences(dataset: Dataset) -> list[list[int]]:
    """The distinct reply token sequences (the loss-bearing labels) of a tokenized dataset."""
    return [list(s) for s in sorted({tuple(t for t in labels if t != IGNORE_INDEX) for labels in dataset["labels"]})]
