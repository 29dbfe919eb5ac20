"""A learned triage of user messages for the safety guard: emergency, medicine request, or other.

The safety rules' regular expressions only catch the wordings they were written for (about three in four
held-out emergencies). This classifier learns from augment's examples instead: the emergency and
refusal messages against everything else (diagnose, describe, precautions and minor complaints), and
optionally the training text's near-misses as everything else, its requests beyond the patterns as requests,
and the development safety sets' messages by kind (triage.labelled_sets: people's wordings, not templates).
Character n-grams make it robust to typos and word order; word pairs add meaning ("can't breathe").

Thresholds are chosen on the validation split, never on the held-out safety set: for each label, the
lowest probability that keeps the share of other messages it flags at most `max_false_positive`, then
raised to a floor per label (triage.min_threshold).

The fitted model is saved as numbers (JSON + .npy), not as a pickle: loading a model folder must never
run code. Features come from a stateless hashing vectorizer, so nothing but its settings is stored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medchat.errors import InputError
from medchat.safety.rules import DRUG_REQUEST, EMERGENCY

OTHER = "other"
LABELS = (OTHER, EMERGENCY, DRUG_REQUEST)
TASK_LABELS = {"emergency": EMERGENCY, "refusal": DRUG_REQUEST}  # every other task is OTHER
CONFIG_FILE, ARRAYS_FILE = "triage.json", "triage.npz"


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, OTHER)


def kind_label(kind: str) -> str:
    """A safety set's kind (emergency, drug_request, benign, diagnostic) as a triage label."""
    return kind if kind in (EMERGENCY, DRUG_REQUEST) else OTHER


def training_messages(
    rows: list[dict],
    near_misses: tuple[str, ...] = (),
    requests: tuple[str, ...] = (),
    labelled: tuple[tuple[str, str], ...] = (),
) -> tuple[list[str], list[str]]:
    """The classifier's training set: the split's user messages labelled by task, plus `near_misses`
    (harmless messages in a red flag's words) as other, so that those words alone weigh less,
    `requests` (asks worded beyond the request patterns) as drug_request, and `labelled` (text, label)
    pairs: people's own wordings from the development safety sets, which augment's templates lack."""
    texts, labels = [r["user"] for r in rows], [task_label(r["task"]) for r in rows]
    extras = [(t, OTHER) for t in near_misses] + [(t, DRUG_REQUEST) for t in requests] + list(labelled)
    seen = set(texts)
    for text, label in extras:
        if text not in seen:  # augment may have added it already; the first label given wins
            texts.append(text)
            labels.append(label)
            seen.add(text)
    return texts, labels


@dataclass(frozen=True)
class TriageConfig:
    c: float = 10.0  # inverse regularisation strength of the logistic regression
    n_features: int = 2**16  # hashed feature space, per analyzer
    max_false_positive: float = 0.01  # on the validation split, per label
    seed: int = 0


def _vectorizers(n_features: int):
    from sklearn.feature_extraction.text import HashingVectorizer

    # alternate_sign=False keeps counts non-negative for the idf weighting; norm=None leaves the
    # normalisation to the tf-idf step.
    common = {"n_features": n_features, "alternate_sign": False, "norm": None, "lowercase": True}
    return (
        HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common),
        HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common),
    )


