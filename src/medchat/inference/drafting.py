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

import copy
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        """Up to `limit` tokens that followed the longest matching suffix of `generated` in the corpus;
        before the first token, the corpus's most common opening (`opening`)."""
        if not generated:
            return self.opening[:limit]
        for n in range(min(self.max_ngram, len(generated)), 0, -1):
            hit = self.index.get(tuple(generated[-n:]))
            if hit is not None:
                s, end = hit
                return self.sequences[s][end : end + limit]
        return []

    @cached_property
    def opening(self) -> list[int]:
        """The draft before a reply's first token: among the groups of sequences that share a first token, the
        common start of the group where it saves the most passes (sequences x tokens), as if every sequence
        were equally likely. For decision openings: "It sounds most like", shared by every diagnosis."""
        groups: dict[int, list[list[int]]] = {}
        for seq in self.sequences:
            if seq:
                groups.setdefault(seq[0], []).append(seq)
        best: list[int] = []
        saved = 0
        for group in groups.values():
            start = group[0]
            for seq in group[1:]:
                same = next((i for i, (x, y) in enumerate(zip(start, seq)) if x != y), min(len(start), len(seq)))
                start = start[:same]
            if len(group) * len(start) > saved:  # ties: the first group in corpus order
                best, saved = list(start), len(group) * len(start)
        return best

    @cached_property
    def _endings(self) -> dict[tuple[int, ...], list[int] | None]:
        endings: dict[tuple[int, ...], list[int] | None] = {}
        for seq in self.sequences:
            for n in range(1, len(seq) + 1):
                start, rest = tuple(seq[:n]), seq[n:]
                if endings.setdefault(start, rest) != rest:
                    endings[start] = None  # two sequences start alike and then part
        return endings

    def complete(self, generated: list[int]) -> list[int] | None:
        """The rest of the corpus sequence that starts with `generated` when only one does (or all that do
        go on alike); None while the sequences that start so still differ, or when none does."""
        return self._endings.get(tuple(generated))


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


@dataclass
class PromptPrefix:
    """The keys and values of a start every prompt shares (a chat template's system turn), computed once:
    each reply then reads only its own tokens. Valid while the model's weights stay as they are."""

    ids: list[int]
    cache: Any

    @classmethod
    def compute(cls, model: PreTrainedModel, ids: list[int]) -> PromptPrefix:
        import torch

        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True)
        return cls(ids, out[_cache_arg(model)])

    def cache_for(self, rows: int) -> Any:
        """A cache of `rows` copies of the prefix. Cache layers replace their tensors as they grow (a cat) or
        shrink (a slice), never write into them, so copies of the cache and its layers are enough."""
        cache = copy.copy(self.cache)
        cache.layers = [copy.copy(layer) for layer in self.cache.layers]
        cache.batch_repeat_interleave(rows)
        return cache


