"""The data half end to end: dvc repro split from scratch, determinism, light imports, real data."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, copy_project, dvc, kaggle_dir, run_stage, set_params

from medchat.params import load_params

DATA_STAGES = ("clean", "augment", "split")


def outputs(workdir: Path) -> dict[str, bytes]:
    files = {}
    for folder in ("data/clean", "data/augmented", "data/split", "metrics"):
        for path in sorted((workdir / folder).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(workdir))] = path.read_bytes()
    return files


@pytest.mark.slow
def test_dvc_repro_split_from_scratch(tmp_path):
    project = copy_project(tmp_path / "project")
    dvc("repro", "split", cwd=project)
    split = json.loads((project / "metrics" / "split.json").read_text())
    assert split["overlap"] == {"groups": 0, "symptom_sets": 0, "user_texts": 0, "held_out_texts": 0}
    assert dvc("status", *DATA_STAGES, cwd=project).stdout.strip().endswith("up to date.")


def test_same_seed_identical_outputs(workdir, tmp_path):
    runs = []
    for _ in range(2):
        for stage in DATA_STAGES:
            run_stage(stage, workdir)
        runs.append(outputs(workdir))
    assert runs[0] == runs[1]
    set_params(workdir, {"seed": 43})
    for stage in DATA_STAGES[1:]:
        run_stage(stage, workdir)
    assert outputs(workdir)["data/split/test.jsonl"] != runs[0]["data/split/test.jsonl"]


def test_data_stages_import_no_heavy_libraries(workdir):
    probe = (
        "import runpy, sys\n"
        "sys.argv = [sys.argv[1]]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'evaluate', 'datasets', 'sklearn') if m in sys.modules))\n"
    )
    for stage in DATA_STAGES:
        result = subprocess.run(
            [sys.executable, "-c", probe, str(ROOT / "stages" / f"{stage}.py")],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip().splitlines()[-1] == "[]", (stage, result.stdout)


def test_real_kaggle_data_through_split(workdir):
    set_params(workdir, {"clean": {"raw_dir": str(kaggle_dir("headered"))}})
    for stage in DATA_STAGES:
        run_stage(stage, workdir)
    augment = json.loads((workdir / "metrics" / "augment.json").read_text())
    wanted = load_params(workdir / "params.yaml").augment.per_disease["diagnose"]
    assert augment["diagnose_per_disease"] == {"min": wanted, "max": wanted}
    examples = [json.loads(line) for line in (workdir / "data/augmented/examples.jsonl").read_text().splitlines()]
    assert not any("asprin" in e["reply"] or "antibiotic" in e["reply"] for e in examples)
    split = json.loads((workdir / "metrics" / "split.json").read_text())
    assert split["overlap"] == {"groups": 0, "symptom_sets": 0, "user_texts": 0, "held_out_texts": 0}
    assert split["test"]["diseases"] == 41


def test_k_fold_stage(workdir):
    for stage in DATA_STAGES[:2]:
        run_stage(stage, workdir)
    tests = []
    for fold in range(3):
        set_params(workdir, {"split": {"folds": 3, "fold": fold}})
        run_stage("split", workdir)
        tests.append(
            {json.loads(line)["group"] for line in (workdir / "data/split/test.jsonl").read_text().splitlines()}
        )
    assert not (tests[0] & tests[1]) and not (tests[1] & tests[2]) and not (tests[0] & tests[2])
    examples = (workdir / "data/augmented/examples.jsonl").read_text().splitlines()
    assert set().union(*tests) == {json.loads(line)["group"] for line in examples}


def test_split_refuses_leaking_examples(workdir):
    for stage in DATA_STAGES[:2]:
        run_stage(stage, workdir)
    path = workdir / "data/augmented/examples.jsonl"
    lines = path.read_text().splitlines()
    clones = []
    for i in range(5):  # the same user text under new groups: some land in another split
        clone = json.loads(lines[0])
        clone.update(id=f"leak-{i}", group=f"another-group-{i}")
        clones.append(json.dumps(clone))
    path.write_text("\n".join(lines + clones) + "\n")
    result = run_stage("split", workdir, check=False)
    assert result.returncode == 1 and "leak across splits" in result.stderr
    assert not (workdir / "data" / "split").exists()


def test_every_stage_imports_medchat_from_its_own_checkout(tmp_path):
    """`dvc exp run --queue` runs each experiment in a copy of the repository, but an editable install
    points `import medchat` at the main checkout: without PYTHONPATH=src in the stage commands, a queued
    experiment would run whatever code the workspace holds at that moment, not the code it was queued with."""
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    copy = tmp_path / "copy"
    (copy / "src" / "medchat").mkdir(parents=True)
    (copy / "src" / "medchat" / "__init__.py").write_text("raise SystemExit('medchat from the copy')\n")
    shutil.copytree(ROOT / "stages", copy / "stages")
    for name, stage in stages.items():
        result = subprocess.run(stage["cmd"], shell=True, cwd=copy, capture_output=True, text=True, timeout=120)
        assert "medchat from the copy" in result.stderr, (name, stage["cmd"], result.stderr[-500:])
