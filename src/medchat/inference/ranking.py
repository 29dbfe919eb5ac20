"""Ranking a fixed list of continuations (the 41 disease names) by their likelihood after each prompt.

One forward pass per batch of prompts, with no KV cache: each row holds a prompt followed by every
candidate, and a 4D attention mask lets each candidate's tokens see the prompt and the candidate's own
earlier tokens only (tree attention, as speculative decoding uses to verify several drafts at once).
Position ids restart after the prompt for each candidate, so every candidate is scored exactly as if it
were the only text after the prompt. Prompts are left-padded, so the prompt ends and the candidates sit
in the same columns in every row, and the LM head runs only on the columns from the prompt's last token on.

It replaces repeating a prompt's KV cache for every candidate, which spent a quarter of its time copying
the cache (`batch_repeat_interleave`, then the cache update's concatenation). Imports torch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medchat.model.loading import forward_arguments
from medchat.model.tokenization import prompt_ids

if TYPE_CHECKING:
    from medchat.inference.chat_model import ChatModel


def candidate_tree(endings: list[list[int]]) -> tuple[list[int], list[int], list[int]]:
    """The candidates laid end to end: (token ids, owner: the candidate of each token, offset: its index
    within that candidate)."""
    ids = [t for e in endings for t in e]
    owner = [j for j, e in enumerate(endings) for _ in e]
    offset = [t for e in endings for t in range(len(e))]
    return ids, owner, offset


def tree_attention_mask(context_lengths: list[int], width: int, owner: list[int], offset: list[int]) -> Any:
    """Boolean [rows, 1, width + tree, width + tree] mask (True: may attend) for left-padded contexts of
    `width` columns followed by the candidate tree. Context tokens attend causally within their row's
    context; a candidate token attends to the whole context and to its own candidate up to itself; a
    padding column attends to itself only (a row with nothing to attend to would give NaN)."""
    import torch

    owner_t, offset_t = torch.tensor(owner), torch.tensor(offset)
    tree = len(owner)
    total = width + tree
    within_tree = (owner_t[:, None] == owner_t[None, :]) & (offset_t[:, None] >= offset_t[None, :])
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    mask = torch.zeros(len(context_lengths), 1, total, total, dtype=torch.bool)
    for row, n in enumerate(context_lengths):
        first = width - n  # the context's first real column
        mask[row, 0, first:width, first:width] = causal[:n, :n]
        mask[row, 0, width:, first:width] = True
        mask[row, 0, width:, width:] = within_tree
        pad = torch.arange(first)
        mask[row, 0, pad, pad] = True
    return mask


def rank_continuations(
    chat: ChatModel, users: list[str], prefix: str, candidates: list[str], users_per_pass: int = 16
) -> list[list[str]]:
    """For each user text, `candidates` sorted by log P(" <candidate>." | prompt + prefix), best first."""
    scores = continuation_scores(chat, users, prefix, candidates, users_per_pass)
    return [[candidates[i] for i in order] for order in scores.argsort(dim=1, descending=True).tolist()]


def continuation_scores(
    chat: ChatModel, users: list[str], prefix: str, candidates: list[str], users_per_pass: int = 16
) -> Any:
    """[users, candidates] tensor of log P(" <candidate>." | prompt + prefix)."""
    import torch

    tok, model = chat.tokenizer, chat.model
    endings = [tok(f" {c}.", add_special_tokens=False)["input_ids"] for c in candidates]
    tree_ids, owner, offset = candidate_tree(endings)
    tree = len(tree_ids)
    prefix_ids = tok(prefix, add_special_tokens=False)["input_ids"]
    # The LM head runs on the last tree + 1 columns: the context's last one, then the tree. Tree token i
    # is predicted by the context's last column (kept column 0) when it starts its candidate, else by the
    # token before it (kept column i).
    gather_rows = torch.tensor([0 if offset[i] == 0 else i for i in range(tree)])
    targets = torch.tensor(tree_ids)
    owner_t = torch.tensor(owner)
    keep_arg = "logits_to_keep" in forward_arguments(model)
    model.eval()
    longest = max(map(len, endings))
    scores = []
    with torch.inference_mode():
        for start in range(0, len(users), users_per_pass):
            contexts = [
                chat._fit(prompt_ids(tok, u) + prefix_ids, [0] * longest)[0]
                for u in users[start : start + users_per_pass]
            ]
            ids, _ = chat._pad_left(contexts)
            rows, width = ids.shape
            ids = torch.cat([ids, torch.tensor(tree_ids, device=ids.device).repeat(rows, 1)], 1)
            lengths = [len(c) for c in contexts]
            positions = torch.zeros_like(ids)
            for row, n in enumerate(lengths):
                positions[row, width - n : width] = torch.arange(n)
                positions[row, width:] = n + torch.tensor(offset)
            mask = tree_attention_mask(lengths, width, owner, offset).to(ids.device)
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                **({"logits_to_keep": tree + 1} if keep_arg else {}),
            )
            logits = out.logits[:, -(tree + 1) :]
            logprobs = torch.log_softmax(logits.float(), -1)  # [rows, kept, vocab]
            token_scores = logprobs[:, gather_rows.to(ids.device), targets.to(ids.device)]  # [rows, tree]
            totals = torch.zeros(rows, len(candidates), device=ids.device).index_add_(
                1, owner_t.to(ids.device), token_scores
            )
            scores.append(totals.cpu())
    return torch.cat(scores) if scores else torch.zeros(0, len(candidates))
