"""`medchat tune`: Optuna trials as DVC experiments (dvc replaced by fakes here; the real thing runs in
test_pipeline_e2e.py), the tune section's validation, and the trials table."""

import dataclasses

import pytest
from conftest import params_section, parse_over_repo

from medchat.errors import InputError

optuna = pytest.importorskip("optuna", reason="the tune extra (pip install 'medchat[tune]') is not installed")

from medchat.ops.tune import TrialFailed, experiment_command, objective_value, run_study, trials_table

LR = "train.learning_rate"


class FakeDvc:
    """Stands in for `dvc exp run` and `dvc exp show --json`: each experiment's accuracy peaks at lr = 0.01."""

    def __init__(self, fail: set[str] = frozenset()):
        self.runs: dict[str, dict] = {}
        self.fail = fail

    def run(self, name, overrides):
        if name in self.fail:
            raise TrialFailed(f"dvc exp run failed for {name}")
        self.runs[name] = overrides

    def show(self):
        experiments = [
            {
                "name": name,
                "revs": [
                    {
                        "name": name,
                        "data": {
                            "params": {"params.yaml": {"data": {}}},
                            "metrics": {
                                "metrics/evaluate.json": {
                                    "data": {"shipped": "finetune", "finetune": {"full": {"accuracy": accuracy(o)}}}
                                }
                            },
                        },
                    }
                ],
            }
            for name, o in reversed(self.runs.items())
        ]
        return [{"rev": "workspace", "data": {}, "experiments": None}, {"rev": "abc", "experiments": experiments}]


def accuracy(overrides):
    return round(1 - (overrides[LR] - 0.01) ** 2 * 100, 6)


def settings(tmp_path, **changes):
    base = params_section(
        "tune",
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        study_name="s",
        n_trials=3,
        space={LR: {"low": 0.001, "high": 0.03, "log": True}},
        objective="metrics/evaluate.json:{shipped}.full.accuracy",
    )
    return dataclasses.replace(base, **changes)


def test_each_trial_is_a_named_experiment_and_its_metric_is_the_objective(tmp_path):
    fake = FakeDvc()
    study = run_study(settings(tmp_path), 42, fake.show, fake.run, log=lambda _: None)
    assert [t.user_attrs["experiment"] for t in study.trials] == ["s-0", "s-1", "s-2"] == list(fake.runs)
    for t in study.trials:
        assert t.state.name == "COMPLETE" and t.value == accuracy(fake.runs[t.user_attrs["experiment"]])
        assert 0.001 <= t.params[LR] <= 0.03
    table = trials_table(study)
    assert table.count("\n") == 4 and "| train.learning_rate | experiment |" in table
    assert f"{study.best_value:g} (best)" in table


def test_the_budget_is_the_whole_studys_and_a_second_process_joins_it(tmp_path):
    fake = FakeDvc()
    run_study(settings(tmp_path), 42, fake.show, fake.run, log=lambda _: None)
    again = run_study(settings(tmp_path), 42, fake.show, fake.run, log=lambda _: None)
    assert len(again.trials) == 3 and len(fake.runs) == 3  # the study is full: nothing more runs
    more = run_study(settings(tmp_path, n_trials=5), 7, fake.show, fake.run, log=lambda _: None)
    assert len(more.trials) == 5 and list(fake.runs)[-2:] == ["s-3", "s-4"]


def test_a_failed_experiment_fails_its_trial_only(tmp_path):
    fake = FakeDvc(fail={"s-1"})
    study = run_study(settings(tmp_path), 42, fake.show, fake.run, log=lambda _: None)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "| 1 | fail | – |" in trials_table(study)


def test_grid_and_random_samplers(tmp_path):
    fake = FakeDvc()
    grid = settings(tmp_path, sampler="grid", n_trials=10, space={LR: {"choices": [0.003, 0.01]}})
    study = run_study(grid, 42, fake.show, fake.run, log=lambda _: None)
    assert sorted(t.params[LR] for t in study.trials) == [0.003, 0.01]  # the grid is exhausted: the study stops
    assert study.best_trial.params[LR] == 0.01
    with pytest.raises(InputError, match="choices"):
        run_study(settings(tmp_path, sampler="grid", study_name="g2"), 42, fake.show, fake.run)
    study = run_study(settings(tmp_path, sampler="random", study_name="r"), 42, fake.show, fake.run, log=lambda _: None)
    assert len({t.params[LR] for t in study.trials}) == 3


def test_objective_read_back_and_command_line():
    fake = FakeDvc()
    fake.run("e", {LR: 0.01})
    assert objective_value(fake.show(), "e", "metrics/evaluate.json:{shipped}.full.accuracy") == 1.0
    with pytest.raises(TrialFailed, match="no metric"):
        objective_value(fake.show(), "e", "metrics/evaluate.json:train.full.accuracy")
    with pytest.raises(TrialFailed, match="not found"):
        objective_value(fake.show(), "other", "metrics/evaluate.json:{shipped}.full.accuracy")
    assert experiment_command("s-0", {LR: 0.001, "train.lr_scheduler_type": "cosine", "retrieval.enabled": True}) == [
        "dvc",
        "exp",
        "run",
        "--temp",
        "-n",
        "s-0",
        "-S",
        "train.learning_rate=0.001",
        "-S",
        'train.lr_scheduler_type="cosine"',
        "-S",
        "retrieval.enabled=true",
    ]
    # tune.targets: the trial runs those stages (and what they depend on) only
    assert experiment_command("s-1", {"triage.c": 1.0}, ["triage"])[-3:] == ["-S", "triage.c=1.0", "triage"]


@pytest.mark.parametrize(
    "space, key",
    [
        ({"train.learning_rat": {"low": 0.1, "high": 1}}, "tune.space.train.learning_rat"),
        ({LR: {"low": 0.1}}, f"tune.space.{LR}"),
        ({LR: {"low": 0.1, "high": 0.01}}, f"tune.space.{LR}"),
        ({LR: {"low": 0, "high": 0.01, "log": True}}, f"tune.space.{LR}.low"),
        ({LR: {"choices": []}}, f"tune.space.{LR}"),
        ({}, "tune.space"),
    ],
)
def test_bad_search_spaces_name_the_key(space, key):
    with pytest.raises(InputError) as raised:
        parse_over_repo({"tune": {"space": space}})
    assert raised.value.key == key


def test_tune_section_choices_and_a_dict_param_key():
    with pytest.raises(InputError) as raised:
        parse_over_repo({"tune": {"sampler": "cmaes"}})
    assert raised.value.key == "tune.sampler"
    tune = parse_over_repo(
        {"tune": {"space": {"augment.per_disease.diagnose": {"low": 20, "high": 100, "step": 20}}}}
    ).tune
    assert tune.space["augment.per_disease.diagnose"]["step"] == 20
