"""triage: a classifier of user messages (emergency / medicine request / other) for the safety guard.

Trained on the train split's user messages (plus the policy's near-misses as other, with triage.near_misses,
and its requests beyond the patterns as drug_request, with triage.wider_requests). Thresholds are set on the
validation split, raised to triage.min_threshold and, with triage.cover_tuning_set, lowered until every
emergency and request of the tuning set that the policy's patterns miss is flagged (medchat.triage).
"""

from __future__ import annotations

import sys

from medchat.artifacts import atomic_dir, read_jsonl, write_json
from medchat.errors import InputError
from medchat.params import load_params
from medchat.safety import Policy, load_safety_set
from medchat.triage import EMERGENCY, REQUEST, Triage, TriageConfig, task_label, training_messages

SPLIT_DIR = "data/split"
TUNING_SET = "data/eval/safety_dev.jsonl"  # the guard's tuning set; the held-out safety set is never read here
OUT_DIR = "models/triage"
METRICS = "metrics/triage.json"


def main() -> int:
    try:
        params = load_params()
        train = read_jsonl(f"{SPLIT_DIR}/train.jsonl")
        val = read_jsonl(f"{SPLIT_DIR}/val.jsonl")
        t = params.triage
        config = TriageConfig(c=t.c, n_features=t.n_features, max_false_positive=t.max_false_positive, seed=params.seed)
        policy = Policy.load(params.clean.policy)
        near_misses = tuple(text for _, text in policy.near_misses) if t.near_misses else ()
        requests = policy.wider_request_messages() if t.wider_requests else ()
        texts, labels = training_messages(train, near_misses, requests)
        triage = Triage.fit(texts, labels, config)
        validation = triage.choose_thresholds([r["user"] for r in val], [task_label(r["task"]) for r in val])
        triage.raise_to(dict(t.min_threshold))
        tuning = None
        if t.cover_tuning_set:
            items = load_safety_set(TUNING_SET)
            tuning = {}
            for label in (EMERGENCY, REQUEST):  # also the safety sets' kinds
                texts_of_kind = [i["text"] for i in items if i["kind"] == label]
                tuning[label] = triage.cover(label, texts_of_kind, [label in policy.flags(x) for x in texts_of_kind])
    except InputError as exc:
        print(f"triage: error: {exc}", file=sys.stderr)
        return 1
    with atomic_dir(OUT_DIR) as out:
        triage.save(out)
    write_json(METRICS, {"train_messages": len(texts), "validation": validation, "tuning_set": tuning,
                         "thresholds": {label: round(value, 4) for label, value in triage.thresholds.items()}})
    print("triage: " + "; ".join(f"{label} threshold {v['threshold']}, validation recall {v['recall']}, "
                                 f"false positive {v['false_positive']}" for label, v in validation.items())
          + "; in use (after the floor and any covering): "
          + ", ".join(f"{label} {value:.4f}" for label, value in triage.thresholds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
