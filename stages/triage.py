"""triage: a classifier of user messages (emergency / medicine request / other) for the safety guard.

Trained on the train split's user messages, thresholds set on the validation split (medchat.triage).
"""

from __future__ import annotations

import sys

from medchat.artifacts import atomic_dir, read_jsonl, write_json
from medchat.errors import InputError
from medchat.params import load_params
from medchat.triage import Triage, TriageConfig, task_label

SPLIT_DIR = "data/split"
OUT_DIR = "models/triage"
METRICS = "metrics/triage.json"


def main() -> int:
    try:
        params = load_params()
        train = read_jsonl(f"{SPLIT_DIR}/train.jsonl")
        val = read_jsonl(f"{SPLIT_DIR}/val.jsonl")
        t = params.triage
        config = TriageConfig(c=t.c, n_features=t.n_features, max_false_positive=t.max_false_positive, seed=params.seed)
        triage = Triage.fit([r["user"] for r in train], [task_label(r["task"]) for r in train], config)
        validation = triage.choose_thresholds([r["user"] for r in val], [task_label(r["task"]) for r in val])
    except InputError as exc:
        print(f"triage: error: {exc}", file=sys.stderr)
        return 1
    with atomic_dir(OUT_DIR) as out:
        triage.save(out)
    write_json(METRICS, {"train_messages": len(train), "validation": validation})
    print("triage: " + "; ".join(f"{label} threshold {v['threshold']}, validation recall {v['recall']}, "
                                 f"false positive {v['false_positive']}" for label, v in validation.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
