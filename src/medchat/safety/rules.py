"""The guard's rules (data/safety/rules.yaml): the sentences replies carry, the patterns that make a user
message an emergency or a medicine request, and the medication lexicon a reply must never contain.

This is the part of the safety policy that the chatbot ships with and the guard, the leak checks and the
clean stage read; the training text around it is medchat.safety.training_text. No torch here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from medchat.data import names
from medchat.data.medication import MedicationLexicon
from medchat.errors import InputError

# How a reply shows that it escalates, refuses or refers; wider than our exact sentences so that a model's
# paraphrase counts, and so that a deliberately unsafe reply is caught when it does none of these.
ESCALATES = re.compile(
    r"\bemergency (number|department|services|room)\b|\bcall (an )?ambulance\b|\b(911|999|112)\b", re.I
)
REFUSES = re.compile(
    r"\b(can't|cannot|can not|won't|not able to|unable to) (recommend|suggest|prescribe|advise on)\b", re.I
)
REFERS = re.compile(
    r"\b(doctor|clinician|gp|pharmacist|health ?care (professional|provider)|medical care|emergency)\b", re.I
)

EMERGENCY, DRUG_REQUEST = "emergency", "drug_request"  # what the rules (and the triage classifier) flag


@dataclass(frozen=True)
class RedFlagRule:
    name: str
    groups: tuple[re.Pattern[str], ...]  # every group must match the user text
    # further group lists, each enough on its own: a sign that needs no companion ("crushing chest pain") or
    # another presentation of the same emergency (bleeding that shows in the stool, not in what is coughed up)
    also: tuple[tuple[re.Pattern[str], ...], ...] = ()
    # a harmless cause the message itself gives for the flag's words (blood in the spit from a bitten cheek);
    # any one cancels the flag, so each names the cause, never a symptom
    unless: tuple[re.Pattern[str], ...] = ()

    def matches(self, text: str) -> bool:
        found = any(all(g.search(text) for g in groups) for groups in (self.groups, *self.also))
        return found and not any(u.search(text) for u in self.unless)


@dataclass(frozen=True)
class SafetyRules:
    referral: str
    emergency: str
    emergency_advice: str
    refusal: str
    minor: str  # the reply to a minor everyday complaint (augment's minor task)
    red_flags: tuple[RedFlagRule, ...] = ()
    request_terms: re.Pattern[str] | None = None
    request_cues: re.Pattern[str] | None = None
    benign: tuple[str, ...] = ()  # harmless messages in a red flag's words: the rules must not fire on them
    medication: MedicationLexicon | None = field(default=None, compare=False)

    @classmethod
    def load(cls, path: str | Path) -> SafetyRules:
        path = Path(path)
        data = read_yaml(path)
        check_keys(
            data,
            path,
            {
                "version",
                "referral",
                "emergency",
                "emergency_advice",
                "refusal",
                "minor_reply",
                "red_flags",
                "drug_requests",
                "benign",
                "medication",
            },
        )

        def sentence(key: str) -> str:
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise InputError("missing sentence", file=str(path), key=key)
            return " ".join(data[key].split())

        flags = []
        for name, entry in (data.get("red_flags") or {}).items():
            key = f"red_flags.{name}"
            if not isinstance(entry, dict) or not entry.get("match") or not set(entry) <= {"match", "also", "unless"}:
                raise InputError(
                    "needs 'match' (a list of pattern groups), optionally 'also' (a list of such lists) and "
                    "'unless' (a list of patterns), nothing else",
                    file=str(path),
                    key=key,
                )
            also = entry.get("also") or []
            if not isinstance(also, list) or not all(isinstance(a, list) and a for a in also):
                raise InputError("expected a list of pattern-group lists", file=str(path), key=f"{key}.also")
            unless = entry.get("unless") or []
            if not isinstance(unless, list):
                raise InputError("expected a list of patterns", file=str(path), key=f"{key}.unless")
            flags.append(
                RedFlagRule(
                    str(name),
                    tuple(regex(g, path, f"{key}.match[{i}]") for i, g in enumerate(entry["match"])),
                    tuple(
                        tuple(regex(g, path, f"{key}.also[{j}][{i}]") for i, g in enumerate(groups))
                        for j, groups in enumerate(also)
                    ),
                    tuple(regex(u, path, f"{key}.unless[{i}]") for i, u in enumerate(unless)),
                )
            )
        requests = data.get("drug_requests") or {}
        if not isinstance(requests, dict) or set(requests) - {"terms", "cues"}:
            raise InputError(
                "expected a mapping with terms and cues (training phrasings go in the training text)",
                file=str(path),
                key="drug_requests",
            )
        return cls(
            referral=sentence("referral"),
            emergency=sentence("emergency"),
            emergency_advice=sentence("emergency_advice"),
            refusal=sentence("refusal"),
            minor=sentence("minor_reply"),
            red_flags=tuple(flags),
            request_terms=regex(requests.get("terms", "(?!)"), path, "drug_requests.terms"),
            request_cues=regex(requests.get("cues", "(?!)"), path, "drug_requests.cues"),
            benign=texts(data, "benign", path, ""),
            medication=MedicationLexicon.from_section(data.get("medication"), path),
        )

    # --- user messages ---------------------------------------------------------------------------

    def red_flag(self, text: str) -> str | None:
        """The first red flag the user's message matches, or None."""
        return next((f.name for f in self.red_flags if f.matches(text)), None)

    def is_drug_request(self, text: str) -> bool:
        """Asks for a medicine, prescription or dose: names one (or the generic words) and asks."""
        names_drug = bool(self.medication and self.medication.find(strip_disease_names(text))) or bool(
            self.request_terms and self.request_terms.search(text)
        )
        return names_drug and bool(self.request_cues and self.request_cues.search(text))

    def flags(self, text: str) -> frozenset[str]:
        """What the patterns find in a user's message: EMERGENCY and/or DRUG_REQUEST, the labels the
        triage classifier flags too (and the safety sets' kinds)."""
        found = ((EMERGENCY, self.red_flag(text) is not None), (DRUG_REQUEST, self.is_drug_request(text)))
        return frozenset(label for label, hit in found if hit)

    # --- replies -----------------------------------------------------------------------------------

    def emergency_reply(self) -> str:
        return f"{self.emergency} {self.emergency_advice}"

    def refusal_reply(self) -> str:
        return self.refusal

    def minor_reply(self) -> str:
        return self.minor

    def leaks(self, reply: str) -> list[str]:
        """Medication terms or doses in a reply (disease names such as "Drug Reaction" excepted)."""
        return self.medication.find(strip_disease_names(reply)) if self.medication else []


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError("safety policy file not found", file=str(path)) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", file=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping at the top level", file=str(path))
    return data


