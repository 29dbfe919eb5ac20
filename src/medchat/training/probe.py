"""Validation disease accuracy by generation, logged beside eval_loss at every evaluation."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def accuracy_probe(
    tokenizer: PreTrainedTokenizerBase,
    examples: list[dict],
    samples: int,
    seed: int,
    max_new_tokens: int = 64,
    drafts: list[list[int]] | None = None,
) -> Callable[[Any], float] | None:
    """Generate replies for a fixed, seeded sample of validation diagnose examples; return the share
    whose parsed disease is right. Short generations suffice: the disease is named in the first sentences.
    With `drafts` (reply token sequences, e.g. the training replies) decoding drafts from them: same replies."""
    from medchat.data.names import parse_disease
    from medchat.inference.chat_model import ChatModel
    from medchat.inference.drafting import ReplyDrafter

    pool = [e for e in examples if e["task"] == "diagnose"]
    if not samples or not pool:
        return None
    chosen = random.Random(seed).sample(pool, min(samples, len(pool)))

    def probe(model: PreTrainedModel) -> float:
        chat = ChatModel(model, tokenizer, max_new_tokens=max_new_tokens)
        chat.drafter = ReplyDrafter(drafts) if drafts else None
        replies = chat.generate([e["user"] for e in chosen]).replies
        return round(sum(parse_disease(r) == e["disease"] for r, e in zip(replies, chosen)) / len(chosen), 4)

    return probe
