"""Trainer callbacks: ULMFiT-style gradual unfreezing (with the layer groups it unfreezes) and dvclive
plots on the optimizer-step axis."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback
from transformers.integrations import DVCLiveCallback

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def layer_groups(model: PreTrainedModel, n_groups: int) -> list[list[Any]]:
    """Parameters in groups from the top of the network down: [final norm/head + top blocks, ..., embeddings].
    Only parameters that train count: with LoRA, the groups hold the adapters, top blocks first.

    Works for any decoder whose blocks sit in one ModuleList of `num_hidden_layers` modules."""
    import torch

    n_layers = model.config.num_hidden_layers
    blocks = next((m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers), None)
    if blocks is None:
        raise ValueError(f"cannot find the {n_layers} decoder blocks of {type(model).__name__}")
    in_block = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    first_block_at = next(i for i, (_, p) in enumerate(named) if id(p) in in_block)
    bottom = [p for i, (_, p) in enumerate(named) if id(p) not in in_block and i < first_block_at]
    top = [p for i, (_, p) in enumerate(named) if id(p) not in in_block and i > first_block_at]
    n_chunks = max(1, min(n_groups - 1, n_layers))
    bounds = [round(n_layers * k / n_chunks) for k in range(n_chunks + 1)]
    chunks = [
        [p for b in range(lo, hi) for p in blocks[b].parameters() if p.requires_grad]
        for lo, hi in zip(bounds, bounds[1:])
    ]
    groups = [top + chunks[-1], *reversed(chunks[:-1])]
    if n_groups == 1:
        return [top + [p for c in chunks for p in c] + bottom]
    return [*groups, bottom]


class GradualUnfreezing(TrainerCallback):
    """Epoch k trains the top k+1 groups (ULMFiT). The optimizer is built before training begins,
    from parameters that require grad at that moment, so every parameter must still be trainable
    when the Trainer creates it; we freeze only at the first epoch. Frozen parameters get no grad,
    and torch optimizers skip parameters whose grad is None, so their weights and moments stay put."""

    def __init__(self, groups: list[list[Any]]):
        self.groups = groups
        self.epochs_started = 0
        self.history: list[int] = []  # trainable groups at each epoch, for the metrics and tests

    def on_epoch_begin(self, args, state, control, **kwargs):
        # from the Trainer's epoch count, not our own: a run resumed mid-epoch 2 must still train two groups
        self.epochs_started = int(state.epoch or 0) + 1
        active = min(self.epochs_started, len(self.groups))
        for i, group in enumerate(self.groups):
            for p in group:
                p.requires_grad_(i < active)
                if i >= active:
                    p.grad = None
        self.history.append(active)


class StepAlignedDVCLive(DVCLiveCallback):
    """transformers' DVCLiveCallback, with the optimizer step as the plots' x-axis. The library's callback
    advances dvclive's own counter once per log call, so with logging_steps 10 the evaluation at step
    450 was plotted at 46, and runs with different logging_steps could not be compared on one axis."""

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if state.is_world_process_zero and self.live is not None:
            self.live.step = state.global_step
        super().on_log(args, state, control, model=model, logs=logs, **kwargs)


def make_live(plots_dir: Path) -> Any:
    from dvclive import Live

    # dvcyaml=False: dvc.yaml declares our metrics and plots; dvclive must not rewrite it.
    return Live(dir=str(plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)