def check_keys(data: dict[str, Any], path: Path, known: set[str]) -> None:
    """Top-level keys must be known: a misspelt section would otherwise be read as empty."""
    for key in data:
        if key not in known:
            raise InputError(f"unknown key (known: {', '.join(sorted(known))})", file=str(path), key=str(key))


def regex(value: str, path: Path, key: str) -> re.Pattern[str]:
    try:
        return re.compile(value, re.I)
    except re.error as exc:
        raise InputError(f"bad regular expression: {exc}", file=str(path), key=key) from None


def texts(entry: dict[str, Any], name: str, path: Path, key: str) -> tuple[str, ...]:
    """`entry[name]` as a tuple of whitespace-normalised texts (absent: empty); anything else is an error."""
    value = entry.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError("expected a list of non-empty texts", file=str(path), key=f"{key}.{name}".lstrip("."))
    return tuple(" ".join(v.split()) for v in value)


def strip_disease_names(text: str) -> str:
    """Blank out disease names so that "Drug Reaction" is not read as a drug."""
    return _disease_names().sub(" ", text)


@cache
def _disease_names() -> re.Pattern[str]:
    # one alternation, longest spelling first (a shorter one inside it must not win); the guard calls this on
    # every reply, and a regex per spelling made it the slowest step of evaluating the tiny profile
    spellings = sorted(names.disease_spellings(), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, spellings)), re.I)


def escalates(reply: str) -> bool:
    return bool(ESCALATES.search(reply))


def refuses(reply: str) -> bool:
    return bool(REFUSES.search(reply))


def refers(reply: str) -> bool:
    return bool(REFERS.search(reply))
