"""Lay wording -> symptom labels: the lexicon's phrasings found in free text clause by clause (character
n-grams, so typos still match), their clinical labels appended to the query."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medchat.data.lexicon import Lexicon

CLAUSE = re.compile(r"[,.;:!?\n]+|\s+(?:and|but|also|plus|then|with|&)\s+", re.I)


class SymptomNormaliser:
    """Everyday wording -> lexicon symptoms, by character n-gram similarity of each clause of the text
    to every phrasing and label in the lexicon."""

    def __init__(self, lexicon: Lexicon, threshold: float):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.labels = dict(lexicon.labels)
        self.threshold = threshold
        self._owners = [s for s in lexicon.phrasings for _ in (*lexicon.phrasings[s], lexicon.labels[s])]
        texts = [t for s in lexicon.phrasings for t in (*lexicon.phrasings[s], lexicon.labels[s])]
        self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
        self._matrix = self._vectorizer.fit_transform(texts)

    def symptoms(self, text: str) -> list[str]:
        """Lexicon symptoms found in `text`, in the order they first appear."""
        return self.symptoms_of([text])[0]

    def symptoms_of(self, texts: list[str]) -> list[list[str]]:
        """symptoms() of each text, with one vectorizer call for all their clauses (per-call cost dominates)."""
        clauses = [[c.strip() for c in CLAUSE.split(text) if len(c.strip()) > 2] for text in texts]
        flat = [c for cs in clauses for c in cs]
        if not flat:
            return [[] for _ in texts]
        similarity = (self._vectorizer.transform(flat) @ self._matrix.T).tocsr()
        similarity.sort_indices()  # so a tie goes to the first phrasing, as a dense argmax would
        best, score = similarity.argmax(axis=1).A1, similarity.max(axis=1).toarray().ravel()
        found: list[list[str]] = []
        row = 0
        for cs in clauses:
            mine: list[str] = []
            for r in range(row, row + len(cs)):
                if score[r] >= self.threshold and self._owners[best[r]] not in mine:
                    mine.append(self._owners[best[r]])
            found.append(mine)
            row += len(cs)
        return found

    def normalise(self, text: str) -> str:
        """The text with the clinical labels of the symptoms it describes appended."""
        return self.normalise_all([text])[0]

    def normalise_all(self, texts: list[str]) -> list[str]:
        return [
            f"{text} (symptoms: {', '.join(self.labels[s] for s in found)})" if found else text
            for text, found in zip(texts, self.symptoms_of(texts))
        ]
