"""Recovery and outputs of a training run: checkpoints marked complete once fully written, resumed only
by a run of the same training (its fingerprint), and staging folders that replace a stage's outputs on
success, also under torchrun."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from transformers import TrainerCallback

from medchat.artifacts import atomic_dir
from medchat.params import TrainerParams

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel

CHECKPOINTS = "checkpoints"


COMPLETE = "medchat-complete"  # written into a checkpoint once the Trainer has finished saving it


FINGERPRINT = "fingerprint"


class MarkCompleteCheckpoints(TrainerCallback):
    """on_save runs after the Trainer has written every file of a checkpoint: only then is it resumable.
    A checkpoint without the mark was cut off mid-write (kill -9) and is never resumed from."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            (Path(args.output_dir) / f"checkpoint-{state.global_step}" / COMPLETE).touch()


def run_fingerprint(
    model: PreTrainedModel, train_set: Dataset, val_set: Dataset, p: TrainerParams, seed: int, pack_capacity: int
) -> str:
    """What a checkpoint must share with this run to be resumed: params, seed, model config and starting
    weights, and the training and validation tokens. Any change starts training afresh."""
    import hashlib
    import json
    from dataclasses import asdict

    digest = hashlib.sha256(json.dumps([asdict(p), seed, pack_capacity], sort_keys=True, default=str).encode())
    digest.update(model.config.to_json_string().encode())
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for data in (train_set, val_set):
        for column in ("input_ids", "labels"):
            for row in data[column]:
                digest.update(bytes(str(row), "ascii"))
    return digest.hexdigest()


def resumable_checkpoint(folder: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint in `folder` left by an interrupted run of this same training, or None.
    Checkpoints of any other run, and half-written ones, are deleted."""
    stamp = folder / FINGERPRINT
    if not stamp.exists() or stamp.read_text() != fingerprint:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        stamp.write_text(fingerprint)
        return None
    complete = []
    for checkpoint in folder.glob("checkpoint-*"):
        if (checkpoint / COMPLETE).exists():
            complete.append(checkpoint)
        else:
            shutil.rmtree(checkpoint)
    return max(complete, key=lambda c: int(c.name.rsplit("-", 1)[1]), default=None)


def is_main_process() -> bool:
    """True in a plain run and in rank 0 of `torchrun` / `accelerate launch` (which set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def training_outputs(out_dir: str, plots_dir: str) -> Iterator[tuple[Path, Path]]:
    """Where fit writes the model and the dvclive plots: temporary folders that replace the targets on success.

    Under torchrun every rank must see the same output folder (the Trainer saves checkpoints from rank 0
    and every rank reloads the best one), so the model's staging folder is named after the run id that
    torchrun gives all ranks, and only rank 0 moves it into place; the other ranks write no plots."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        with atomic_dir(out_dir) as out, atomic_dir(plots_dir) as plots:
            yield out, plots
        return
    import tempfile

    staging = Path(out_dir).parent / f".{Path(out_dir).name}.run-{os.environ.get('TORCHELASTIC_RUN_ID', 'distributed')}"
    if not is_main_process():
        with tempfile.TemporaryDirectory() as unused_plots:
            yield staging, Path(unused_plots)
        return
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with atomic_dir(plots_dir) as plots:
            yield staging, plots
        # fit waited for every rank before returning, so no one still reads the checkpoints
        shutil.rmtree(staging / CHECKPOINTS, ignore_errors=True)
        if Path(out_dir).exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
