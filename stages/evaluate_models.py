"""evaluate: baseline, train and finetune models on the test split and the development sets; which model ships
(evaluate.ship; the package stage packages it); then the shipped model on the held-out sets (safety v2,
free-text v2, questions v2: what users get, never used to choose). Metrics, predictions, the confusion plot.

(Not named evaluate.py: a script directory comes first on sys.path, and that name would shadow the
Hugging Face `evaluate` package for anything that probes for it.)"""

from __future__ import annotations

import random
import sys
from collections import Counter

from medchat.artifacts import read_jsonl, write_json, write_jsonl
from medchat.errors import InputError
from medchat.params import load_params

SPLIT_DIR = "data/split"
SAFETY_SET = "data/eval/safety.jsonl"
TUNING_SET = "data/eval/safety_tuning.jsonl"  # the set the guard's patterns are tuned on; SAFETY_SET stays untouched
MODELS = {"train": "models/train", "finetune": "models/finetune"}
TRIAGE, INDEX = "models/triage", "models/retriever"
FREETEXT = "data/eval/freetext.jsonl"
# version 2, written blind to the repository: reported, never tuned on
FREETEXT_V2, QUESTIONS_V2 = "data/eval/freetext_v2.jsonl", "data/eval/questions_v2.jsonl"
# second development sets, written blind to the repository: the retriever's and the guard detectors' rates
FREETEXT_DEV, SAFETY_DEV = "data/eval/freetext_dev.jsonl", "data/eval/safety_dev.jsonl"
PREDICTIONS = "data/evaluate/predictions.jsonl"
CLEAN_DIR = "data/clean"
METRICS, CONFUSION = "metrics/evaluate.json", "plots/evaluate/confusion.json"


