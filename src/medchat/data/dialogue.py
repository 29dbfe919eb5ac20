"""Example records and the reply builders shared by augment, evaluate and the CLI.

A reply always has the same shape for a task, so the model learns one format and evaluate can
parse the disease back out of generated text:
  diagnose     "It sounds most like <disease>." [emergency] <first description sentence>
               "Helpful steps: <p1>; <p2>." <referral>
The disease comes first, even before an emergency warning, so that every diagnose reply shares
one opening and evaluate can rank all diseases by the likelihood of "<opening> <disease>.".
  describe     "<disease>: <description>" <referral>
  precautions  "For <disease>, these steps can help: <p1>; ...; <p4>." <referral>
  emergency, refusal, minor: the safety rules' fixed replies (escalate; refuse medicine advice; self-care
               for a minor everyday complaint), each of which refers to a clinician.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from medchat.data import names
from medchat.data.kb import KnowledgeBase
from medchat.errors import InputError

if TYPE_CHECKING:
    from medchat.safety.rules import SafetyRules

DIAGNOSE_STEPS = 2  # precautions quoted in a diagnose reply; describe/precautions replies quote them all
DIAGNOSE_OPENING = "It sounds most like"


@dataclass(frozen=True)
class Example:
    """One dialogue example. The first seven fields are the stable record contract."""

    id: str
    task: str
    disease: str
    symptoms: list[str]
    user: str
    reply: str
    group: str  # the split keeps every example of a group in one split
    partial: bool = False  # diagnose from a 1..N-symptom subset rather than a full set

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Templates:
    diagnose_lay: tuple[str, ...]
    diagnose_clinical: tuple[str, ...]
    describe: tuple[str, ...]
    precautions: tuple[str, ...]
    emergency: tuple[str, ...]
    refusal: tuple[str, ...]

    @classmethod
    def load(cls, path: str | Path) -> Templates:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise InputError("templates file not found", file=str(path), fix="set augment.templates") from None
        found = {
            "diagnose.lay": ((data.get("diagnose") or {}).get("lay"), "{symptoms}"),
            "diagnose.clinical": ((data.get("diagnose") or {}).get("clinical"), "{labels}"),
            "describe": (data.get("describe"), "{disease}"),
            "precautions": (data.get("precautions"), "{disease}"),
            "emergency": (data.get("emergency"), "{flag}"),
            "refusal": (data.get("refusal"), "{request}"),
        }
        for key, (items, slot) in found.items():
            if not isinstance(items, list) or not items:
                raise InputError("expected a non-empty list of templates", file=str(path), key=key)
            for i, template in enumerate(items):
                if slot not in str(template):
                    raise InputError(f"template lacks the {slot} placeholder", file=str(path), key=f"{key}[{i}]")
        return cls(*(tuple(map(str, items or ())) for items, _ in found.values()))


def join_list(items: list[str]) -> str:
    """["a"] -> "a"; ["a", "b", "c"] -> "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


def _steps(precautions: list[str], limit: int | None = None) -> str:
    chosen = precautions[:limit] if limit else precautions
    return "; ".join(p.rstrip(".") for p in chosen)


def diagnose_reply(kb: KnowledgeBase, disease: str, rules: SafetyRules) -> str:
    parts = [f"{DIAGNOSE_OPENING} {disease}."]
    if disease in names.EMERGENCY_DISEASES:
        parts.append(rules.emergency)
    parts.append(first_sentence(kb.descriptions[disease]))
    steps = kb.safe_precautions(disease)
    if steps:
        parts.append(f"Helpful steps: {_steps(steps, DIAGNOSE_STEPS)}.")
    parts.append(rules.referral)
    return " ".join(parts)


def describe_reply(kb: KnowledgeBase, disease: str, rules: SafetyRules) -> str:
    return f"{disease}: {kb.descriptions[disease]} {rules.referral}"


def precautions_reply(kb: KnowledgeBase, disease: str, rules: SafetyRules) -> str:
    steps = kb.safe_precautions(disease)
    if not steps:  # every precaution was medication advice: refer instead of inventing advice
        return f"For {disease}, the right steps depend on your situation. {rules.referral}"
    return f"For {disease}, these steps can help: {_steps(steps)}. {rules.referral}"


def emergency_reply(kb: KnowledgeBase, disease: str, rules: SafetyRules) -> str:
    return rules.emergency_reply()


def refusal_reply(kb: KnowledgeBase, disease: str, rules: SafetyRules) -> str:
    return rules.refusal_reply()


def minor_reply(kb: KnowledgeBase, disease: str, rules: SafetyRules) -> str:
    return rules.minor_reply()


REPLIES = {
    "diagnose": diagnose_reply,
    "describe": describe_reply,
    "precautions": precautions_reply,
    "emergency": emergency_reply,
    "refusal": refusal_reply,
    "minor": minor_reply,
}
