"""Bad input beyond the data files (tests/test_kb.py) and the batch file (tests/test_cli_model.py): params
through a real stage, model folders through the CLI, and DVC's state after a failed stage. Each case gets
one error line naming what is wrong, a non-zero exit, and no output."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import copy_project, dvc, run_stage

PARAMS = {  # params.yaml text edit -> the message of the one error line
    "unknown key": (
        lambda p: p["split"].update(val_fractoin=0.1),
        "[split.val_fractoin]: unknown key (fix: did you mean 'split.val_fraction'?)",
    ),
    "wrong type": (
        lambda p: p["train"].update(learning_rate="fast"),
        "[train.learning_rate]: expected float, got 'fast'",
    ),
    "out of range": (
        lambda p: p["split"].update(test_fraction=0.9),
        "[split.test_fraction]: 0.9 is out of range (fix: allowed: 0.0 .. 0.5)",
    ),
    "bad choice": (
        lambda p: p["retrieval"].update(encoder="bm42"),
        "[retrieval.encoder]: 'bm42' is not allowed (fix: choose one of",
    ),
    "unknown task": (
        lambda p: p["train"].update(tasks=["diagnose", "triage"]),
        "[train.tasks[1]]: unknown task 'triage'",
    ),
    "not a mapping": (lambda p: p.update(model=["scratch"]), "[model]: expected a mapping"),
}


@pytest.mark.parametrize("case", sorted(PARAMS))
def test_bad_params_stop_a_stage_with_one_line(case, workdir):
    edit, message = PARAMS[case]
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    edit(params)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_stage("clean", workdir, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("clean: error: params.yaml [") and message in lines[0]
    assert not (workdir / "data" / "clean").exists()


def test_params_that_are_not_yaml(workdir):
    (workdir / "params.yaml").write_text("seed: [1, 2\n")
    result = run_stage("clean", workdir, check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "params.yaml:2: not valid YAML: expected ',' or ']'" in result.stderr


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A real (tiny, untrained) model folder as train saves it."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from medchat.model.tokenization import train_bpe_tokenizer

    folder = tmp_path_factory.mktemp("model") / "model"
    tokenizer = train_bpe_tokenizer(["I have a fever and chills.", "It sounds most like Malaria."] * 20, vocab_size=300)
    GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_layer=1,
            n_embd=16,
            n_head=2,
            n_positions=64,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).save_pretrained(folder)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    tokenizer.save_pretrained(folder)
    return folder


def _pickle_only(folder):
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


MODEL_FOLDERS = {
    "config missing": (lambda f: (f / "config.json").unlink(), "not a trained model folder: config.json is missing"),
    "weights missing": (
        lambda f: (f / "model.safetensors").unlink(),
        "not a trained model folder: model.safetensors is missing",
    ),
    "pickle-only weights": (_pickle_only, "not a trained model folder: model.safetensors is missing"),
    "unknown architecture": (
        lambda f: (f / "config.json").write_text(json.dumps({"model_type": "not-a-model"})),
        "cannot load the model",
    ),
    "truncated weights": (
        lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100]),
        "cannot load the model",
    ),
    "tokenizer missing": (
        lambda f: [p.unlink() for p in f.glob("tokenizer*")],
        "not a trained model folder: tokenizer.json is missing",
    ),
}


@pytest.mark.parametrize("case", sorted(MODEL_FOLDERS))
def test_bad_model_folders_are_refused_with_one_line(case, saved_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    corrupt, message = MODEL_FOLDERS[case]
    corrupt(folder)
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"id": 1, "text": "I have a rash"}\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medchat.cli",
            "batch",
            "--model",
            str(folder),
            "--input",
            str(source),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("medchat: error: ") and message in lines[0]
    assert not out.exists()


def test_a_failed_stage_leaves_dvc_able_to_run_the_fixed_pipeline(tmp_path):
    project = copy_project(tmp_path / "project")
    good = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(good.replace("val_fraction: 0.1", "val_fraction: 0.7"))
    failed = dvc("repro", "clean", cwd=project, check=False)
    assert failed.returncode != 0 and "[split.val_fraction]: 0.7 is out of range" in failed.stdout + failed.stderr
    assert not (project / "data" / "clean").exists() and not (project / "dvc.lock").exists()
    (project / "params.yaml").write_text(good)
    dvc("repro", "clean", cwd=project)
    assert "up to date" in dvc("status", "clean", cwd=project).stdout
