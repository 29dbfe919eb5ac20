"""Crash and resume: `kill -9` the train stage after its first complete checkpoint, run it again, and it
resumes from that checkpoint and ends with exactly the weights and metrics of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, run_stage, set_params

pytestmark = pytest.mark.slow
COMPARED = ("eval_loss", "eval_disease_accuracy", "best_checkpoint_step", "steps", "epochs", "train_examples")


@pytest.fixture
def tokenized(workdir):
    set_params(workdir, yaml.safe_load((ROOT / "tests" / "params-tiny.yaml").read_text()))
    # two epochs of ~20 steps with a checkpoint every 4: room to kill between checkpoints
    set_params(workdir, {"train": {"num_train_epochs": 2, "tasks": ["diagnose"]}})
    for stage in ("clean", "augment", "split", "index", "tokenize_data"):
        run_stage(stage, workdir)
    return workdir


def train_outputs(workdir):
    from safetensors.numpy import load_file

    metrics = json.loads((workdir / "metrics" / "train.json").read_text())
    return load_file(str(workdir / "models" / "train" / "model.safetensors")), {k: metrics[k] for k in COMPARED}


def test_killed_training_resumes_to_the_same_result(tokenized):
    workdir = tokenized
    first = run_stage("train", workdir)
    assert "resuming" not in first.stdout
    weights, metrics = train_outputs(workdir)
    assert not (workdir / "models" / ".checkpoints" / "train").exists()  # removed after success
    run_stage("train", workdir)  # determinism: a second clean run is identical
    again, again_metrics = train_outputs(workdir)
    assert again_metrics == metrics and all((again[k] == weights[k]).all() for k in weights)

    checkpoints = workdir / "models" / ".checkpoints" / "train"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / "train.py")],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("checkpoint-*/medchat-complete")):
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(checkpoints.glob("checkpoint-*/medchat-complete"))
    # a half-written checkpoint, as a kill during saving leaves it: never resumed from
    (checkpoints / "checkpoint-999").mkdir()
    (checkpoints / "checkpoint-999" / "model.safetensors").write_bytes(b"truncated")
    resumed = run_stage("train", workdir)
    assert "resuming from" in resumed.stdout and "checkpoint-999" not in resumed.stdout
    after, after_metrics = train_outputs(workdir)
    assert after_metrics == metrics
    assert all((after[k] == weights[k]).all() for k in weights)
    assert not checkpoints.exists() and not list((workdir / "models").glob(".train.*"))  # nothing stale left
