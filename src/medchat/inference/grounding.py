"""Replies grounded in the knowledge base. The model decides what a message gets (a diagnosis, a description,
precautions, or one of the safety rules' fixed replies) and which condition it is about; what the reply
says about that condition is the knowledge base's text for it, never decoded words.

The retriever keeps the model honest about the condition: a diagnosis must be among the retriever's top
`top_k` conditions for the message, otherwise the reply gives the retriever's best, with a hedge. The
model's own emergency decision escalates and still names the retriever's best (with the hedge), as the
guard's escalation keeps the reply it prefixes: an escalation never costs the user the condition. A
message that names a condition ("what is psoriasis?", "how do I stop hep A spreading?") is answered about
that condition: as the model decided (describe or precautions), or with both when it decided neither. So
the chatbot names the condition at least as well as its retriever does whenever the model's choice is
unreliable, and far better than a small model decoding free text on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medchat.data.dialogue import DIAGNOSE_OPENING, REPLIES
from medchat.data.names import parse_disease
from medchat.model.tokenization import reply_ids
from medchat.safety.rules import escalates, refuses

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from medchat.data.condition_names import ConditionNames
    from medchat.data.kb import KnowledgeBase
    from medchat.retrieval.prompts import PromptBuilder
    from medchat.safety.rules import SafetyRules

HEDGE = "I can't be sure from this description."
_CLAUSE_END = re.compile(r"[.:!?](?=\s|$)")
FIXED = ("emergency", "refusal", "minor")  # replies the safety rules word; kept as the model gave them


@dataclass(frozen=True)
class Decision:
    task: str | None  # diagnose, describe, precautions, emergency, refusal, minor; None when unreadable
    disease: str | None  # the condition the reply names first


def decide(reply: str, rules: SafetyRules) -> Decision:
    """What a generated reply chose, read from the fixed shape of our replies (data/dialogue.py)."""
    text = reply.strip()
    disease = parse_disease(text)
    if text.startswith(DIAGNOSE_OPENING):
        return Decision("diagnose", disease)
    if disease and text.casefold().startswith(f"for {disease.casefold()}"):
        return Decision("precautions", disease)
    if disease and text.casefold().startswith(f"{disease.casefold()}:"):
        return Decision("describe", disease)
    if escalates(text):
        return Decision("emergency", None)
    if refuses(text):
        return Decision("refusal", None)
    if text.startswith(rules.minor_reply()[:40]):
        return Decision("minor", None)
    return Decision(None, disease)


def decision(reply: str, rules: SafetyRules) -> str:
    """The shortest opening of a reply that decides as the whole reply does: what a model trained on
    decisions (tokenize.reply_form: decision) generates. "It sounds most like Malaria.", "Malaria:",
    "For Malaria, these steps can help:", or the first sentence of a fixed reply."""
    text = reply.strip()
    whole = decide(text, rules)
    for end in _CLAUSE_END.finditer(text):
        opening = text[: end.end()]
        if decide(opening, rules) == whole:
            return opening
    return text


def escalation_bias(tokenizer: PreTrainedTokenizerBase, rules: SafetyRules, margin: float) -> dict[int, float]:
    """The opening bias (ChatModel) that lets a decision model escalate on its own only when the first token of
    the emergency reply beats every other first token by more than `margin` logits (0: plain greedy). The
    guard's red-flag patterns and triage classifier escalate whatever the model decided."""
    if not margin:
        return {}
    return {reply_ids(tokenizer, "", rules.emergency)[0]: -margin}


def about_reply(kb: KnowledgeBase, disease: str, rules: SafetyRules) -> str:
    """A condition the user named, when the model decided neither describe nor precautions: both, one referral."""
    described = REPLIES["describe"](kb, disease, rules).removesuffix(rules.referral).strip()
    return f"{described} {REPLIES['precautions'](kb, disease, rules)}"


def compose(reply: str, kb: KnowledgeBase, rules: SafetyRules) -> str:
    """A decision (or a whole reply) as the full reply it decides: the knowledge base's text for the condition
    it names, or the safety rules' fixed reply. A reply that decides nothing readable is kept as it is."""
    found = decide(reply, rules)
    if found.task in FIXED:
        return REPLIES[found.task](kb, "", rules)
    if found.task is not None and found.disease in kb.descriptions:
        return REPLIES[found.task](kb, found.disease, rules)
    return reply


class Grounding:
    """Turns generated replies into replies grounded in `kb`; `prompts` supplies the retriever (and the
    normaliser its queries go through), `names` reads which condition a question asks about."""

    def __init__(
        self, kb: KnowledgeBase, rules: SafetyRules, prompts: PromptBuilder, top_k: int, names: ConditionNames
    ):
        if prompts.retriever is None:
            raise ValueError("grounding needs a prompt builder with a retriever (an index folder)")
        self.kb, self.rules, self.prompts, self.top_k, self.names = kb, rules, prompts, top_k, names
        self.known = set(kb.diseases)

    def __call__(self, users: list[str], replies: list[str]) -> list[str]:
        ranked = self.prompts.retriever.rank(self.prompts.queries(users)) if users else []  # type: ignore[union-attr]
        return [self.ground(u, r, order) for u, r, order in zip(users, replies, ranked)]

    def ground(self, user: str, reply: str, ranked: list[str]) -> str:
        decision = decide(reply, self.rules)
        if decision.task == "emergency":  # escalate, and still say what the retriever finds most likely
            return f"{self.rules.emergency_reply()} {HEDGE} {REPLIES['diagnose'](self.kb, ranked[0], self.rules)}"
        if decision.task in FIXED:  # the rules' whole reply, also when the model gave only its opening
            return REPLIES[decision.task](self.kb, "", self.rules)
        asked = self.names.asked_about(user)  # a message that names a condition is answered about it
        if asked in self.known:
            if decision.task in ("describe", "precautions"):
                return REPLIES[decision.task](self.kb, asked, self.rules)
            return about_reply(self.kb, asked, self.rules)  # what it is and what helps: the model chose neither
        task = decision.task if decision.task in ("describe", "precautions") else "diagnose"
        if decision.disease in self.known and decision.disease in ranked[: self.top_k]:
            return REPLIES[task](self.kb, decision.disease, self.rules)
        return f"{HEDGE} {REPLIES[task](self.kb, ranked[0], self.rules)}"


class Composer:
    """compose() over a batch: what ChatModel applies to a decision model's generations."""

    def __init__(self, kb: KnowledgeBase, rules: SafetyRules):
        self.kb, self.rules = kb, rules

    def __call__(self, replies: list[str]) -> list[str]:
        return [compose(r, self.kb, self.rules) for r in replies]
