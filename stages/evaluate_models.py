"""evaluate: baseline, train and finetune models on the test split and the development sets; which model ships
(evaluate.ship; the package stage packages it); then the shipped model on the held-out sets (safety v2,
free-text v2, questions v2: what users get, never used to choose). Metrics, predictions, the confusion plot.
The model runs are jobs of medchat.eval.suite, in `evaluate.workers` processes.

(Not named evaluate.py: a script directory comes first on sys.path, and that name would shadow the
Hugging Face `evaluate` package for anything that probes for it.)"""

from __future__ import annotations

import random
import sys
from collections import Counter

from medchat.artifacts import write_json, write_jsonl
from medchat.errors import InputError
from medchat.params import load_params

PREDICTIONS = "data/evaluate/predictions.jsonl"
METRICS, CONFUSION = "metrics/evaluate.json", "plots/evaluate/confusion.json"


def main() -> int:
    from medchat.eval.freetext import evaluate_freetext, retriever_ablation
    from medchat.eval.quality import confusion_rows, evaluate_baseline, measure_speed, shipped_model
    from medchat.eval.safety_metrics import detector_metrics
    from medchat.eval.scoring import recall_at
    from medchat.eval.suite import MODELS, Suite, job_runner
    from medchat.model.loading import quiet_progress

    quiet_progress()
    try:
        params = load_params()
        suite = Suite.load(params)
        for name in MODELS:  # a missing model is one clear error here, not a traceback from a worker
            suite.chat(name)
    except InputError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    e, test_rows, prompts = params.evaluate, suite.test_rows, suite.prompts
    results, predictions = {}, []
    results["baseline"], rows = evaluate_baseline(suite.baseline, test_rows)
    predictions += [{"model": "baseline", **r} for r in rows]
    diagnose = [r for r in test_rows if r["task"] == "diagnose"]
    ranked = prompts.retriever.rank(prompts.queries([r["user"] for r in diagnose]))
    results["retriever"] = {"test": recall_at(ranked, [r["disease"] for r in diagnose])}
    for key, items in suite.free_sets.items():  # the systems without a language model
        free, _ = evaluate_freetext(items, prompts, suite.baseline)
        for system in ("retriever", "baseline"):
            results[system][key] = {"raw": free[f"{system}_raw"], "normalised": free[system]}
    # what the guard finds in the user text needs no model: its detectors on the development sets and held-out v3
    results["guard_detectors"] = {
        key: detector_metrics(suite.rules, items, suite.triage.flags([i["text"] for i in items]))
        for key, items in suite.detector_sets.items()
    }
    results["retriever"]["ablation"] = retriever_ablation(
        suite.free_sets["freetext"], suite.kb, suite.lexicon, prompts.normaliser, prompts.retriever
    )
    with job_runner(suite, e.workers) as run:
        # the development sets, for both models: they choose which one ships
        for name, (found, rows) in zip(MODELS, run([("development", m) for m in MODELS])):
            results[name], predictions = found, predictions + rows
            print(
                f"evaluate: {name}: full-symptom accuracy {found['full'].get('accuracy')}, "
                f"partial {found['partial'].get('accuracy')}, product score {found['product_score']}"
            )
        shipped = shipped_model(results, e.ship)
        # the held-out sets, for the model that ships (what users get): reported, never used to choose
        for found, rows in run([("held_out_short", shipped), ("held_out_freetext", shipped)]):
            results[shipped].update(found)
            predictions += rows
    # speed with every thread, as a user's single process gets it; both models have the base's architecture
    # (LoRA is merged), so it is measured once, on the one that ships
    speed_rows = random.Random(params.seed).sample(test_rows, min(len(test_rows), max(e.batch_size, e.latency_samples)))
    results[shipped].update(
        measure_speed(suite.chat(shipped), prompts([r["user"] for r in speed_rows]), e.latency_samples)
    )
    counts = dict(sorted(Counter(r["task"] for r in test_rows).items()))
    results["shipped"], results["test_examples"] = shipped, counts
    write_json(METRICS, results)
    write_jsonl(PREDICTIONS, predictions)
    write_json(CONFUSION, confusion_rows(predictions, shipped))
    print(f"evaluate: baseline full-symptom accuracy {results['baseline']['full'].get('accuracy')}; ships {shipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
