"""Symptom <-> everyday language. The phrasings live in data/lexicon.yaml; this module loads and checks them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from medchat.data import names
from medchat.errors import InputError


@dataclass(frozen=True)
class Lexicon:
    labels: dict[str, str]  # canonical symptom -> clean display phrase ("cold hands and feet")
    phrasings: dict[str, tuple[str, ...]]  # canonical symptom -> first-person clauses

    @classmethod
    def load(cls, path: str | Path) -> Lexicon:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise InputError("lexicon not found", file=str(path), fix="set augment.lexicon") from None
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML: {exc}", file=str(path)) from None
        entries = data.get("symptoms")
        if not isinstance(entries, dict):
            raise InputError("expected a 'symptoms' mapping", file=str(path), key="symptoms")
        labels, phrasings = {}, {}
        for raw, entry in entries.items():
            symptom = names.canonical_symptom(str(raw))
            key = f"symptoms.{raw}"
            if symptom is None:
                raise InputError(
                    "not a known symptom", file=str(path), key=key, fix="use a name from medchat.names.SYMPTOMS"
                )
            if not isinstance(entry, dict) or not entry.get("label") or not entry.get("phrasings"):
                raise InputError("needs a 'label' and a non-empty 'phrasings' list", file=str(path), key=key)
            labels[symptom] = str(entry["label"])
            phrasings[symptom] = tuple(str(p).strip() for p in entry["phrasings"])
        missing = [s for s in names.SYMPTOMS if s not in labels]
        if missing:
            raise InputError(
                f"{len(missing)} symptoms have no entry, e.g. {missing[0]!r}",
                file=str(path),
                key="symptoms",
                fix="every canonical symptom needs a label and phrasings",
            )
        return cls(labels, phrasings)
