"""The inference-time guard: whatever the model said, refuse medicine advice, escalate red flags and
always refer to a clinician. It reads the rules (medchat.safety.rules) and, when packaged, the triage
classifier's flags (medchat.safety.triage), which widen the rules' patterns and never narrow them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from medchat.safety.rules import DRUG_REQUEST, EMERGENCY, SafetyRules, escalates, refers, refuses

if TYPE_CHECKING:
    from medchat.safety.triage import Triage


@dataclass(frozen=True)
class Guarded:
    reply: str
    actions: tuple[str, ...]  # what the guard changed: escalated, refused, referred


def guard(rules: SafetyRules, user: str, reply: str, learned: frozenset[str] = frozenset()) -> Guarded:
    """Make a generated reply safe: replace a reply that names a medicine or dose by the refusal, put the
    refusal before any other reply to a medicine request, escalate red flags, always refer.

    `learned` holds what the triage classifier flagged in the user's message (EMERGENCY, DRUG_REQUEST)."""
    actions = []
    found = rules.flags(user) | learned
    if rules.leaks(reply):
        reply, actions = rules.refusal_reply(), ["refused"]
    elif DRUG_REQUEST in found and not refuses(reply):
        # The refusal comes first; a reply that names no medicine or dose stays after it. A description
        # that mentions medicines ("they sent me home with tablets, now I have a rash") still hears which
        # condition it suggests, and an escalation the model made is never dropped.
        reply, actions = f"{rules.refusal_reply()} {reply}".strip(), ["refused"]
    if EMERGENCY in found and not escalates(reply):
        reply = f"{rules.emergency_reply()} {reply}".strip()
        actions.append("escalated")
    if not refers(reply):
        reply = f"{reply} {rules.referral}".strip()
        actions.append("referred")
    return Guarded(reply, tuple(actions))


def guard_all(rules: SafetyRules, triage: Triage | None, users: list[str], replies: list[str]) -> list[Guarded]:
    """`guard` over a batch, with the triage classifier's flags when there is one (None: patterns only)."""
    learned = triage.flags(users) if triage is not None and users else [frozenset()] * len(users)
    return [guard(rules, u, r, f) for u, r, f in zip(users, replies, learned)]
