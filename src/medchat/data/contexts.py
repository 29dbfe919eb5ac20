"""The everyday circumstances of each condition (data/contexts.yaml): risk factors, exposures, who gets it and
what it follows, as people mention them ("started a new tablet last week", "our baby is a few days old").

The knowledge base lists symptoms only, and several conditions share nearly all of theirs (the five viral
liver infections, jaundice and cholestasis; a drug rash and a fungal one). People describing their trouble
say where it came from, so the retriever's passages carry these phrases too (medchat.retrieval.passages).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from medchat.data import names
from medchat.errors import InputError


def load_contexts(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Canonical disease -> its circumstances. Every key must name a known condition."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError("condition contexts not found", file=str(path), fix="set retrieval.contexts") from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", file=str(path)) from None
    entries = data.get("contexts") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise InputError("expected a 'contexts' mapping", file=str(path), key="contexts")
    contexts: dict[str, tuple[str, ...]] = {}
    for raw, phrases in entries.items():
        key = f"contexts.{raw}"
        disease = names.canonical_disease(str(raw))
        if disease is None:
            raise InputError("not a known condition", file=str(path), key=key, fix="use a name from names.DISEASES")
        if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise InputError("expected a list of non-empty phrases", file=str(path), key=key)
        contexts[disease] = tuple(" ".join(p.split()) for p in phrases)
    return contexts
