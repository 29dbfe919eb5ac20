"""evaluate: baseline, train and finetune models on the test split; metrics, confusion plot, packaged chatbot.

(Not named evaluate.py: a script directory comes first on sys.path, and that name would shadow the
Hugging Face `evaluate` package for anything that probes for it.)"""

from __future__ import annotations

import random
import shutil
import sys
from collections import Counter
from pathlib import Path

from medchat.artifacts import atomic_dir, read_jsonl, write_json, write_jsonl
from medchat.errors import InputError
from medchat.params import load_params

SPLIT_DIR = "data/split"
SAFETY_SET = "data/eval/safety.jsonl"
SAFETY_DEV = "data/eval/safety_dev.jsonl"  # the set the guard's patterns are tuned on; SAFETY_SET stays untouched
MODELS = {"train": "models/train", "finetune": "models/finetune"}
TRIAGE, INDEX = "models/triage", "models/retriever"
FREETEXT = "data/eval/freetext.jsonl"
CHATBOT, PREDICTIONS = "models/chatbot", "data/evaluate/predictions.jsonl"
CLEAN_DIR = "data/clean"
METRICS, CONFUSION = "metrics/evaluate.json", "plots/evaluate/confusion.json"


def main() -> int:
    from medchat.baseline import Baseline
    from medchat.drafting import save_drafts
    from medchat.evaluation import (evaluate_baseline, evaluate_freetext, evaluate_model, evaluate_safety, load_freetext,
                                    measure_speed, retriever_ablation)
    from medchat.kb import load_tidy
    from medchat.lexicon import Lexicon
    from medchat.retrieval import PromptBuilder, recall_at
    from medchat.inference import ChatModel
    from medchat.modeling import quiet_progress
    from medchat.report import model_card
    from medchat.safety import Policy, load_safety_set
    from medchat.triage import Triage

    quiet_progress()
    try:
        params = load_params()
        e = params.evaluate
        train_rows = read_jsonl(f"{SPLIT_DIR}/train.jsonl")
        test_rows = read_jsonl(f"{SPLIT_DIR}/test.jsonl")
        safety_items, dev_items = load_safety_set(SAFETY_SET), load_safety_set(SAFETY_DEV)
        policy = Policy.load(params.clean.policy)
        triage = Triage.load(TRIAGE)
        prompts = PromptBuilder.load(INDEX)
        freetext = load_freetext(FREETEXT)
        kb, lexicon = load_tidy(CLEAN_DIR), Lexicon.load(params.augment.lexicon)
        # greedy decoding drafts from the training replies (medchat.drafting): same replies, fewer passes
        drafts = sorted({r["reply"] for r in train_rows})
        chats = {name: ChatModel.load(path, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size, drafts=drafts)
                 for name, path in MODELS.items()}
    except InputError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    diagnose_train = [r for r in train_rows if r["task"] == "diagnose"]
    baseline = Baseline.fit([r["user"] for r in diagnose_train], [r["disease"] for r in diagnose_train],
                            e.baseline_c, params.seed)
    results, predictions = {}, []
    results["baseline"], rows = evaluate_baseline(baseline, test_rows)
    predictions += [{"model": "baseline", **r} for r in rows]
    diagnose = [r for r in test_rows if r["task"] == "diagnose"]
    # speed is measured on a seeded sample of every task's messages, as users would send them
    speed_rows = random.Random(params.seed).sample(test_rows, min(len(test_rows), max(e.batch_size, e.latency_samples)))
    speed_users = [r["user"] for r in speed_rows]
    free, _ = evaluate_freetext(freetext, prompts, baseline)
    results["baseline"]["freetext"] = {"raw": free["baseline_raw"], "normalised": free["baseline"]}
    results["retriever"] = {"test": recall_at(prompts.retriever.rank(prompts.queries([r["user"] for r in diagnose])),
                                              [r["disease"] for r in diagnose]),
                            "freetext": {"raw": free["retriever_raw"], "normalised": free["retriever"]},
                            "ablation": retriever_ablation(freetext, kb, lexicon, prompts.normaliser,
                                                           params.retrieval.dense_weight, e.dense_ablation)}
    for name, chat in chats.items():
        results[name], rows = evaluate_model(chat, test_rows, safety_items, policy, e.rank_candidates, triage, prompts)
        results[name]["safety_dev"] = evaluate_safety(chat, policy, dev_items, triage, prompts)[0]
        results[name].update(measure_speed(chat, prompts(speed_users), e.latency_samples))
        free, _ = evaluate_freetext(freetext, prompts, baseline, chat, dict(e.ensemble_weights))
        results[name]["freetext"] = {k: free[k] for k in ("lm", "lm_generated", "ensemble")}
        predictions += [{"model": name, **r} for r in rows]
        print(f"evaluate: {name}: full-symptom accuracy {results[name]['full'].get('accuracy')}, "
              f"partial {results[name]['partial'].get('accuracy')}")
    shipped = e.ship if e.ship != "best" else max(MODELS, key=lambda m: (results[m]["full"].get("accuracy", 0), m == "finetune"))
    counts = dict(sorted(Counter(r["task"] for r in test_rows).items()))
    results["shipped"], results["test_examples"] = shipped, counts
    write_json(METRICS, results)
    write_jsonl(PREDICTIONS, predictions)
    write_json(CONFUSION, [{"actual": p["disease"], "predicted": p["predicted"] or "(none)"}
                           for p in predictions if p["model"] == shipped and p["task"] == "diagnose"])
    with atomic_dir(CHATBOT) as out:
        for item in Path(MODELS[shipped]).iterdir():
            if item.is_file():
                shutil.copy2(item, out / item.name)
        (out / "README.md").write_text(model_card(results, params.model.name, counts, shipped), encoding="utf-8")
        # the packaged chatbot carries its safety policy and whether the CLI guards replies by default
        shutil.copy2(params.clean.policy, out / "policy.yaml")
        triage.save(out)
        for item in Path(INDEX).iterdir():  # the prompt builder: normaliser, retriever and its settings
            shutil.copy2(item, out / item.name)
        write_json(out / "medchat.json", {"guard": e.guard})
        save_drafts(out, drafts)
    print(f"evaluate: baseline full-symptom accuracy {results['baseline']['full'].get('accuracy')}; "
          f"shipped {shipped} as {CHATBOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
