"""Cross-validation folds read back from `dvc exp show --json` and summarised as mean ± std."""

import json

import pytest
import yaml
from conftest import ROOT

from medchat.cli import main
from medchat.errors import InputError
from medchat.ops.experiments import experiment_records, folds_table, lookup, summarize_folds

ACCURACY = "metrics/evaluate.json:train.full.accuracy"


def experiment(name, folds, fold, accuracy):
    """One experiment as `dvc exp show --json` (DVC 3) nests it."""
    return {
        "revs": [
            {
                "rev": name * 8,
                "name": name,
                "data": {
                    "params": {"params.yaml": {"data": {"split": {"folds": folds, "fold": fold}, "seed": 42}}},
                    "metrics": {"metrics/evaluate.json": {"data": {"train": {"full": {"accuracy": accuracy}}}}},
                },
            }
        ],
        "executor": None,
        "name": name,
    }


SHOWN = [
    {"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None},
    {
        "rev": "abc",
        "name": "main",
        "data": {},
        "error": None,
        "experiments": [
            experiment("f0-new", 3, 0, 0.90),  # newest first: it wins over f0-old
            experiment("f0-old", 3, 0, 0.10),
            experiment("f1", 3, 1, 0.80),
            experiment("f2", 3, 2, 0.70),
            experiment("plain", 0, 0, 0.99),
        ],
    },
]  # not cross-validation


def test_folds_mean_and_std_use_each_fold_once():
    summary = summarize_folds(experiment_records(SHOWN), [ACCURACY])
    assert list(summary) == [3]
    s = summary[3][ACCURACY]
    assert s["n"] == 3 and s["folds"] == [0, 1, 2]
    assert s["mean"] == pytest.approx(0.8) and s["std"] == pytest.approx(0.1)
    table = folds_table(summary)
    assert "| 3 | metrics/evaluate.json:train.full.accuracy | 0.8 ± 0.1 | 3 | none |" in table


def test_missing_folds_and_metrics_are_reported_not_invented():
    shown = [{"experiments": [experiment("f0", 4, 0, 0.5), experiment("f2", 4, 2, 0.7)]}]
    summary = summarize_folds(experiment_records(shown), [ACCURACY, "metrics/evaluate.json:train.nothing"])
    assert "| 4 | metrics/evaluate.json:train.full.accuracy | 0.6 ± 0.1414 | 2 | 1, 3 |" in folds_table(summary)
    assert summary[4]["metrics/evaluate.json:train.nothing"]["mean"] is None
    assert lookup({"m.json": {"a": {"b": True}}}, "m.json:a.b") is None  # booleans are not metrics


def test_no_fold_experiments_is_an_error_with_the_recipe():
    with pytest.raises(InputError, match="split.folds"):
        summarize_folds(experiment_records([{"experiments": [experiment("plain", 0, 0, 0.9)]}]), [ACCURACY])


def test_cli_reads_exported_json(tmp_path, capsys):
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(SHOWN))
    assert main(["cv", "--exp-json", str(path), "--metric", ACCURACY]) == 0
    assert "0.8 ± 0.1" in capsys.readouterr().out


def shipped_metrics(shipped, reply, fusion, accuracy, per_term):
    return {
        "metrics/evaluate.json": {
            "shipped": shipped,
            shipped: {
                "freetext": {
                    "lm_generated": {"top1": reply},
                    "lm": {"top1": 0.5, "top3": 0.7},
                    "ensemble": {"top1": fusion, "top3": 0.9},
                },
                "full": {"accuracy": accuracy},
                "partial": {"accuracy": 0.4},
            },
        },
        "metrics/tokenize.json": {"domain_tokens": {"tokens_per_term_after": per_term}},
    }


