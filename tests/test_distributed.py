"""Training runs unchanged under torchrun: two CPU processes (gloo) follow the loss curve of one process
with the same global batch, and only rank 0 writes the model, plots and metrics."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_stage, set_params

TORCHRUN = Path(sys.executable).parent / "torchrun"
LOSS = re.compile(r"'loss': '([0-9.]+)'")
# Per logged step, relative. The curves agree to the printed digits except at an epoch's last, partial
# batch, which accelerate completes with examples from the epoch's start (even_batches) so every rank gets a full share.
TOLERANCE = 0.05


def train_losses(output: str) -> list[float]:
    return [float(v) for v in LOSS.findall(output)]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_two_cpu_processes_follow_the_single_process_loss_curve(workdir):
    tiny = yaml.safe_load((ROOT / "tests" / "params-tiny.yaml").read_text())
    set_params(
        workdir,
        {
            **tiny,
            "train": {
                **tiny["train"],
                "load_best_model_at_end": False,
                "early_stopping_patience": 0,
                "per_device_train_batch_size": 16,
            },
        },
    )
    for stage in ("clean", "augment", "split", "index", "tokenize_data"):
        run_stage(stage, workdir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [str(TORCHRUN), "--nproc_per_node", "2", str(ROOT / "stages" / "train.py")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("train: eval_loss") == 1  # rank 0 reports; rank 1 writes nothing
    assert (workdir / "models" / "train" / "model.safetensors").exists()
    assert (workdir / "metrics" / "train.json").exists() and (workdir / "plots" / "train").is_dir()
    assert not list((workdir / "models").glob(".train*"))  # no staging folder left behind
    distributed = train_losses(ddp.stdout)

    set_params(workdir, {"train": {"per_device_train_batch_size": 32}})  # one process, same global batch
    single = train_losses(run_stage("train", workdir).stdout)
    assert len(distributed) == len(single) >= 5
    for step, (a, b) in enumerate(zip(distributed, single)):
        assert abs(a - b) <= TOLERANCE * b, (step, a, b)
    assert single[-1] < single[0]  # and it did learn
