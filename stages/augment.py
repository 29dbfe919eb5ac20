"""augment: tidy knowledge base, safety rules and training text, and user corrections -> dialogue examples."""

from __future__ import annotations

import sys

from medchat.artifacts import write_json, write_jsonl
from medchat.data.augment import AugmentConfig, generate, summarize
from medchat.data.dialogue import Templates
from medchat.data.feedback import corrections
from medchat.data.kb import load_tidy
from medchat.data.lexicon import Lexicon
from medchat.errors import InputError
from medchat.params import load_params
from medchat.safety.rules import SafetyRules
from medchat.safety.training_text import TrainingText

CLEAN_DIR = "data/clean"
OUT = "data/augmented/examples.jsonl"
METRICS = "metrics/augment.json"


def main() -> int:
    try:
        params = load_params()
        a = params.augment
        kb = load_tidy(CLEAN_DIR)
        config = AugmentConfig(
            dict(a.per_disease),
            a.partial_share,
            a.max_partial_size,
            params.seed,
            dict(a.safety_examples),
            a.framed_share,
        )
        rules = SafetyRules.load(params.safety.rules)
        training = TrainingText.load(params.safety.training_text, rules)
        examples, stats = generate(kb, Lexicon.load(a.lexicon), Templates.load(a.templates), rules, training, config)
        corrected, skipped = corrections(a.feedback, rules)
    except InputError as exc:
        print(f"augment: error: {exc}", file=sys.stderr)
        return 1
    for bad in skipped:  # reported, never trained on
        print(f"augment: {a.feedback} line {bad.line} skipped: {bad.reason}", file=sys.stderr)
    examples += corrected
    write_jsonl(OUT, (e.to_dict() for e in examples))
    summary = summarize(examples, {**stats, "feedback_used": len(corrected), "feedback_skipped": len(skipped)})
    write_json(METRICS, summary)
    print(f"augment: {summary['examples']} examples {summary['per_task']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