def test_ablation_rows_read_each_configuration_from_its_experiment():
    from medchat.eval.report import ablation_section, multitask_section
    from medchat.ops.experiments import STUDIES, ablation_rows

    parts = STUDIES["parts"]
    names = {config: f"abl-{config}" for config, _, _ in parts.configs}
    shown = [
        {
            "rev": "abc",
            "name": "main",
            "data": {},
            "experiments": [
                {
                    "name": names[config],
                    "revs": [
                        {
                            "name": names[config],
                            "data": {
                                "params": {"params.yaml": {"data": {}}},
                                "metrics": {
                                    path: {"data": data}
                                    for path, data in shipped_metrics(
                                        "finetune", 0.1 * (i + 3), 0.8 + 0.05 * i, 0.9, 1.0 + i
                                    ).items()
                                },
                            },
                        }
                    ],
                }
                for i, (config, _, _) in enumerate(parts.configs)
            ],
        }
    ]
    rows = ablation_rows(experiment_records(shown), shipped_metrics("train", 0.2, 0.75, 0.97, 3.6), names, parts)
    assert [r["config"] for r in rows] == ["default"] + [c for c, _, _ in parts.configs]
    assert rows[0]["model"] == "train" and rows[0]["ensemble_top1"] == 0.75 and rows[0]["tokens_per_term"] == 3.6
    rag = next(r for r in rows if r["config"] == "rag")
    assert rag["model"] == "finetune" and rag["params"] == {"retrieval.enabled": True}
    assert rag["ensemble_top1"] == pytest.approx(0.85)
    results = {
        "retriever": {
            "ablation": {
                "tfidf_labels": {"top1": 0.6, "top3": 0.8, "n": 5},
                "tfidf_lexicon": {"top1": 0.88, "top3": 0.95, "n": 5},
            }
        }
    }
    ablation = {"commit": "abc1234", "studies": {"parts": rows}}
    section = ablation_section(results, ablation)
    assert "| retriever: TF-IDF over the clinical symptom labels only | 0.6 | 0.8 |" in section
    assert "commit abc1234" in section and "| rag: " in section
    assert "Best top-1 on free text: 0.9 (domain-tokens LM + retriever + baseline fusion)." in section
    assert "dense rows need the `dense` extra" in section  # no minilm row: says how to get it
    assert multitask_section(ablation) == ""  # no multitask study yet: no section
    with pytest.raises(InputError, match="abl-rag-x"):
        ablation_rows(
            experiment_records(shown),
            shipped_metrics("train", 0.2, 0.75, 0.97, 3.6),
            {**names, "rag": "abl-rag-x"},
            parts,
        )


def test_multitask_study_reads_the_train_model():
    from medchat.eval.report import multitask_section
    from medchat.ops.experiments import STUDIES, ablation_rows

    study = STUDIES["multitask"]
    metrics = shipped_metrics("finetune", 0.1, 0.7, 0.5, 1.0)  # shipped finetune, but the study reads train
    metrics["metrics/evaluate.json"]["train"] = {
        "full": {"accuracy": 0.97},
        "safety_tuning": {"guard_off": {"escalation_recall": 0.5}},
    }
    metrics["metrics/train.json"] = {"eval_loss": 0.12}
    names = {config: config for config, _, _ in study.configs}
    shown = [
        {
            "rev": "abc",
            "experiments": [
                {
                    "name": n,
                    "revs": [
                        {"name": n, "data": {"metrics": {path: {"data": data} for path, data in metrics.items()}}}
                    ],
                }
                for n in names
            ],
        }
    ]
    rows = ablation_rows(experiment_records(shown), metrics, names, study)
    assert [r["model"] for r in rows] == ["train"] * 2  # the default mix and diagnose-only
    assert rows[1]["params"] == {"train.tasks": ["diagnose"]} and rows[0]["full_accuracy"] == 0.97
    table = multitask_section({"commit": "c0ffee", "studies": {"multitask": rows}})
    assert "| diagnose-only: train on diagnose alone | 0.97 | – | – | – | 0.5 | – | – | 0.12 |" in table
    assert "run at commit c0ffee" in table  # a file from before per-study commits
    # each study names the commit its own experiments ran from, not the newest study's
    both = {"commit": "beef", "commits": {"multitask": "c0ffee", "profiles": "beef"}, "studies": {"multitask": rows}}
    assert "run at commit c0ffee" in multitask_section(both)


def test_the_scratch_profile_runs_as_an_experiment_of_flat_overrides(tmp_path):
    from conftest import SCRATCH_PROFILE, scratch_raw

    from medchat.eval.report import profiles_section
    from medchat.ops.experiments import STUDIES, profile_overrides
    from medchat.params import parse_params

    overrides = profile_overrides(SCRATCH_PROFILE)
    assert overrides["model.name"] == "scratch" and overrides["train.lora.r"] == 0
    assert overrides["augment.per_disease.diagnose"] == 100  # nested keys become dotted -S keys
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in overrides.items():  # applied one by one, as `dvc exp run -S` does, they give the profile
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node[part]
        node[last] = value
    assert parse_params(raw) == parse_params(scratch_raw())
    assert STUDIES["profiles"].configs[0][2] == overrides
    rows = [
        {"config": "default", "model": "finetune", "freetext_v2_chatbot_top1": 0.8, "product_score": 0.9},
        {"config": "scratch", "model": "train", "freetext_v2_chatbot_top1": 0.25, "product_score": 0.6},
    ]
    table = profiles_section({"commit": "abc", "studies": {"profiles": rows}})
    assert "| default | finetune | 0.8 |" in table and "| scratch | train | 0.25 |" in table
    assert profiles_section({"studies": {}}) == ""
