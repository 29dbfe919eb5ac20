"""The condition a user's message asks about, by any of its everyday names ("hep C", "high blood pressure",
"athlete's foot"). The names live in data/condition_names.yaml; this module loads, checks and matches them.

Replies are parsed with medchat.data.names.parse_disease, which knows only the canonical names and the
published misspellings: our replies always use the canonical name. Users do not, so a question such as
"what is TB?" needs the everyday names to be answered about the condition it names.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from medchat.data import names
from medchat.errors import InputError


@dataclass(frozen=True)
class ConditionNames:
    everyday: dict[str, tuple[str, ...]]  # canonical disease -> everyday names
    # phrases that contain a name but do not name the condition: "a cold sweat" is not "a cold"
    not_names: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> ConditionNames:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise InputError("condition names not found", file=str(path), fix="set evaluate.condition_names") from None
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML: {exc}", file=str(path)) from None
        entries = data.get("conditions")
        if not isinstance(entries, dict):
            raise InputError("expected a 'conditions' mapping", file=str(path), key="conditions")
        everyday: dict[str, tuple[str, ...]] = {}
        owner: dict[str, str] = {}
        for raw, aliases in entries.items():
            key = f"conditions.{raw}"
            disease = names.canonical_disease(str(raw))
            if disease is None:
                raise InputError("not a known condition", file=str(path), key=key, fix="use a name from names.DISEASES")
            if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
                raise InputError("expected a list of non-empty names", file=str(path), key=key)
            for alias in aliases:
                other = owner.setdefault(_fold(alias), disease)
                if other != disease:  # one name, two conditions: the match would be a coin toss
                    raise InputError(f"{alias!r} also names {other}", file=str(path), key=key)
            everyday[disease] = tuple(a.strip() for a in aliases)
        not_names = data.get("not_names", [])
        if not isinstance(not_names, list) or not all(isinstance(n, str) and n.strip() for n in not_names):
            raise InputError("expected a list of non-empty phrases", file=str(path), key="not_names")
        return cls(everyday, tuple(n.strip() for n in not_names))

    @functools.cached_property
    def spellings(self) -> dict[str, str]:
        """Every spelling that names a condition (canonical names, published misspellings, everyday names),
        folded (_fold), -> the canonical disease."""
        found = {_fold(s): d for s, d in names.disease_spellings().items()}
        for disease, aliases in self.everyday.items():
            found.update({_fold(a): disease for a in aliases})
        return found

    @functools.cached_property
    def _pattern(self) -> re.Pattern:
        phrases = {*self.spellings, *map(_fold, self.not_names)}
        longest_first = sorted(phrases, key=len, reverse=True)
        return re.compile(r"(?<!\w)(" + "|".join(map(re.escape, longest_first)) + r")(?!\w)")

    def asked_about(self, text: str) -> str | None:
        """The condition a message names first, or None. At one position the longest phrase wins, so "hep B"
        in "hep B and hep D" is Hepatitis B, "osteoarthritis" is never read as "arthritis", and a not-name
        ("a cold sweat") hides the name inside it ("a cold")."""
        for match in self._pattern.finditer(_fold(text)):
            if match.group(1) in self.spellings:
                return self.spellings[match.group(1)]
        return None


def _fold(text: str) -> str:
    """Case, runs of whitespace and typographic apostrophes do not tell names apart."""
    return " ".join(text.replace("\u2019", "'").casefold().split())
