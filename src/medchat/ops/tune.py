"""`medchat tune`: an Optuna study whose trials are ordinary DVC experiments.

Each trial samples the `tune.space` of params.yaml, runs `dvc exp run --temp -n <study>-<trial> -S key=value`
(so the workspace is untouched and unchanged stages come from the cache), and reads its objective back from
that experiment's metrics. The study lives in an RDB (`tune.storage`, SQLite by default; any SQLAlchemy URL
lets several machines share it), and `tune.n_trials` caps the whole study, not one process, so a second
machine joining a study only adds workers. The best trial is applied with `dvc exp apply`.

No pruning: a trial is one whole `dvc repro`, which reports no intermediate values to prune on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from medchat.errors import InputError
from medchat.ops.dvc_commands import run_dvc
from medchat.ops.experiments import dvc_exp_show, experiment_records, lookup

if TYPE_CHECKING:
    import optuna

    from medchat.params import TuneParams


class TrialFailed(Exception):
    """A trial's experiment failed or lacks the objective: the trial is marked failed and the study goes on."""


def suggest(trial: optuna.Trial, space: dict[str, dict]) -> dict[str, Any]:
    """One value per dimension: `choices` -> categorical; `low`/`high` ints -> int; otherwise float
    (`log` and `step` as Optuna takes them)."""
    values = {}
    for key, dim in space.items():
        if "choices" in dim:
            values[key] = trial.suggest_categorical(key, list(dim["choices"]))
        elif all(isinstance(dim[b], int) and not isinstance(dim[b], bool) for b in ("low", "high")) and isinstance(
            dim.get("step", 1), int
        ):
            values[key] = trial.suggest_int(
                key, dim["low"], dim["high"], step=dim.get("step", 1), log=dim.get("log", False)
            )
        else:
            values[key] = trial.suggest_float(
                key, float(dim["low"]), float(dim["high"]), step=dim.get("step"), log=dim.get("log", False)
            )
    return values


def make_sampler(name: str, space: dict[str, dict], seed: int) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    grid = {}
    for key, dim in space.items():
        if "choices" not in dim:
            raise InputError(
                "the grid sampler needs `choices` for every dimension",
                key=f"tune.space.{key}",
                fix="list the values to try as choices: [...], or use sampler: tpe / random",
            )
        grid[key] = list(dim["choices"])
    return optuna.samplers.GridSampler(grid, seed=seed)


def experiment_command(name: str, overrides: dict[str, Any], targets: Sequence[str] = ()) -> list[str]:
    """`targets` (tune.targets): the stages to run, with what they depend on; none: the whole pipeline. Tuning
    the triage classifier against metrics/triage.json needs no language model trained or evaluated."""
    command = ["dvc", "exp", "run", "--temp", "-n", name]
    for key, value in overrides.items():
        command += ["-S", f"{key}={json.dumps(value)}"]  # JSON scalars are YAML scalars: 0.001, true, "cosine"
    return command + list(targets)


def run_experiment(name: str, overrides: dict[str, Any], targets: Sequence[str] = ()) -> None:
    result = subprocess.run(experiment_command(name, overrides, targets), capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
        raise TrialFailed(f"dvc exp run failed for {name}: " + " / ".join(tail))


def objective_value(shown: list[dict], name: str, key: str) -> float:
    """The objective of experiment `name` in `dvc exp show --json` output; `{shipped}` in the key is the
    experiment's packaged model (train or finetune)."""
    for record in experiment_records(shown):
        if record["name"] == name:
            shipped = (record["metrics"].get("metrics/evaluate.json") or {}).get("shipped", "train")
            value = lookup(record["metrics"], key.format(shipped=shipped))
            if value is None:
                raise TrialFailed(f"experiment {name} has no metric {key}")
            return value
    raise TrialFailed(f"experiment {name} not found in dvc exp show")


def run_study(
    tune: TuneParams,
    seed: int,
    show: Callable[[], list[dict]],
    run: Callable[[str, dict], None] = run_experiment,
    log: Callable[[str], None] = print,
) -> Any:
    """Create or join the study and run trials until it holds `tune.n_trials` (or `tune.timeout_s` passes)."""
    import optuna
    from optuna.study import MaxTrialsCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=tune.study_name,
        storage=tune.storage,
        direction=tune.direction,  # type: ignore[arg-type]  # maximize or minimize, checked at load
        sampler=make_sampler(tune.sampler, tune.space, seed),
        load_if_exists=True,
    )

    def objective(trial: optuna.Trial) -> float:
        overrides = suggest(trial, tune.space)
        name = f"{tune.study_name}-{trial.number}"
        trial.set_user_attr("experiment", name)
        log(f"tune: trial {trial.number}: {name} " + " ".join(f"{k}={v}" for k, v in overrides.items()))
        run(name, overrides)
        value = objective_value(show(), name, tune.objective)
        log(f"tune: trial {trial.number}: {tune.objective} = {value:g}")
        return value

    remaining = tune.n_trials - len(study.trials)
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=tune.timeout_s or None,
            catch=(TrialFailed,),
            callbacks=[MaxTrialsCallback(tune.n_trials, states=None)],
        )
    return study


def trials_table(study: optuna.Study) -> str:
    """Markdown: one row per trial (number, state, objective, params, experiment); the best marked."""
    keys = sorted({k for t in study.trials for k in t.params})
    best = _best_number(study)
    lines = [
        "| trial | state | objective | " + " | ".join(keys) + " | experiment |",
        "|---:|---|---:|" + "---:|" * len(keys) + "---|",
    ]
    for t in study.trials:
        value = "–" if t.value is None else f"{t.value:g}" + (" (best)" if t.number == best else "")
        cells = [
            "–" if k not in t.params else f"{t.params[k]:g}" if isinstance(t.params[k], float) else str(t.params[k])
            for k in keys
        ]
        lines.append(
            f"| {t.number} | {t.state.name.lower()} | {value} | "
            + " | ".join(cells)
            + f" | {t.user_attrs.get('experiment', '–')} |"
        )
    return "\n".join(lines)


def _best_number(study: optuna.Study) -> int | None:
    try:
        return study.best_trial.number
    except ValueError:  # no complete trial
        return None


def apply_best(study: optuna.Study) -> str:
    number = _best_number(study)
    if number is None:
        raise InputError("no trial completed", fix="see the failed trials above; `dvc exp show` lists what ran")
    name = study.best_trial.user_attrs["experiment"]
    run_dvc("exp", "apply", name, fix=f"dvc exp apply {name}")
    return name


def main(tune: TuneParams, seed: int, apply: bool, table_path: str | None) -> int:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise InputError("medchat tune needs Optuna", fix="pip install 'medchat[tune]'") from None
    study = run_study(tune, seed, dvc_exp_show, partial(run_experiment, targets=tune.targets))
    table = trials_table(study)
    print(table)
    if table_path:
        with open(table_path, "w", encoding="utf-8") as handle:
            handle.write(table + "\n")
    if apply:
        name = apply_best(study)
        print(
            f"tune: best trial {study.best_trial.number} ({tune.objective} = {study.best_value:g}) applied "
            f"to the workspace with `dvc exp apply {name}`",
            file=sys.stderr,
        )
    return 0
