"""split: examples -> train/val/test JSONL, grouped by symptom set, stratified by disease, leak-checked."""

from __future__ import annotations

import sys
from collections import Counter

from medchat.artifacts import atomic_dir, read_jsonl, write_json, write_jsonl
from medchat.data.eval_sets import load_freetext, load_questions, load_safety_set
from medchat.data.splitting import SPLITS, SplitConfig, held_out_overlap, overlap, split_examples
from medchat.errors import InputError
from medchat.params import load_params

EXAMPLES = "data/augmented/examples.jsonl"
HELD_OUT = "data/eval/safety.jsonl"  # evaluation-only texts: no training example may contain one
TUNING_SET = "data/eval/safety_tuning.jsonl"  # the guard's tuning set: kept out of training too
FREETEXT = "data/eval/freetext.jsonl"
FREETEXT_V2, QUESTIONS_V2 = "data/eval/freetext_v2.jsonl", "data/eval/questions_v2.jsonl"
FREETEXT_DEV, SAFETY_DEV = "data/eval/freetext_dev.jsonl", "data/eval/safety_dev.jsonl"  # second development sets
QUESTIONS_DEV, SAFETY_DEV4 = "data/eval/questions_dev.jsonl", "data/eval/safety_dev4.jsonl"
SAFETY_V3 = "data/eval/safety_v3.jsonl"  # held-out
FREETEXT_DEV3, SAFETY_DEV3 = "data/eval/freetext_dev3.jsonl", "data/eval/safety_dev3.jsonl"  # third
OUT_DIR = "data/split"
METRICS = "metrics/split.json"


def main() -> int:
    try:
        params = load_params()
        examples = read_jsonl(EXAMPLES)
        sets = (
            load_safety_set(HELD_OUT),
            load_safety_set(TUNING_SET),
            load_freetext(FREETEXT),
            load_freetext(FREETEXT_V2),
            load_questions(QUESTIONS_V2),
            load_freetext(FREETEXT_DEV),
            load_safety_set(SAFETY_DEV),
            load_freetext(FREETEXT_DEV3),
            load_safety_set(SAFETY_DEV3),
            load_questions(QUESTIONS_DEV),
            load_safety_set(SAFETY_DEV4),
            load_safety_set(SAFETY_V3),
        )
        held_out = [item["text"] for items in sets for item in items]
    except InputError as exc:
        print(f"split: error: {exc}", file=sys.stderr)
        return 1
    s = params.split
    splits = split_examples(examples, SplitConfig(s.val_fraction, s.test_fraction, s.folds, s.fold, params.seed))
    leaks = overlap(splits)
    leaks["held_out_texts"] = held_out_overlap(splits, held_out)
    if any(leaks.values()):
        print(f"split: error: examples leak across splits {leaks}; check augment's group keys", file=sys.stderr)
        return 1
    with atomic_dir(OUT_DIR) as tmp:
        for name in SPLITS:
            write_jsonl(tmp / f"{name}.jsonl", splits[name])
    metrics = {"overlap": leaks}
    for name in SPLITS:
        rows = splits[name]
        metrics[name] = {
            "examples": len(rows),
            "groups": len({e["group"] for e in rows}),
            "diseases": len({e["disease"] for e in rows if e["disease"]}),
            "per_task": dict(sorted(Counter(e["task"] for e in rows).items())),
        }
    write_json(METRICS, metrics)
    print("split: " + ", ".join(f"{n} {len(splits[n])}" for n in SPLITS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
