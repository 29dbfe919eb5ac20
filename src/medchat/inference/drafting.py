"""Greedy decoding that drafts from known replies and verifies the drafts in one forward pass. Imports torch.

The chatbot's replies are mostly sentences it has seen in training: after "It sounds most like
Malaria." the description, the precautions and the referral follow word for word. So instead of one
forward pass per token, look the last few generated tokens up in the training replies, propose what
followed them there, and let the model check the whole proposal at once: the proposal's tokens are
kept while they equal the model's own greedy choice, and the model's choice at the first difference
is kept too. That is speculative decoding with a lookup table as the draft model (like prompt-lookup
decoding, but looking in a reply corpus instead of the prompt). The output is the greedy output:
drafts only decide how many tokens one pass may confirm. Transformers' own assisted generation takes
one sequence at a time and looks only in the prompt, hence this loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DRAFTS_FILE = "drafts.json"


class ReplyDrafter:
    """Proposes continuations of a reply by looking its last tokens up in a corpus of token sequences."""

    def __init__(self, sequences: list[list[int]], max_ngram: int = 4):
        self.sequences, self.max_ngram = sequences, max_ngram
        # n-gram -> (sequence, index after it); the first occurrence wins, longer n-grams disambiguate
        self.index: dict[tuple[int, ...], tuple[int, int]] = {}
        for s, seq in enumerate(sequences):
            for end in range(1, len(seq)):
                for n in range(1, min(max_ngram, end) + 1):
                    self.index.setdefault(tuple(seq[end - n : end]), (s, end))

    @classmethod
    def from_texts(cls, tokenizer: PreTrainedTokenizerBase, texts: list[str], max_ngram: int = 4) -> ReplyDrafter:
        from medchat.model.tokenization import reply_ids

        # the reply's own tokens with its end of turn, so a proposal can also finish the reply
        return cls([reply_ids(tokenizer, "", text) for text in sorted(set(texts))], max_ngram)

    def propose(self, generated: list[int], limit: int) -> list[int]:
        """Up to `limit` tokens that followed the longest matching suffix of `generated` in the corpus."""
        for n in range(min(self.max_ngram, len(generated)), 0, -1):
            hit = self.index.get(tuple(generated[-n:]))
            if hit is not None:
                s, end = hit
                return self.sequences[s][end : end + limit]
        return []


def reply_texts(rows: list[dict]) -> list[str]:
    """The reply texts a model drafts from: the training split's replies, unique and sorted."""
    return sorted({r["reply"] for r in rows})


def save_drafts(directory: str | Path, texts: list[str]) -> None:
    """The reply texts a packaged model drafts from (unique, sorted: a stable, diffable file)."""
    Path(directory, DRAFTS_FILE).write_text(
        json.dumps(sorted(set(texts)), indent=0, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def load_drafts(directory: str | Path) -> list[str] | None:
    path = Path(directory, DRAFTS_FILE)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@dataclass
class DraftStats:
    passes: int = 0  # forward passes after the prompt's
    drafted: int = 0  # proposed tokens checked
    accepted: int = 0  # proposed tokens kept


def speculative_generate(
    model: PreTrainedModel,
    ids: torch.Tensor,
    mask: torch.Tensor,
    budget: int,
    drafter: ReplyDrafter,
    eos_id: int,
    max_draft: int = 64,
    position_limit: int | None = None,
    stats: DraftStats | None = None,
    opening_bias: dict[int, float] | None = None,
) -> list[list[int]]:
    """Greedy continuations of left-padded prompts (`ids`, `mask`), at most `budget` tokens each, ending
    at (and including) `eos_id`. Each row keeps as many of its drafted tokens as the model agrees with.
    `opening_bias` (token id -> logit offset) applies to the first token only, as ChatModel documents."""
    import inspect

    import torch

    from medchat.inference.chat_model import left_padded_positions, with_bias

    accepted = inspect.signature(model.forward).parameters
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    cache_arg = "cache" if "cache" in accepted else "past_key_values"  # transformers >= 5.x renames it
    stats = stats if stats is not None else DraftStats()
    rows = ids.shape[0]
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=left_padded_positions(mask), use_cache=True, **keep_last
    )
    first = out.logits[:, -1]
    cache, nxt = out[cache_arg], (with_bias(first, opening_bias) if opening_bias else first).argmax(-1)
    generated = [[t] for t in nxt.tolist()]
    live = [r for r in range(rows) if generated[r][0] != eos_id and budget > 1]  # unfinished rows, in batch order
    order = list(range(rows))  # the batch rows the cache and tensors hold
    lengths = mask.sum(1)  # real tokens per row: the position of the next token fed
    while live:
        if len(live) < nxt.shape[0]:  # finished rows leave the batch, so passes only compute for the rest
            alive = set(live)
            keep_rows = torch.tensor([i for i, r in enumerate(order) if r in alive], device=ids.device)
            cache.reorder_cache(keep_rows)
            mask, lengths, nxt = mask[keep_rows], lengths[keep_rows], nxt[keep_rows]
        order = list(live)
        # the pass always adds one token of the model's own after the kept draft
        drafts = [drafter.propose(generated[r], min(max_draft, budget - len(generated[r]) - 1)) for r in order]
        width = max(map(len, drafts))
        proposal = torch.full((len(order), width), -1, dtype=torch.long, device=ids.device)  # -1 never matches
        for i, d in enumerate(drafts):
            proposal[i, : len(d)] = torch.tensor(d, dtype=torch.long)
        fed = torch.cat([nxt[:, None], proposal.clamp(min=0)], 1)
        positions = lengths[:, None] + torch.arange(width + 1, device=ids.device)
        if position_limit:  # other rows' longer drafts may run off the table; those slots are never kept
            positions = positions.clamp(max=position_limit - 1)
        logits = model(
            input_ids=fed,
            attention_mask=torch.cat([mask, mask.new_ones(len(order), width + 1)], 1),
            position_ids=positions,
            use_cache=True,
            **{cache_arg: cache},
        ).logits
        choice = logits.argmax(-1)  # choice[:, j]: the greedy token after fed[:, :j + 1]
        # per row, how many leading drafted tokens equal the model's choice
        keep = (proposal == choice[:, :-1]).long().cumprod(1).sum(1)
        most = int(keep.max())
        stats.passes, stats.drafted, stats.accepted = (
            stats.passes + 1,
            stats.drafted + sum(map(len, drafts)),
            stats.accepted + int(keep.sum()),
        )
        # Rows keep different numbers of tokens but share one cache: drop the tail no row kept, and
        # mask each row's own rejected slots (holes that attention skips, as it skips left padding).
        cache.crop(-(width - most))  # negative: tokens to remove from the end
        kept = torch.arange(most + 1, device=ids.device)[None, :] <= keep[:, None]
        mask = torch.cat([mask, kept.to(mask.dtype)], 1)
        lengths = lengths + 1 + keep
        nxt = choice.gather(1, keep[:, None]).squeeze(1)
        for i, r in enumerate(order):
            new = drafts[i][: int(keep[i])] + [int(nxt[i])]
            generated[r] += new
            if eos_id in new or len(generated[r]) >= budget:
                live.remove(r)
    return [row[: row.index(eos_id) + 1] if eos_id in row else row for row in generated]
