"""Generation and scoring with a trained model: batched, KV-cached, left-padded. Imports torch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from medchat.model.loading import forward_arguments
from medchat.model.tokenization import prompt_ids, reply_ids

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from medchat.inference.drafting import PromptPrefix


@dataclass
class Generation:
    replies: list[str]
    seconds: float
    new_tokens: int


class ChatModel:
    """A causal LM and its tokenizer as a chatbot. With `drafts` (known reply texts), greedy generation
    verifies looked-up continuations instead of decoding token by token (medchat.inference.drafting): same
    replies, several times faster, and the keys and values of the start all prompts share (the chat
    template's system turn) are computed once, so the weights must not change while a ChatModel uses them.
    With a `composer` (a decision model), a reply ends as soon as one known opening alone starts with it.
    `opening_bias` (token id -> logit offset) applies to a reply's first token only: a decision model's
    first token is its decision (medchat.inference.grounding), so an offset there is a
    threshold on that decision (medchat.inference.grounding.escalation_bias)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_new_tokens: int = 160,
        batch_size: int = 64,
        drafts: list[str] | None = None,
        composer: Callable[[list[str]], list[str]] | None = None,
        opening_bias: dict[int, float] | None = None,
    ):
        from medchat.inference.drafting import ReplyDrafter

        self.model, self.tokenizer = model, tokenizer
        self.opening_bias = opening_bias or {}
        # a model trained on decisions (tokenize.reply_form) has them composed into whole replies
        self.composer = composer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.drafter = ReplyDrafter.from_texts(tokenizer, drafts) if drafts else None

    @property
    def max_positions(self) -> int | None:
        """Longest sequence the model can read (GPT-2 style models have a fixed position table)."""
        return getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None
        )

    def _fit(self, prompt: list[int], answer: list[int]) -> tuple[list[int], list[int]]:
        """Cut the prompt from the left (and, if it alone is too long, the answer from the right)
        so that prompt + answer fits the position table."""
        limit = self.max_positions
        if limit is None or len(prompt) + len(answer) <= limit:
            return prompt, answer
        answer = answer[: limit - 1]
        return prompt[len(prompt) - (limit - len(answer)) :], answer

    @classmethod
    def load(cls, model_dir, **kwargs) -> ChatModel:
        """A trained model folder; a packaged chatbot's drafts.json, if present, turns drafting on."""
        from medchat.inference.drafting import load_drafts
        from medchat.model.loading import load_trained

        kwargs.setdefault("drafts", load_drafts(model_dir))
        return cls(*load_trained(model_dir), **kwargs)

    @cached_property
    def _prompt_prefix(self) -> PromptPrefix | None:
        """The start every prompt shares (the chat template's turns before the user's text), its keys and
        values computed at the first drafted generation; None when prompts share nothing."""
        from medchat.inference.drafting import PromptPrefix

        one, other = prompt_ids(self.tokenizer, "a"), prompt_ids(self.tokenizer, "7")
        shared = next((i for i, (x, y) in enumerate(zip(one, other)) if x != y), 0)
        return PromptPrefix.compute(self.model, one[:shared]) if shared else None

    def _pad_left(self, sequences: list[list[int]]) -> tuple[Any, Any]:
        import torch

        width = max(map(len, sequences))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], device=self.model.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=self.model.device)
        return ids, mask

    def generate(self, users: list[str]) -> Generation:
        """Greedy replies, in input order."""
        import torch

        from medchat.inference.drafting import speculative_generate

        new_tokens = 0
        started = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        limit = self.max_positions
        with torch.inference_mode():
            encoded = [prompt_ids(self.tokenizer, u) for u in users]
            # batches of similar length: little left padding, which every pass would compute
            order = sorted(range(len(users)), key=lambda i: len(encoded[i]))
            by_position: dict[int, str] = {}
            for start in range(0, len(users), self.batch_size):
                chosen = order[start : start + self.batch_size]
                prompts = [encoded[i] for i in chosen]
                budget = self.max_new_tokens
                if limit:  # never run past the position table (scratch models are short)
                    prompts = [p[-(limit - 1) :] for p in prompts]
                    budget = max(1, min(budget, limit - max(map(len, prompts))))
                if self.drafter is not None:
                    prefix = self._prompt_prefix
                    if prefix is not None and any(p[: len(prefix.ids)] != prefix.ids for p in prompts):
                        prefix = None  # a prompt cut to fit, or one whose first tokens merge with the prefix
                    ids, mask = self._pad_left([p[len(prefix.ids) :] if prefix else p for p in prompts])
                    rows = speculative_generate(
                        self.model,
                        ids,
                        mask,
                        budget,
                        self.drafter,
                        self.tokenizer.eos_token_id,
                        position_limit=limit,
                        opening_bias=self.opening_bias,
                        prefix=prefix,
                        complete=self.composer is not None,
                    )
                else:
                    ids, mask = self._pad_left(prompts)
                    out = self.model.generate(  # type: ignore[operator]  # GenerationMixin, typed through nn.Module
                        input_ids=ids,
                        attention_mask=mask,
                        max_new_tokens=budget,
                        do_sample=False,
                        pad_token_id=self.tokenizer.pad_token_id,
                        eos_token_id=self.tokenizer.eos_token_id,
                        logits_processor=[OpeningBias(ids.shape[1], self.opening_bias)] if self.opening_bias else None,
                    )
                    rows = out[:, ids.shape[1] :].tolist()
                for i, row in zip(chosen, rows):
                    if self.tokenizer.eos_token_id in row:
                        row = row[: row.index(self.tokenizer.eos_token_id)]
                    row = [t for t in row if t != self.tokenizer.pad_token_id]
                    new_tokens += len(row)
                    by_position[i] = str(self.tokenizer.decode(row, skip_special_tokens=True)).strip()
        self.model.train(was_training)
        replies = [by_position[i] for i in range(len(users))]
        if self.composer is not None:
            replies = self.composer(replies)
        return Generation(replies, time.perf_counter() - started, new_tokens)

    def sequence_logprobs(self, pairs: list[tuple[str, str]], whole_turn: bool = True) -> list[tuple[float, int]]:
        """(sum of log-probs, token count) of each reply given its user text, teacher-forced.

        With whole_turn the reply includes its end-of-turn token(s); without, it is scored as the
        start of a reply (used to rank candidate openings)."""
        import torch

        encoded = []
        for user, reply in pairs:
            answer = (
                reply_ids(self.tokenizer, user, reply)
                if whole_turn
                else self.tokenizer(reply, add_special_tokens=False)["input_ids"]
            )
            encoded.append(self._fit(prompt_ids(self.tokenizer, user), answer))
        # Batches of similar length: little padding. The replies sit at the right end (left padding),
        # so the LM head only needs the last `keep` positions, where they are predicted.
        order = sorted(range(len(pairs)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
        results: list[tuple[float, int]] = [(0.0, 0)] * len(pairs)
        keep_arg = "logits_to_keep" in forward_arguments(self.model)
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chosen = order[start : start + self.batch_size]
                answers = [encoded[i][1] for i in chosen]
                ids, mask = self._pad_left([encoded[i][0] + encoded[i][1] for i in chosen])
                keep = max(map(len, answers)) + 1 if keep_arg else ids.shape[1]
                logits = self.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=left_padded_positions(mask),
                    **({"logits_to_keep": keep} if keep_arg else {}),
                ).logits
                # logits[:, j] sits at position width - keep + j and predicts the token after it
                token_logprobs = -torch.nn.functional.cross_entropy(
                    logits[:, :-1].transpose(1, 2).float(), ids[:, ids.shape[1] - keep + 1 :], reduction="none"
                )
                for row, (i, answer) in enumerate(zip(chosen, answers)):
                    results[i] = (float(token_logprobs[row, keep - 1 - len(answer) :].sum()), len(answer))
        return results

    def rank(self, user: str, candidates: dict[str, str]) -> list[str]:
        """Candidate keys sorted by the likelihood of their reply text, most likely first."""
        keys = list(candidates)
        scores = self.sequence_logprobs([(user, candidates[k]) for k in keys], whole_turn=False)
        return [k for _, k in sorted(zip((s for s, _ in scores), keys), key=lambda t: -t[0])]

    def perplexity(self, pairs: list[tuple[str, str]]) -> float:
        scores = self.sequence_logprobs(pairs)
        return math.exp(-sum(s for s, _ in scores) / max(1, sum(n for _, n in scores)))


class OpeningBias:
    """A logits processor for `generate`: adds `bias` (token id -> offset) to the scores of the first new
    token only (the prompt is `width` columns wide)."""

    def __init__(self, width: int, bias: dict[int, float]):
        self.width, self.bias = width, bias

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return with_bias(scores, self.bias) if input_ids.shape[1] == self.width else scores


def with_bias(logits: torch.Tensor, bias: dict[int, float]) -> torch.Tensor:
    """`logits` [rows, vocab] with `bias` added to the named tokens (a copy: the model's output stays)."""
    biased = logits.clone()
    for token, offset in bias.items():
        biased[:, token] += offset
    return biased


def left_padded_positions(mask: torch.Tensor) -> Any:
    """Position ids for left-padded rows: each row's first real token is position 0. (Without them a
    GPT-2 numbers every column from 0, so a padded row would read its tokens at shifted positions.)"""
    return (mask.cumsum(-1) - 1).clamp(min=0)
