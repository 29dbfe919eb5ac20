"""triage: a classifier of user messages (emergency / medicine request / other) for the safety guard.

Trained on the train split's user messages, plus the training text's near-misses as other (triage.near_misses),
its requests beyond the patterns as drug_request (triage.wider_requests) and the development safety sets'
messages by kind (triage.labelled_sets). Thresholds are set on the
validation split, then raised to triage.min_threshold (medchat.safety.triage).
"""

from __future__ import annotations

import sys

from medchat.artifacts import atomic_dir, read_jsonl, write_json
from medchat.data.eval_sets import load_safety_set
from medchat.errors import InputError
from medchat.params import load_params
from medchat.safety.rules import SafetyRules
from medchat.safety.training_text import TrainingText
from medchat.safety.triage import Triage, TriageConfig, kind_label, task_label, training_messages

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
        training = TrainingText.load(params.safety.training_text, SafetyRules.load(params.safety.rules))
        near_misses = tuple(text for _, text in training.near_misses) if t.near_misses else ()
        requests = training.wider_request_messages() if t.wider_requests else ()
        labelled = tuple((i["text"], kind_label(i["kind"])) for path in t.labelled_sets for i in load_safety_set(path))
        texts, labels = training_messages(train, near_misses, requests, labelled)
        triage = Triage.fit(texts, labels, config)
        validation = triage.choose_thresholds([r["user"] for r in val], [task_label(r["task"]) for r in val])
        triage.raise_to(dict(t.min_threshold))
    except InputError as exc:
        print(f"triage: error: {exc}", file=sys.stderr)
        return 1
    with atomic_dir(OUT_DIR) as out:
        triage.save(out)
    write_json(
        METRICS,
        {
            "train_messages": len(texts),
            "labelled_messages": len(labelled),
            "validation": validation,
            "thresholds": {label: round(value, 4) for label, value in triage.thresholds.items()},
        },
    )
    print(
        "triage: "
        + "; ".join(
            f"{label} threshold {v['threshold']}, validation recall {v['recall']}, false positive {v['false_positive']}"
            for label, v in validation.items()
        )
        + "; in use (after the floor): "
        + ", ".join(f"{label} {value:.4f}" for label, value in triage.thresholds.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
