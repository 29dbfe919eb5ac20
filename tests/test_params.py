import dataclasses
import typing

import pytest
import yaml
from conftest import ROOT, parse_over_repo

from medchat.errors import InputError
from medchat.params import Params, load_params, markdown_table, merge, parse_params


def test_repository_params_load():
    params = load_params(ROOT / "params.yaml")
    assert params.clean.raw_dir == "data/raw"
    assert params.split.folds == 0


@pytest.mark.parametrize(
    "raw, key, hint",
    [
        ({"splt": {}}, "splt", "did you mean 'split'"),
        ({"split": {"val_fractoin": 0.1}}, "split.val_fractoin", "did you mean 'split.val_fraction'"),
        ({"split": {"val_fraction": "ten"}}, "split.val_fraction", "expected float"),
        ({"split": {"test_fraction": 0.9}}, "split.test_fraction", "out of range"),
        ({"seed": True}, "seed", "expected int"),
        ({"augment": {"per_disease": {"diagnoze": 10}}}, "augment.per_disease", "diagnose, describe, precautions"),
        ({"augment": {"per_disease": {"diagnose": "many"}}}, "augment.per_disease.diagnose", "expected int"),
        ({"split": {"folds": 5, "fold": 5}}, "split.fold", "0..4"),
        ({"split": {"folds": 1}}, "split.folds", "2 and more"),
        ({"clean": []}, "clean", "expected a mapping"),
        (
            {"train": {"tasks": ["diagnose"], "task_weights": {"describe": 2}}},
            "train.task_weights.describe",
            "weigh one of diagnose",
        ),
        ({"train": {"task_weights": {"diagnose": -1}}}, "train.task_weights.diagnose", "weight >= 0"),
        ({"finetune": {"replay_share": 0.99}}, "finetune.replay_share", "out of range"),
        ({"triage": {"min_threshold": {"other": 0.5}}}, "triage.min_threshold.other", "emergency, drug_request"),
        ({"triage": {"min_threshold": {"drug_request": 1.5}}}, "triage.min_threshold.drug_request", "0 to 1"),
        ({"triage": {"labelled_sets": ["data/eval/safety.jsonl"]}}, "triage.labelled_sets", "development sets only"),
        ({"triage": {"labelled_sets": ["data/eval/safety_v3.jsonl"]}}, "triage.labelled_sets", "development sets only"),
        ({"tune": {"sampler": "cmaes"}}, "tune.sampler", "'tpe', 'random', 'grid'"),
    ],
)
def test_bad_params_name_the_key(raw, key, hint):
    with pytest.raises(InputError) as info:
        parse_over_repo(raw)
    assert info.value.key == key
    assert hint in str(info.value)


def test_scientific_notation_string_is_a_float():
    assert parse_over_repo({"augment": {"partial_share": "5e-1"}}).augment.partial_share == 0.5


def test_load_reports_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["split"]["folds"] = [3]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=r"params.yaml \[split.folds\]: expected int"):
        load_params(path)


def test_merge_is_deep_and_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    assert merge(base, {"a": {"b": 9}}) == {"a": {"b": 9, "c": 2}, "d": 3}
    assert base["a"]["b"] == 1


def test_ensemble_weights_name_their_systems():

    with pytest.raises(InputError) as raised:
        parse_over_repo({"evaluate": {"ensemble_weights": {"lm": 1.0, "oracle": 2.0}}})
    assert raised.value.key == "evaluate.ensemble_weights"
    with pytest.raises(InputError):
        parse_over_repo({"evaluate": {"ensemble_weights": {"lm": -1.0}}})
    assert parse_over_repo({"evaluate": {"ensemble_weights": {"lm": 2.0}}}).evaluate.ensemble_weights == {"lm": 2.0}


def test_a_missing_key_is_an_error_naming_it():
    """params.yaml is the one source: no value falls back to a default in code."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw["train"]["learning_rate"]
    with pytest.raises(InputError) as info:
        parse_params(raw)
    assert info.value.key == "train.learning_rate" and "missing key" in str(info.value)


def test_every_field_is_required_and_documented():
    def walk(cls):
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, f.name
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
            kind = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(kind):
                walk(kind)

    walk(Params)


def test_the_params_doc_is_generated_from_the_code(monkeypatch):
    """docs/params.md is what `python -m medchat.params --markdown` prints: regenerate it when params change."""
    monkeypatch.chdir(ROOT)
    doc = markdown_table()
    assert (ROOT / "docs" / "params.md").read_text() == doc, "run: python -m medchat.params --markdown > docs/params.md"
    for key in ("`train.learning_rate`", "`safety.rules`", "`evaluate.guard`", "`tune.space`"):
        assert key in doc


def test_the_default_is_pretrained_and_the_scratch_profile_is_the_fast_one():
    from conftest import scratch_raw

    default, scratch = load_params(ROOT / "params.yaml"), parse_params(scratch_raw())
    assert default.model.name == "smollm2-135m-instruct" and default.train.lora.r > 0
    assert scratch.model.name == "scratch" and scratch.train.lora.r == 0
    assert default.tokenize.reply_form == scratch.tokenize.reply_form == "decision"
