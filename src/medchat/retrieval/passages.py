"""One knowledge-base passage per disease: its name, symptoms (clinical labels and the lexicon's everyday
phrasings: document expansion, so "it burns when I pee" shares words with "burning micturition"), the
circumstances people mention with it (medchat.data.contexts), its description and precautions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medchat.data.kb import KnowledgeBase
    from medchat.data.lexicon import Lexicon


@dataclass(frozen=True)
class Passage:
    disease: str
    symptoms: tuple[str, ...]  # clinical labels, most frequent in the knowledge base first
    text: str  # what the retriever indexes

    def brief(self, max_symptoms: int = 8) -> str:
        """The short form that goes into a grounded prompt (a small model's context is short)."""
        if not max_symptoms:
            return self.disease
        return f"{self.disease}: {', '.join(self.symptoms[:max_symptoms])}"


def build_passages(
    kb: KnowledgeBase, lexicon: Lexicon, everyday: bool = True, contexts: dict[str, tuple[str, ...]] | None = None
) -> list[Passage]:
    """One passage per disease of the knowledge base. `everyday` adds the lexicon's lay phrasings of its
    symptoms (document expansion: a patient's words then match the passage, not only the clinical labels);
    `contexts` (disease -> circumstances) adds where it tends to come from ("started a new tablet")."""
    from collections import Counter

    passages = []
    for disease in kb.diseases:
        counts = Counter(s for group in kb.symptom_sets if group.disease == disease for s in group.symptoms)
        symptoms = [s for s, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
        labels = tuple(lexicon.labels[s] for s in symptoms)
        precautions = "; ".join(kb.safe_precautions(disease))
        lay = f" In everyday words: {'; '.join(p for s in symptoms for p in lexicon.phrasings[s])}." if everyday else ""
        circumstances = (contexts or {}).get(disease)
        lay += f" Often: {'; '.join(circumstances)}." if circumstances else ""
        text = (
            f"{disease}. Symptoms: {', '.join(labels)}.{lay} "
            f"{kb.descriptions.get(disease, '')} Precautions: {precautions}."
        )
        passages.append(Passage(disease, labels, text))
    return passages
