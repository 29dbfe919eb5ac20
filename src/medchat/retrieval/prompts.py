"""The user turn the model reads: the message, optionally with its normalised symptom labels and the top
passages' short form (`ground`). Tokenize, evaluate and the chatbot all build prompts through
PromptBuilder, so the model sees one format everywhere."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from medchat.errors import InputError
from medchat.retrieval.normaliser import SymptomNormaliser
from medchat.retrieval.passages import Passage
from medchat.retrieval.retrievers import CONFIG_FILE, PASSAGES_FILE, Retriever

PROMPTS_FILE, LEXICON_FILE = "prompts.json", "lexicon.yaml"


def ground(user: str, passages: list[Passage], symptoms: int = 8) -> str:
    """The user turn of a retrieval-augmented prompt: the message, then what the knowledge base says."""
    if not passages:
        return user
    return f"{user}\nKnowledge: " + " | ".join(p.brief(symptoms) for p in passages)


@dataclass(frozen=True)
class PromptConfig:
    normalise: bool = False  # append the clinical labels of the symptoms the message describes
    ground: bool = False  # append the top passages (retrieval-augmented prompts)
    top_k: int = 2
    threshold: float = 0.5  # the normaliser's similarity threshold
    brief_symptoms: int = 8  # symptoms named per passage


class PromptBuilder:
    """User message -> the user turn the model sees. The one place prompts are built: tokenize (training
    data), evaluate and the CLI all load it from the same index folder."""

    def __init__(
        self,
        config: PromptConfig,
        retriever: Retriever | None = None,
        normaliser: SymptomNormaliser | None = None,
        folder: Path | None = None,
    ):
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
            from medchat.data.lexicon import Lexicon

            self._normaliser = SymptomNormaliser(Lexicon.load(self._folder / LEXICON_FILE), self.config.threshold)
        return self._normaliser

    @property
    def identity(self) -> bool:
        return not (self.config.normalise or self.config.ground)

    def queries(self, users: list[str]) -> list[str]:
        """What the retriever searches with: the message, normalised when prompts are (retrieval.normalise).
        (On both free-text sets the raw message retrieves better than its normalised form: docs/findings.md.)"""
        if self.config.normalise and self.normaliser is not None:
            return self.normaliser.normalise_all(users)
        return list(users)

    def __call__(self, users: list[str]) -> list[str]:
        if self.identity or not users:
            return list(users)
        queries = self.queries(users)
        prompts = queries if self.config.normalise else list(users)
        if self.config.ground and self.retriever is not None:
            prompts = [
                ground(p, hits, self.config.brief_symptoms)
                for p, hits in zip(prompts, self.retriever.search(queries, self.config.top_k))
            ]
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
            raise InputError(
                "prompt settings not found", file=str(exc.filename), fix="run the index stage (dvc repro index)"
            ) from None
        # the retriever and normaliser load lazily, but a missing file is reported now, not mid-run
        for name in (CONFIG_FILE, PASSAGES_FILE, LEXICON_FILE):
            if not (folder / name).is_file():
                raise InputError(
                    "retrieval index incomplete", file=str(folder / name), fix="run the index stage (dvc repro index)"
                )
        return cls(config, folder=folder)