def _cache_arg(model: PreTrainedModel) -> str:
    """Name of the cache in a model's forward arguments and outputs (transformers >= 5.x renames it)."""
    from medchat.model.loading import forward_arguments

    return "cache" if "cache" in forward_arguments(model) else "past_key_values"


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
    prefix: PromptPrefix | None = None,
    complete: bool = False,
) -> list[list[int]]:
    """Greedy continuations of left-padded prompts (`ids`, `mask`), at most `budget` tokens each, ending
    at (and including) `eos_id`. Each row keeps as many of its drafted tokens as the model agrees with; the
    prompt's own pass already checks the corpus's common opening (ReplyDrafter.opening).

    `opening_bias` (token id -> logit offset) applies to the first token only, as ChatModel documents.
    `prefix`: the cached start of every prompt, which `ids` then leave out. With `complete`, a row ends as soon
    as the corpus holds one way to go on from what it generated (ReplyDrafter.complete), which it takes without
    decoding: for a corpus of decisions, the model has decided by then."""
    import torch

    from medchat.inference.chat_model import left_padded_positions, with_bias
    from medchat.model.loading import forward_arguments

    keep_arg = "logits_to_keep" in forward_arguments(model)
    cache_arg = _cache_arg(model)
    stats = stats if stats is not None else DraftStats()
    rows, shared = ids.shape[0], len(prefix.ids) if prefix else 0
    cache: Any = prefix.cache_for(rows) if prefix else None
    generated: list[list[int]] = [[] for _ in range(rows)]
    live = list(range(rows))  # unfinished rows, in batch order
    order = list(range(rows))  # the batch rows the cache and tensors hold
    # What each pass feeds before its draft: first the prompts, then each row's last chosen token.
    head, head_mask, head_positions = ids, mask, left_padded_positions(mask) + shared
    lengths = mask.sum(1) + shared  # the position of the token after the head
    mask = mask.new_ones(rows, shared)  # the columns the cache holds (0: padding, rejected drafts)
    nxt = ids.new_zeros(rows)
    first = True
    while live:
        if len(live) < len(order):  # finished rows leave the batch, so passes only compute for the rest
            alive = set(live)
            keep_rows = torch.tensor([i for i, r in enumerate(order) if r in alive], device=ids.device)
            cache.reorder_cache(keep_rows)
            mask, lengths, nxt = mask[keep_rows], lengths[keep_rows], nxt[keep_rows]
        if not first:  # each row's last chosen token, at the position after what the cache holds
            head, head_mask, head_positions = nxt[:, None], torch.ones_like(nxt[:, None]), lengths[:, None] - 1
        order = list(live)
        # the pass always adds one token of the model's own after the kept draft
        drafts = [drafter.propose(generated[r], min(max_draft, budget - len(generated[r]) - 1)) for r in order]
        width = max(map(len, drafts))
        proposal = torch.full((len(order), width), -1, dtype=torch.long, device=ids.device)  # -1 never matches
        for i, d in enumerate(drafts):
            proposal[i, : len(d)] = torch.tensor(d, dtype=torch.long)
        positions = torch.cat([head_positions, lengths[:, None] + torch.arange(width, device=ids.device)], 1)
        if position_limit:  # other rows' longer drafts may run off the table; those slots are never kept
            positions = positions.clamp(max=position_limit - 1)
        logits = model(
            input_ids=torch.cat([head, proposal.clamp(min=0)], 1),
            attention_mask=torch.cat([mask, head_mask, mask.new_ones(len(order), width)], 1),
            position_ids=positions,
            use_cache=True,
            **({cache_arg: cache} if cache is not None else {}),
            **({"logits_to_keep": width + 1} if keep_arg else {}),
        )
        cache, logits = logits[cache_arg], logits.logits[:, -(width + 1) :]
        if first and opening_bias:  # the pass that chooses the first token
            logits = torch.cat([with_bias(logits[:, 0], opening_bias)[:, None], logits[:, 1:]], 1)
        choice = logits.argmax(-1)  # choice[:, j]: the greedy token after the head and j drafted tokens
        # per row, how many leading drafted tokens equal the model's choice
        keep = (proposal == choice[:, :-1]).long().cumprod(1).sum(1)
        most = int(keep.max()) if width else 0
        stats.passes += not first
        stats.drafted, stats.accepted = stats.drafted + sum(map(len, drafts)), stats.accepted + int(keep.sum())
        # Rows keep different numbers of tokens but share one cache: drop the tail no row kept, and
        # mask each row's own rejected slots (holes that attention skips, as it skips left padding).
        cache.crop(-(width - most))  # negative: tokens to remove from the end
        kept = torch.arange(most, device=ids.device)[None, :] < keep[:, None]
        mask = torch.cat([mask, head_mask, kept.to(mask.dtype)], 1)
        nxt = choice.gather(1, keep[:, None]).squeeze(1)
        lengths = lengths + keep + 1  # the kept drafts and the model's own token, fed by the next pass
        first = False
        for i, r in enumerate(order):
            generated[r] += drafts[i][: int(keep[i])] + [int(nxt[i])]
            ending = drafter.complete(generated[r]) if complete else None
            if ending is not None:
                generated[r] += ending[: budget - len(generated[r])]
            if eos_id in generated[r] or len(generated[r]) >= budget or ending is not None:
                live.remove(r)
    return [row[: row.index(eos_id) + 1] if eos_id in row else row for row in generated]
