"""Finds medication advice (drug names, drug classes, remedies, doses) in text.

The terms live in the safety rules file (data/safety/rules.yaml), not here; this module only turns them into one regex.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from medchat.errors import InputError

SECTIONS = ("drugs", "classes", "remedies")


@dataclass(frozen=True)
class MedicationLexicon:
    terms: re.Pattern
    doses: tuple[re.Pattern, ...]

    @classmethod
    def from_rules(cls, path: str | Path) -> MedicationLexicon:
        try:
            rules = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("safety rules file not found", file=str(path)) from None
        return cls.from_section((rules or {}).get("medication"), path)

    @classmethod
    def from_section(cls, section: object, path: str | Path) -> MedicationLexicon:
        """The `medication` section of an already-read rules file (`path` names it in errors)."""
        if not isinstance(section, dict):
            raise InputError("missing 'medication' section", file=str(path), key="medication")
        words = []
        for name in SECTIONS:
            values = section.get(name)
            if not isinstance(values, list) or not values:
                raise InputError("expected a non-empty list of terms", file=str(path), key=f"medication.{name}")
            words += [str(v) for v in values]
        # Longest first so "pain reliever" wins over a shorter overlapping term.
        alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))
        terms = re.compile(rf"\b(?:{alternatives})(?:e?s)?\b", re.IGNORECASE)
        try:
            doses = tuple(re.compile(p, re.IGNORECASE) for p in section.get("dose_patterns", []))
        except re.error as exc:
            raise InputError(f"bad dose pattern: {exc}", file=str(path), key="medication.dose_patterns") from None
        return cls(terms=terms, doses=doses)

    def find(self, text: str) -> list[str]:
        """Every medication term or dose found in `text`, lower-cased, in order of appearance."""
        hits = [(m.start(), m.group(0).lower()) for m in self.terms.finditer(text)]
        for pattern in self.doses:
            hits += [(m.start(), m.group(0).lower()) for m in pattern.finditer(text)]
        return [hit for _, hit in sorted(hits)]
