"""index: the knowledge base -> per-disease passages, a retriever over them, and the prompt settings.

Writes models/retriever/, which tokenize, evaluate and the packaged chatbot load through
medchat.retrieval.PromptBuilder, and reports retrieval recall@k on the validation split.
"""

from __future__ import annotations

import sys

from medchat.artifacts import atomic_dir, read_jsonl, write_json
from medchat.data.contexts import load_contexts
from medchat.data.kb import load_tidy
from medchat.data.lexicon import Lexicon
from medchat.errors import InputError
from medchat.eval.scoring import recall_at
from medchat.params import load_params
from medchat.retrieval.normaliser import SymptomNormaliser
from medchat.retrieval.passages import build_passages
from medchat.retrieval.prompts import PromptBuilder, PromptConfig
from medchat.retrieval.retrievers import Retriever, RetrieverConfig

CLEAN_DIR = "data/clean"
VAL = "data/split/val.jsonl"
OUT_DIR = "models/retriever"
METRICS = "metrics/index.json"


def main() -> int:
    try:
        params = load_params()
        r = params.retrieval
        lexicon = Lexicon.load(params.augment.lexicon)
        retriever = Retriever(
            build_passages(load_tidy(CLEAN_DIR), lexicon, contexts=load_contexts(r.contexts)),
            RetrieverConfig(r.encoder, r.dense_weight, r.char_weight),
        )
        normaliser = SymptomNormaliser(lexicon, r.normaliser_threshold)
        builder = PromptBuilder(
            PromptConfig(r.normalise, r.enabled, r.top_k, r.normaliser_threshold, r.brief_symptoms),
            retriever,
            normaliser,
        )
        val = [row for row in read_jsonl(VAL) if row["task"] == "diagnose"]
    except InputError as exc:
        print(f"index: error: {exc}", file=sys.stderr)
        return 1
    users, answers = [row["user"] for row in val], [row["disease"] for row in val]
    found = [set(f) for f in normaliser.symptoms_of(users)]
    hits = sum(len(f & set(row["symptoms"])) for f, row in zip(found, val))
    metrics = {
        "passages": len(retriever.passages),
        "encoder": r.encoder,
        "val_raw": recall_at(retriever.rank(users), answers),
        "val_normalised": recall_at(retriever.rank(normaliser.normalise_all(users)), answers),
        "normaliser_val": {
            "precision": round(hits / max(1, sum(map(len, found))), 4),
            "recall": round(hits / max(1, sum(len(row["symptoms"]) for row in val)), 4),
        },
    }
    with atomic_dir(OUT_DIR) as out:
        retriever.save(out)
        builder.save(out, params.augment.lexicon)
    write_json(METRICS, metrics)
    print(
        f"index: {len(retriever.passages)} passages ({r.encoder}); validation recall@1 "
        f"{metrics['val_normalised']['recall@1']} with the normaliser, {metrics['val_raw']['recall@1']} without"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
