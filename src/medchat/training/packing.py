"""Training batches that compute little beyond the loss: sequence packing, and LM-head logits only
where a loss is taken.

Packing: the examples of one batch share rows instead of each being padded to the longest.

Choice (issue 7): reset position ids at each packed example and pass no attention mask, so that
transformers' masking utilities detect the packed format from the position ids and build a
block-diagonal causal mask (no attention across examples) for the eager and SDPA paths alike.
They do so only when the model runs without a KV cache, which is how the Trainer runs it
(TrainingArguments.use_cache=False, set explicitly in medchat.training.trainer).
Rows hold at most `capacity` tokens, so attention stays short; a batch still holds the same
examples as without packing, which keeps batch size, steps per epoch and the learning-rate
schedule unchanged. Labels keep the reply-only masking, and the first token of every example is
masked as well: the loss shifts labels by one, so that position would otherwise be predicted from
the end of the previous example (it is a prompt token, masked already, but packing must not rely on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medchat.model.tokenization import IGNORE_INDEX


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of examples per row, first-fit decreasing: few rows, none longer than `capacity`.

    An example longer than `capacity` gets a row of its own (tokenize already caps lengths)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([i])
            room.append(capacity - lengths[i])
        else:
            rows[row].append(i)
            room[row] -= lengths[i]
    return rows


@dataclass
class PackingCollator:
    """Collates tokenized examples (input_ids, labels) into packed rows with per-example position ids."""

    pad_token_id: int
    capacity: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = pack_rows([len(f["input_ids"]) for f in features], self.capacity)
        width = max(sum(len(features[i]["input_ids"]) for i in row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        # Padding gets position 0 throughout: each pad token is then a one-token "example" of its own
        # (never attended to by real tokens, loss-free) and its position stays inside the model's table.
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                ids, labs = features[i]["input_ids"], list(features[i]["labels"])
                labs[0] = IGNORE_INDEX
                n = len(ids)
                input_ids[r, at : at + n] = torch.as_tensor(ids)
                labels[r, at : at + n] = torch.as_tensor(labs)
                position_ids[r, at : at + n] = torch.arange(n)
                at += n
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def loss_positions_only(batch: dict[str, Any]) -> dict[str, Any]:
    """Add `logits_to_keep` (a boolean mask of the positions whose next token carries a loss) and the
    matching flattened `shift_labels`, both understood by transformers' causal LMs: the LM head and the
    cross-entropy then skip prompt and padding positions (about 40% of positions on our data; the
    head is the costliest layer of a small model). The loss is the same mean over the same tokens."""
    import torch

    labels = batch["labels"]
    shifted = torch.full_like(labels, IGNORE_INDEX)
    shifted[:, :-1] = labels[:, 1:]  # position t predicts token t + 1
    keep = shifted != IGNORE_INDEX
    return {**batch, "logits_to_keep": keep, "shift_labels": shifted[keep]}


@dataclass
class LossPositionsOnly:
    """Wraps a collator: its batches also carry `loss_positions_only`'s two keys."""

    collator: Callable[[list[dict[str, Any]]], dict[str, Any]]

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return loss_positions_only(self.collator(features))


def padding_efficiency(lengths: Sequence[int], batch_size: int, capacity: int) -> dict[str, float]:
    """Share of real tokens among the tokens computed, with dynamic padding and with packing,
    over consecutive batches of `batch_size` (for metrics and the benchmark)."""
    real = sum(lengths)
    padded = packed = 0
    for start in range(0, len(lengths), batch_size):
        batch = lengths[start : start + batch_size]
        padded += max(batch) * len(batch)
        rows = pack_rows(batch, capacity)
        packed += max(sum(batch[i] for i in row) for row in rows) * len(rows)
    return {
        "dynamic_padding": round(real / padded, 4) if padded else 0.0,
        "packing": round(real / packed, 4) if packed else 0.0,
    }