class Triage:
    def __init__(
        self,
        config: TriageConfig,
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        thresholds: dict[str, float] | None = None,
    ):
        self.config, self.idf, self.coef, self.intercept = config, idf, coef, intercept
        self.thresholds = dict(thresholds or {EMERGENCY: 0.5, DRUG_REQUEST: 0.5})
        self._vectorizers = _vectorizers(config.n_features)

    # --- features -------------------------------------------------------------------------------

    def _counts(self, texts: list[str]):
        from scipy.sparse import hstack

        return hstack([v.transform(texts) for v in self._vectorizers]).tocsr()

    def _features(self, counts):
        from sklearn.preprocessing import normalize

        weighted = counts.copy()
        weighted.data = 1.0 + np.log(weighted.data)  # sublinear term frequency
        return normalize(weighted.multiply(self.idf).tocsr())

    # --- fitting --------------------------------------------------------------------------------

    @classmethod
    def fit(cls, texts: list[str], labels: list[str], config: TriageConfig) -> Triage:
        from sklearn.linear_model import LogisticRegression

        unknown = set(labels) - set(LABELS)
        if unknown:
            raise ValueError(f"unknown triage labels {sorted(unknown)}")
        missing = set(LABELS) - set(labels)
        if missing:
            raise InputError(
                f"no training messages labelled {', '.join(sorted(missing))}",
                fix="generate emergency and refusal examples (augment.safety_examples)",
            )
        untrained = cls(config, np.ones(2 * config.n_features), np.zeros((len(LABELS), 1)), np.zeros(len(LABELS)))
        counts = untrained._counts(texts)
        # smooth idf, as scikit-learn's TfidfTransformer computes it
        document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = np.log((1 + len(texts)) / (1 + document_frequency)) + 1.0
        untrained.idf = idf
        model = LogisticRegression(C=config.c, max_iter=3000, class_weight="balanced", random_state=config.seed)
        model.fit(untrained._features(counts), [LABELS.index(label) for label in labels])
        # LogisticRegression orders classes by value: 0, 1, 2 are LABELS in order
        return cls(config, idf.astype(np.float32), model.coef_.astype(np.float32), model.intercept_.astype(np.float32))

    def choose_thresholds(self, texts: list[str], labels: list[str]) -> dict[str, dict]:
        """Per label, the lowest threshold whose false-positive share on `texts` (validation messages of
        every other label) is at most config.max_false_positive; returns what it measured there."""
        probabilities = self.probabilities(texts)
        report = {}
        for j, label in enumerate(LABELS[1:], start=1):
            positive = np.array([x == label for x in labels])
            if not positive.any() or positive.all():
                raise InputError(
                    f"the validation split needs messages labelled {label} and others",
                    fix="raise split.val_fraction or augment.safety_examples",
                )
            negatives = np.sort(probabilities[~positive, j])[::-1]
            allowed = int(np.floor(self.config.max_false_positive * len(negatives)))
            # just above the (allowed+1)-th highest negative score: at most `allowed` negatives pass
            threshold = float(np.nextafter(negatives[allowed], 1.0)) if allowed < len(negatives) else 0.0
            self.thresholds[label] = threshold
            flagged = probabilities[:, j] >= threshold
            report[label] = {
                "threshold": round(threshold, 4),
                "recall": round(float(flagged[positive].mean()), 4),
                "false_positive": round(float(flagged[~positive].mean()), 4),
                "n": int(positive.sum()),
            }
        return report

    def raise_to(self, floors: dict[str, float]) -> None:
        """Raise each label's threshold to at least its floor: the validation split is augment's own wording,
        and on the tuning set's harmless messages its request threshold flagged far more than it promised."""
        for label, floor in floors.items():
            self.thresholds[label] = max(self.thresholds[label], floor)

    # --- use ------------------------------------------------------------------------------------

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 3): the probability of each of LABELS."""
        logits = self._features(self._counts(texts)) @ self.coef.T + self.intercept
        logits = np.asarray(logits) - np.asarray(logits).max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def flags(self, texts: list[str]) -> list[frozenset[str]]:
        """For each text, the labels (emergency, drug_request) whose probability reaches its threshold."""
        probabilities = self.probabilities(texts)
        return [
            frozenset(label for j, label in enumerate(LABELS) if label != OTHER and row[j] >= self.thresholds[label])
            for row in probabilities
        ]

    # --- files ----------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        (folder / CONFIG_FILE).write_text(
            json.dumps({"labels": list(LABELS), "config": asdict(self.config), "thresholds": self.thresholds}, indent=2)
            + "\n"
        )
        with open(folder / ARRAYS_FILE, "wb") as handle:
            np.savez_compressed(handle, idf=self.idf, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, folder: str | Path) -> Triage:
        folder = Path(folder)
        try:
            meta = json.loads((folder / CONFIG_FILE).read_text())
            with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
                idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        except FileNotFoundError as exc:
            raise InputError(
                "triage model not found", file=str(exc.filename), fix="run the triage stage (dvc repro triage)"
            ) from None
        except (ValueError, KeyError) as exc:
            raise InputError(f"unreadable triage model: {exc}", file=str(folder)) from None
        if meta.get("labels") != list(LABELS):
            raise InputError(f"labels {meta.get('labels')} differ from {list(LABELS)}", file=str(folder / CONFIG_FILE))
        return cls(TriageConfig(**meta["config"]), idf, coef, intercept, meta["thresholds"])


def find(folder: str | Path) -> Triage | None:
    """The triage model saved in a model folder, or None when it has none (an older package)."""
    return Triage.load(folder) if (Path(folder) / CONFIG_FILE).exists() else None
