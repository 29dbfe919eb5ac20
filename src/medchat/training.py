"""Trainer assembly: arguments from params, packing or dynamic-padding collator, dvclive, early stopping,
validation disease accuracy, ULMFiT-style gradual unfreezing, task weights and the auxiliary disease head.
Imports torch and transformers."""

from __future__ import annotations

import contextlib
import inspect
import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from transformers import (DataCollatorForSeq2Seq, EarlyStoppingCallback, Trainer, TrainerCallback,
                          TrainingArguments)
from transformers.integrations import DVCLiveCallback

from medchat.artifacts import atomic_dir
from medchat import names
from medchat.packing import DiseaseLabels, LossPositionsOnly, PackingCollator
from medchat.params import TrainerParams
from medchat.tokenization import IGNORE_INDEX

CHECKPOINTS = "checkpoints"
COMPLETE = "medchat-complete"  # written into a checkpoint once the Trainer has finished saving it
FINGERPRINT = "fingerprint"


class MarkCompleteCheckpoints(TrainerCallback):
    """on_save runs after the Trainer has written every file of a checkpoint: only then is it resumable.
    A checkpoint without the mark was cut off mid-write (kill -9) and is never resumed from."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            (Path(args.output_dir) / f"checkpoint-{state.global_step}" / COMPLETE).touch()


def run_fingerprint(model: Any, train_set: Any, val_set: Any, p: TrainerParams, seed: int, pack_capacity: int) -> str:
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


class ChatTrainer(Trainer):
    """A Trainer whose evaluation logs also carry validation disease accuracy from real generation.

    Adding it in `log` (rather than a callback's on_evaluate) puts it in the same log record as
    eval_loss, so dvclive writes both at the same step and best-model selection can use it."""

    def __init__(self, *args, accuracy_probe: Callable[[Any], float] | None = None, aux_head_weight: float = 0.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.accuracy_probe = accuracy_probe
        self.aux_head_weight = aux_head_weight
        self._accuracy: float | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The LM loss, plus (in training, with the head on) aux_head_weight x the disease head's
        cross-entropy at the prompts' last tokens. Evaluation reports the LM loss alone, so eval_loss
        stays comparable with and without the head."""
        diseases = inputs.pop("disease_labels", None)
        if diseases is None or not self.aux_head_weight or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        import torch

        loss, outputs = super().compute_loss(model, {**inputs, "output_hidden_states": True}, True, num_items_in_batch)
        where = diseases != IGNORE_INDEX
        if where.any():
            head = unwrap(model).disease_head
            logits = head(outputs.hidden_states[-1][where])
            loss = loss + self.aux_head_weight * torch.nn.functional.cross_entropy(logits, diseases[where])
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.accuracy_probe is not None and "eval_loss" in logs:
            self._accuracy = self.accuracy_probe(self.model)
            logs = {**logs, "eval_disease_accuracy": self._accuracy}
        super().log(logs, start_time)

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        metrics = super().evaluate(*args, **kwargs)  # calls log(), which measured the accuracy
        if self._accuracy is not None:
            metrics["eval_disease_accuracy"] = self._accuracy  # so metric_for_best_model can use it
        return metrics


def unwrap(model: Any) -> Any:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def weight_tasks(dataset: Any, weights: dict[str, float], seed: int) -> Any:
    """Resample each task to weight x its examples: whole copies, then a seeded sample for the fraction
    (weight 2.5 on 10 examples: every example twice and 5 of them a third time). Order is shuffled later."""
    if not weights:
        return dataset
    rng = random.Random(seed)
    tasks = list(dataset["task"])
    chosen: list[int] = []
    for task in dict.fromkeys(tasks):
        own = [i for i, t in enumerate(tasks) if t == task]
        weight = weights.get(task, 1.0)
        whole, fraction = int(weight), weight - int(weight)
        chosen += own * whole + sorted(rng.sample(own, round(len(own) * fraction)))
    return dataset.select(sorted(chosen))


def with_disease_ids(dataset: Any) -> Any:
    """Add `disease_id` (index in names.DISEASES; IGNORE_INDEX for examples about no disease)."""
    index = {d: i for i, d in enumerate(names.DISEASES)}
    return dataset.map(lambda d: {"disease_id": index.get(d, IGNORE_INDEX)}, input_columns="disease")


def layer_groups(model: Any, n_groups: int) -> list[list[Any]]:
    """Parameters in groups from the top of the network down: [final norm/head + top blocks, ..., embeddings].

    Works for any decoder whose blocks sit in one ModuleList of `num_hidden_layers` modules."""
    import torch

    n_layers = model.config.num_hidden_layers
    blocks = next((m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers), None)
    if blocks is None:
        raise ValueError(f"cannot find the {n_layers} decoder blocks of {type(model).__name__}")
    in_block = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    named = list(model.named_parameters())
    first_block_at = next(i for i, (_, p) in enumerate(named) if id(p) in in_block)
    bottom = [p for i, (_, p) in enumerate(named) if id(p) not in in_block and i < first_block_at]
    top = [p for i, (_, p) in enumerate(named) if id(p) not in in_block and i > first_block_at]
    n_chunks = max(1, min(n_groups - 1, n_layers))
    bounds = [round(n_layers * k / n_chunks) for k in range(n_chunks + 1)]
    chunks = [[p for b in range(lo, hi) for p in blocks[b].parameters()] for lo, hi in zip(bounds, bounds[1:])]
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


def training_arguments(p: TrainerParams, output_dir: Path, seed: int) -> TrainingArguments:
    for tracker, variable, value in (("mlflow", "MLFLOW_TRACKING_URI", "file:./mlruns"), ("wandb", "WANDB_MODE", "offline")):
        if tracker in p.report_to:
            os.environ.setdefault(variable, value)  # local store / offline mode: never a network service by default
    import torch

    # Under torchrun / accelerate launch without GPUs, DDP runs on CPU with the gloo backend (NCCL on GPUs,
    # the Trainer's default). transformers needs both settings to leave single-process mode on CPU.
    distributed_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    # transformers 5 always saves safetensors; the old names (evaluation_strategy, no_cuda, ...) are gone.
    return TrainingArguments(
        **({"use_cpu": True, "ddp_backend": "gloo"} if distributed_cpu else {}),
        output_dir=str(output_dir), seed=seed, data_seed=seed,
        num_train_epochs=p.num_train_epochs, per_device_train_batch_size=p.per_device_train_batch_size,
        per_device_eval_batch_size=p.per_device_eval_batch_size,
        gradient_accumulation_steps=p.gradient_accumulation_steps, learning_rate=p.learning_rate,
        warmup_steps=p.warmup_steps, weight_decay=p.weight_decay, lr_scheduler_type=p.lr_scheduler_type,
        eval_strategy="steps", eval_steps=p.eval_steps, save_strategy="steps", save_steps=p.save_steps,
        logging_strategy="steps", logging_steps=p.logging_steps, logging_first_step=True,
        save_total_limit=p.save_total_limit, load_best_model_at_end=p.load_best_model_at_end,
        metric_for_best_model=p.metric_for_best_model,
        greater_is_better=p.metric_for_best_model != "eval_loss",
        report_to=list(p.report_to) or "none", disable_tqdm=True, dataloader_num_workers=0,
        train_sampling_strategy="random", dataloader_pin_memory=False,
        remove_unused_columns=False,  # fit selects the columns the collator reads (disease_id is not a forward arg)
        use_cache=False,  # the default, and what packing needs: packed rows are detected only without a cache
    )


def reply_sequences(dataset: Any) -> list[list[int]]:
    """The distinct reply token sequences (the loss-bearing labels) of a tokenized dataset."""
    return [list(s) for s in sorted({tuple(t for t in labels if t != IGNORE_INDEX) for labels in dataset["labels"]})]


def accuracy_probe(tokenizer: Any, examples: list[dict], samples: int, seed: int, max_new_tokens: int = 64,
                   drafts: list[list[int]] | None = None) -> Callable[[Any], float] | None:
    """Generate replies for a fixed, seeded sample of validation diagnose examples; return the share
    whose parsed disease is right. Short generations suffice: the disease is named in the first sentences.
    With `drafts` (reply token sequences, e.g. the training replies) decoding drafts from them: same replies."""
    from medchat.drafting import ReplyDrafter
    from medchat.inference import ChatModel
    from medchat.scoring import parse_disease

    pool = [e for e in examples if e["task"] == "diagnose"]
    if not samples or not pool:
        return None
    chosen = random.Random(seed).sample(pool, min(samples, len(pool)))

    def probe(model: Any) -> float:
        chat = ChatModel(model, tokenizer, max_new_tokens=max_new_tokens)
        chat.drafter = ReplyDrafter(drafts) if drafts else None
        replies = chat.generate([e["user"] for e in chosen]).replies
        return round(sum(parse_disease(r) == e["disease"] for r, e in zip(replies, chosen)) / len(chosen), 4)

    return probe


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


class StepAlignedDVCLive(DVCLiveCallback):
    """transformers' DVCLiveCallback, with the optimizer step as the plots' x-axis. The library's callback
    advances dvclive's own counter once per log call, so with logging_steps 10 the evaluation at step
    450 was plotted at 46, and runs with different logging_steps could not be compared on one axis."""

    def on_log(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.live is not None:
            self.live.step = state.global_step
        super().on_log(args, state, control, **kwargs)


def make_live(plots_dir: Path) -> Any:
    from dvclive import Live

    # dvcyaml=False: dvc.yaml declares our metrics and plots; dvclive must not rewrite it.
    return Live(dir=str(plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)


def fit(model: Any, tokenizer: Any, train_set: Any, val_set: Any, p: TrainerParams, out_dir: Path,
        plots_dir: Path, seed: int, probe: Callable[[Any], float] | None = None,
        callbacks: list[TrainerCallback] = (), pack_capacity: int = 256, resume_dir: Path | None = None) -> dict:
    """Train, keep the best model (by metric_for_best_model), save it as safetensors with its tokenizer
    in `out_dir`, and return a small summary for metrics/<stage>.json. With `p.packing`, each batch's
    examples share rows of at most `pack_capacity` tokens (see medchat.packing); otherwise they are
    padded to the longest in the batch.

    With `resume_dir` (single process), checkpoints go there instead of into `out_dir`, so they outlive a
    killed run: the next run of the same training resumes from the newest complete one (optimizer,
    scheduler, RNG and data position restored by the Trainer) and ends with the same weights. The folder
    is removed when training succeeds. The dvclive plots of a resumed run start at its checkpoint."""
    import torch
    from transformers import set_seed

    set_seed(seed)
    columns = ["input_ids", "labels"]
    if p.aux_head_weight:
        # the head lives on the model so the optimizer and checkpoints include it; it is dropped before saving
        model.disease_head = torch.nn.Linear(model.config.hidden_size, len(names.DISEASES))
        train_set, val_set, columns = with_disease_ids(train_set), with_disease_ids(val_set), columns + ["disease_id"]
    train_set, val_set = train_set.select_columns(columns), val_set.select_columns(columns)
    if p.packing:
        collator = PackingCollator(tokenizer.pad_token_id, pack_capacity)
    else:
        collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX)
        if p.aux_head_weight:
            collator = DiseaseLabels(collator)
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        collator = LossPositionsOnly(collator)  # LM head only where the loss is taken
    main = is_main_process()
    resumable = resume_dir is not None and int(os.environ.get("WORLD_SIZE", "1")) == 1
    checkpoints, resume_from = out_dir / CHECKPOINTS, None
    if resumable:
        checkpoints = Path(resume_dir)
        resume_from = resumable_checkpoint(checkpoints, run_fingerprint(model, train_set, val_set, p, seed, pack_capacity))
        if resume_from is not None:
            print(f"training: resuming from {resume_from} (an earlier run of the same training was interrupted)")
    every = [*([StepAlignedDVCLive(live=make_live(plots_dir))] if main else []), MarkCompleteCheckpoints(), *callbacks]
    if p.early_stopping_patience:
        every.append(EarlyStoppingCallback(early_stopping_patience=p.early_stopping_patience))
    trainer = ChatTrainer(model=model, args=training_arguments(p, checkpoints, seed),
                          train_dataset=train_set, eval_dataset=val_set, data_collator=collator,
                          processing_class=tokenizer, callbacks=every, accuracy_probe=probe,
                          aux_head_weight=p.aux_head_weight)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    # The Trainer evaluates at the last step too, so the kept checkpoint's metrics are already in the
    # log history: no need to evaluate the same weights a second time.
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    kept = int(str(trainer.state.best_model_checkpoint).rsplit("-", 1)[-1]) if trainer.state.best_model_checkpoint else None
    final = next((h for h in evals if h["step"] == kept), evals[-1] if evals else None) or trainer.evaluate()
    if hasattr(model, "disease_head"):
        del model.disease_head  # a training aid: the saved model is a plain causal LM
    trainer.save_model(str(out_dir))  # from rank 0 only
    if main:
        # Trainer also pickles TrainingArguments; our model folders hold no pickles (params.yaml records the config).
        (out_dir / "training_args.bin").unlink(missing_ok=True)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the kept model is saved; checkpoints were for recovery
    else:
        trainer.accelerator.wait_for_everyone()  # training_outputs removes them once every rank is here
    # dvclive records all ~100 TrainingArguments here; params.yaml already holds ours, and a second
    # params file would only clutter the committed plots folder.
    (plots_dir / "params.yaml").unlink(missing_ok=True)
    history = trainer.state.log_history
    return {
        "train_loss": round(result.training_loss, 4),
        "eval_loss": round(final["eval_loss"], 4),
        "eval_disease_accuracy": final.get("eval_disease_accuracy"),
        "best_checkpoint_step": kept if kept is not None else trainer.state.global_step,
        "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0, 2),
        "runtime_s": round(result.metrics["train_runtime"], 1),
        "train_examples": len(train_set),
        "evaluations": sum("eval_loss" in h for h in history),
    }
