"""package: the model evaluate chose to ship -> models/chatbot, the folder `medchat ask | chat | batch` loads.

The package carries the model with everything its replies depend on: the safety rules, the triage
classifier, the prompt builder, the drafts and a model card (medchat.inference.chatbot). Before it
replaces models/chatbot, the staged package is loaded and answers one message, so a package that
cannot answer is never left behind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from medchat.artifacts import atomic_dir, read_jsonl
from medchat.errors import InputError
from medchat.params import load_params

EVALUATE, TRAIN_SPLIT = "metrics/evaluate.json", "data/split/train.jsonl"
MODELS = {"train": "models/train", "finetune": "models/finetune"}
TRIAGE, INDEX, CLEAN_DIR, OUT_DIR = "models/triage", "models/retriever", "data/clean", "models/chatbot"
SMOKE_MESSAGE = "I have a high fever, chills and a headache"


def main() -> int:
    from medchat.eval.report import model_card
    from medchat.inference.chatbot import Chatbot, write_package
    from medchat.inference.drafting import reply_texts
    from medchat.inference.grounding import decision
    from medchat.model.loading import quiet_progress
    from medchat.safety.rules import SafetyRules
    from medchat.safety.triage import Triage

    quiet_progress()
    try:
        params = load_params()
        results = json.loads(Path(EVALUATE).read_text(encoding="utf-8"))
        shipped = results["shipped"]
        card = model_card(results, params.model.name, results["test_examples"], shipped)
        drafts, triage = reply_texts(read_jsonl(TRAIN_SPLIT)), Triage.load(TRIAGE)
        if params.tokenize.reply_form == "decision":  # the model generates openings: it drafts from them
            rules = SafetyRules.load(params.safety.rules)
            drafts = sorted({decision(d, rules) for d in drafts})
        with atomic_dir(OUT_DIR) as out:
            e = params.evaluate
            write_package(
                out,
                MODELS[shipped],
                params.safety.rules,
                triage,
                INDEX,
                drafts,
                card,
                e.guard,
                CLEAN_DIR,
                e.grounding_top_k,
                params.tokenize.reply_form,
                e.condition_names,
                e.escalation_margin,
            )
            reply = Chatbot(out, max_new_tokens=params.evaluate.max_new_tokens).replies([SMOKE_MESSAGE])[0][0]
    except (InputError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"package: error: {exc}", file=sys.stderr)
        return 1
    print(f"package: {shipped} as {OUT_DIR}; {SMOKE_MESSAGE!r} -> {reply[:80]!r}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
