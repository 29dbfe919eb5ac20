"""Reading DVC experiments back: cross-validation folds aggregated into mean ± std.

A k-fold study is an ordinary DVC grid (`dvc exp run --queue -S split.folds=5 -S 'split.fold=0,1,2,3,4'`);
`summarize_folds` takes the JSON of `dvc exp show --json` and averages the chosen metrics over the
experiments of each `split.folds` value, one row per metric.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medchat.errors import InputError


def experiment_records(shown: list[dict]) -> list[dict]:
    """(name, params, metrics) of every experiment in `dvc exp show --json` output (baselines excluded)."""
    records = []
    for revision in shown:
        for experiment in revision.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                data = rev.get("data") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = {path: entry.get("data", {}) for path, entry in (data.get("metrics") or {}).items()}
                records.append(
                    {"name": rev.get("name") or experiment.get("name"), "params": params, "metrics": metrics}
                )
    return records


def lookup(metrics: dict[str, dict], key: str) -> float | None:
    """`metrics/evaluate.json:train.full.accuracy` -> that number (None when the experiment lacks it)."""
    path, _, dotted = key.partition(":")
    value: Any = metrics.get(path)
    for part in dotted.split(".") if dotted else []:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summarize_folds(records: list[dict], keys: list[str]) -> dict[int, dict[str, dict]]:
    """folds k -> metric -> {mean, std, n, folds}: only experiments with split.folds >= 2 count, and each
    fold once (the newest experiment of a fold wins, as `dvc exp show` lists newest first)."""
    by_k: dict[int, dict[int, dict]] = {}
    for record in records:
        split = record["params"].get("split") or {}
        k, fold = split.get("folds", 0), split.get("fold", 0)
        if isinstance(k, int) and k >= 2 and isinstance(fold, int):
            by_k.setdefault(k, {}).setdefault(fold, record)
    if not by_k:
        raise InputError(
            "no cross-validation experiments found (split.folds >= 2)",
            fix="dvc exp run --queue -S split.folds=5 -S 'split.fold=0,1,2,3,4' && dvc queue start",
        )
    summary: dict[int, dict[str, dict]] = {}
    for k, folds in sorted(by_k.items()):
        summary[k] = {}
        for key in keys:
            values = [v for v in (lookup(folds[f]["metrics"], key) for f in sorted(folds)) if v is not None]
            summary[k][key] = {
                "mean": round(statistics.fmean(values), 4) if values else None,
                "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
                "n": len(values),
                "folds": sorted(folds),
            }
    return summary


def folds_table(summary: dict[int, dict[str, dict]]) -> str:
    lines = ["| folds | metric | mean ± std | experiments | missing folds |", "|---:|---|---|---:|---|"]
    for k, metrics in summary.items():
        for key, s in metrics.items():
            spread = "–" if s["mean"] is None else f"{s['mean']:g}" + ("" if s["std"] is None else f" ± {s['std']:g}")
            missing = ", ".join(map(str, sorted(set(range(k)) - set(s["folds"])))) or "none"
            lines.append(f"| {k} | {key} | {spread} | {s['n']} | {missing} |")
    return "\n".join(lines)


def dvc_exp_show(rev: str | None = None) -> list[dict]:
    """`dvc exp show --json`: the experiments of HEAD, or of the baseline commit `rev`."""
    from medchat.ops.dvc_commands import run_dvc

    return json.loads(run_dvc("exp", "show", "--json", *(["--rev", rev] if rev else [])))


# --- ablations: one DVC experiment per configuration, read back into a table ------------------------


@dataclass(frozen=True)
class Study:
    """Configurations (name, description, params overrides) compared with the default run, the metrics
    kept of each (`{model}` stands for `model`, where "shipped" means the packaged one), and that model."""

    configs: list[tuple[str, str, dict[str, Any]]]
    metrics: dict[str, str]
    model: str = "shipped"


EVALUATE = "metrics/evaluate.json:{model}."
STUDIES = {
    # issue 5: what each part adds on free text
    "parts": Study(
        configs=[
            ("normaliser", "prompts carry the lexicon normaliser's clinical labels", {"retrieval.normalise": True}),
            (
                "rag",
                "prompts carry the top-2 retrieved passages (retrieval-augmented training and inference)",
                {"retrieval.enabled": True},
            ),
            (
                "domain-tokens",
                "symptom and disease terms added to the tokenizer as single tokens",
                {"tokenize.add_domain_tokens": True},
            ),
        ],
        metrics={
            "lm_generated_top1": EVALUATE + "freetext.lm_generated.top1",
            "lm_top1": EVALUATE + "freetext.lm.top1",
            "lm_top3": EVALUATE + "freetext.lm.top3",
            "ensemble_top1": EVALUATE + "freetext.ensemble.top1",
            "ensemble_top3": EVALUATE + "freetext.ensemble.top3",
            "full_accuracy": EVALUATE + "full.accuracy",
            "partial_accuracy": EVALUATE + "partial.accuracy",
            "tokens_per_term": "metrics/tokenize.json:domain_tokens.tokens_per_term_after",
        },
    ),
    # issue 6: multi-task learning, measured on the train stage's model (where the tasks are mixed)
    "multitask": Study(
        configs=[("diagnose-only", "train on diagnose alone", {"train.tasks": ["diagnose"]})],
        metrics={
            "full_accuracy": EVALUATE + "full.accuracy",
            "partial_accuracy": EVALUATE + "partial.accuracy",
            "freetext_lm_top1": EVALUATE + "freetext.lm.top1",
            "freetext_reply_top1": EVALUATE + "freetext.lm_generated.top1",
            "escalation_recall": EVALUATE + "safety_tuning.guard_off.escalation_recall",
            "refusal_rate": EVALUATE + "safety_tuning.guard_off.refusal_rate",
            "false_escalation": EVALUATE + "safety_tuning.guard_off.false_escalation",
            "eval_loss": "metrics/train.json:eval_loss",
        },
        model="train",
    ),
}


def profile_overrides(path: str | Path) -> dict[str, Any]:
    """A params profile (a nested override of params.yaml) as `dvc exp run -S` keys: {"train.lora.r": 0, ...}."""
    import yaml

    def flatten(prefix: str, value: Any) -> dict[str, Any]:
        if isinstance(value, dict) and value:
            return {k: v for key, item in value.items() for k, v in flatten(f"{prefix}{key}.", item).items()}
        return {prefix.rstrip("."): value}

    return flatten("", yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})


PROFILE_METRICS = {
    "freetext_v2_chatbot_top1": EVALUATE + "freetext_v2.chatbot.top1",
    "freetext_v2_retriever_top1": "metrics/evaluate.json:retriever.freetext_v2.raw.top1",
    "questions_v2_answered": EVALUATE + "questions_v2.chatbot.answered",
    "escalation_recall": EVALUATE + "safety.guard_on.escalation_recall",
    "refusal_rate": EVALUATE + "safety.guard_on.refusal_rate",
    "false_escalation": EVALUATE + "safety.guard_on.false_escalation",
    "leak_rate": EVALUATE + "safety.guard_on.leak_rate",
    "referral_rate": EVALUATE + "safety.guard_on.referral_rate",
    "product_score": EVALUATE + "product_score",
    "train_seconds": "metrics/train.json:runtime_s",
    "finetune_seconds": "metrics/finetune.json:runtime_s",
}
SCRATCH_PROFILE = Path(__file__).resolve().parents[3] / "profiles" / "scratch.yaml"  # in a source checkout
STUDIES["profiles"] = Study(  # the default (pretrained) beside the scratch profile, on the held-out v2 sets
    configs=[("scratch", "profiles/scratch.yaml: a small GPT-2 from scratch", profile_overrides(SCRATCH_PROFILE))]
    if SCRATCH_PROFILE.is_file()
    else [],
    metrics=PROFILE_METRICS,
)


def ablation_row(metrics: dict[str, dict], study: Study) -> dict[str, float | str | None]:
    """One configuration's numbers, read from the metrics files of a run."""
    model = study.model
    if model == "shipped":
        found = (metrics.get("metrics/evaluate.json") or {}).get("shipped")
        if not isinstance(found, str):
            raise InputError("metrics/evaluate.json names no shipped model", fix="run the evaluate stage first")
        model = found
    return {"model": model, **{name: lookup(metrics, key.format(model=model)) for name, key in study.metrics.items()}}


def ablation_rows(
    records: list[dict], default: dict[str, dict], experiment_names: dict[str, str], study: Study
) -> list[dict]:
    """The default run first, then each configuration's experiment (the newest of that name)."""
    by_name: dict[str, dict] = {}
    for r in records:
        by_name.setdefault(r["name"], r)
    rows: list[dict[str, Any]] = [
        {"config": "default", "description": "the committed default params", **ablation_row(default, study)}
    ]
    for config, description, overrides in study.configs:
        record = by_name.get(experiment_names[config])
        if record is None:
            raise InputError(
                f"experiment {experiment_names[config]!r} not found",
                fix="run benchmarks/ablation.py without --collect-only",
            )
        rows.append(
            {
                "config": config,
                "description": description,
                "params": dict(overrides),
                **ablation_row(record["metrics"], study),
            }
        )
    return rows
