"""A non-neural reference point: TF-IDF over the user text + logistic regression, trained on the
same diagnose examples as the LM. If the LM cannot beat this, the LM is not worth its cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Baseline:
    pipeline: Any

    @classmethod
    def fit(cls, users: list[str], diseases: list[str], c: float, seed: int) -> Baseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        pipeline = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
            LogisticRegression(C=c, max_iter=2000, random_state=seed),
        )
        pipeline.fit(users, diseases)
        return cls(pipeline)

    def rank(self, users: list[str], k: int = 3) -> list[list[str]]:
        """The k most probable diseases for each text, best first."""
        probabilities = self.pipeline.predict_proba(users)
        classes = self.pipeline.classes_
        return [[str(classes[i]) for i in row.argsort()[::-1][:k]] for row in probabilities]