def main() -> int:
    from medchat.data.condition_names import ConditionNames
    from medchat.data.eval_sets import load_freetext, load_questions, load_safety_set
    from medchat.data.kb import load_tidy
    from medchat.data.lexicon import Lexicon
    from medchat.eval.baseline import Baseline
    from medchat.eval.freetext import evaluate_freetext, evaluate_questions, retriever_ablation
    from medchat.eval.quality import (
        confusion_rows,
        evaluate_baseline,
        evaluate_model,
        measure_speed,
        product_score,
        shipped_model,
    )
    from medchat.eval.safety_metrics import detector_metrics, evaluate_safety
    from medchat.eval.scoring import recall_at
    from medchat.inference.chat_model import ChatModel
    from medchat.inference.drafting import reply_texts
    from medchat.inference.grounding import Composer, Grounding, decision, escalation_bias
    from medchat.model.loading import quiet_progress
    from medchat.retrieval.prompts import PromptBuilder
    from medchat.safety.rules import SafetyRules
    from medchat.safety.triage import Triage

    quiet_progress()
    try:
        params = load_params()
        e = params.evaluate
        train_rows = read_jsonl(f"{SPLIT_DIR}/train.jsonl")
        test_rows = read_jsonl(f"{SPLIT_DIR}/test.jsonl")
        safety_items, tuning_items = load_safety_set(SAFETY_SET), load_safety_set(TUNING_SET)
        rules = SafetyRules.load(params.safety.rules)
        triage = Triage.load(TRIAGE)
        prompts = PromptBuilder.load(INDEX)
        free_sets = {
            "freetext": load_freetext(FREETEXT),
            "freetext_v2": load_freetext(FREETEXT_V2),
            "freetext_dev": load_freetext(FREETEXT_DEV),
        }
        safety_dev = load_safety_set(SAFETY_DEV)
        questions = load_questions(QUESTIONS_V2)
        kb, lexicon = load_tidy(CLEAN_DIR), Lexicon.load(params.augment.lexicon)
        condition_names = ConditionNames.load(e.condition_names)
        grounding = Grounding(kb, rules, prompts, e.grounding_top_k, condition_names) if e.grounding_top_k else None
        # a decision model's openings are composed into whole replies from the knowledge base
        decides = params.tokenize.reply_form == "decision"
        composer = Composer(kb, rules) if decides else None
        # greedy decoding drafts from the training replies (medchat.inference.drafting): same replies, fewer passes
        drafts = [decision(t, rules) for t in reply_texts(train_rows)] if decides else reply_texts(train_rows)
        chats = {
            name: ChatModel.load(
                path, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size, drafts=drafts, composer=composer
            )
            for name, path in MODELS.items()
        }
        for chat in chats.values():
            chat.opening_bias = escalation_bias(chat.tokenizer, rules, e.escalation_margin)
    except InputError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    diagnose_train = [r for r in train_rows if r["task"] == "diagnose"]
    baseline = Baseline.fit(
        [r["user"] for r in diagnose_train], [r["disease"] for r in diagnose_train], e.baseline_c, params.seed
    )
    results, predictions = {}, []
    results["baseline"], rows = evaluate_baseline(baseline, test_rows)
    predictions += [{"model": "baseline", **r} for r in rows]
    diagnose = [r for r in test_rows if r["task"] == "diagnose"]
    # speed is measured on a seeded sample of every task's messages, as users would send them
    speed_rows = random.Random(params.seed).sample(test_rows, min(len(test_rows), max(e.batch_size, e.latency_samples)))
    speed_users = [r["user"] for r in speed_rows]
    ranked = prompts.retriever.rank(prompts.queries([r["user"] for r in diagnose]))
    results["retriever"] = {"test": recall_at(ranked, [r["disease"] for r in diagnose])}
    for key, items in free_sets.items():  # the systems without a language model
        free, _ = evaluate_freetext(items, prompts, baseline)
        for system in ("retriever", "baseline"):
            results[system][key] = {"raw": free[f"{system}_raw"], "normalised": free[system]}
    # what the guard finds in the user text needs no model: its detectors on the second development set
    results["guard_detectors"] = {
        "safety_dev": detector_metrics(rules, safety_dev, triage.flags([i["text"] for i in safety_dev]))
    }
    results["retriever"]["ablation"] = retriever_ablation(
        free_sets["freetext"], kb, lexicon, prompts.normaliser, prompts.retriever
    )

    def chatbot_on(chat, items):  # the LM's own reply, and the chatbot's: grounded, then guarded
        guard_rules = rules if e.guard else None
        weights = dict(e.ensemble_weights)
        free, _ = evaluate_freetext(
            items, prompts, baseline, chat, weights, grounding, e.rank_candidates, guard_rules, triage
        )
        return {k: free[k] for k in ("lm", "lm_generated", "ensemble", "chatbot") if k in free}

    # the development sets, for both models: they choose which one ships
    # perplexity of what the model learned to generate: a decision model's openings (tokenize.reply_form)
    target = (lambda reply: decision(reply, rules)) if decides else None
    for name, chat in chats.items():
        results[name], rows = evaluate_model(chat, test_rows, e.rank_candidates, prompts, target)
        results[name]["safety_tuning"] = evaluate_safety(chat, rules, tuning_items, triage, prompts)[0]
        results[name]["freetext"] = chatbot_on(chat, free_sets["freetext"])
        results[name]["product_score"] = product_score(results[name])
        predictions += [{"model": name, **r} for r in rows]
        print(
            f"evaluate: {name}: full-symptom accuracy {results[name]['full'].get('accuracy')}, "
            f"partial {results[name]['partial'].get('accuracy')}, product score {results[name]['product_score']}"
        )
    shipped = shipped_model(results, e.ship)
    # the held-out sets, for the model that ships (what users get): reported, never used to choose
    chat = chats[shipped]
    # both models have the base's architecture (LoRA is merged), so speed is measured once, on the one that ships
    results[shipped].update(measure_speed(chat, prompts(speed_users), e.latency_samples))
    results[shipped]["safety"], safety_rows = evaluate_safety(chat, rules, safety_items, triage, prompts)
    predictions += [{"model": shipped, "task": "safety", **r} for r in safety_rows]
    results[shipped]["freetext_v2"] = chatbot_on(chat, free_sets["freetext_v2"])
    results[shipped]["questions_v2"] = evaluate_questions(chat, prompts, rules, triage, questions, grounding)
    counts = dict(sorted(Counter(r["task"] for r in test_rows).items()))
    results["shipped"], results["test_examples"] = shipped, counts
    write_json(METRICS, results)
    write_jsonl(PREDICTIONS, predictions)
    write_json(CONFUSION, confusion_rows(predictions, shipped))
    print(f"evaluate: baseline full-symptom accuracy {results['baseline']['full'].get('accuracy')}; ships {shipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
