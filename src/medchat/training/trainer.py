"""Trainer assembly: arguments from params, packing or dynamic-padding collator, dvclive, early stopping,
the accuracy probe, checkpoints that survive a killed run. Imports torch and transformers."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import (
    DataCollatorForSeq2Seq,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from medchat.model.loading import forward_arguments
from medchat.model.tokenization import IGNORE_INDEX
from medchat.params import TrainerParams
from medchat.training.callbacks import StepAlignedDVCLive, make_live
from medchat.training.checkpoints import (
    CHECKPOINTS,
    MarkCompleteCheckpoints,
    is_main_process,
    resumable_checkpoint,
    run_fingerprint,
)
from medchat.training.lora import is_lora, save_trained
from medchat.training.packing import LossPositionsOnly, PackingCollator

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class ChatTrainer(Trainer):
    """A Trainer whose evaluation logs also carry validation disease accuracy from real generation.

    Adding it in `log` (rather than a callback's on_evaluate) puts it in the same log record as
    eval_loss, so dvclive writes both at the same step and best-model selection can use it."""

    def __init__(self, *args, accuracy_probe: Callable[[Any], float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.accuracy_probe = accuracy_probe
        self._accuracy: float | None = None

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """Loading the best checkpoint reports tied weights (GPT-2's lm_head is the token embedding, and
        safetensors stores it once) as missing keys; they are not missing, so tie them and stay quiet."""
        tied = set(getattr(self.model, "_tied_weights_keys", None) or ())
        if load_result.missing_keys and set(load_result.missing_keys) <= tied and not load_result.unexpected_keys:
            self.model.tie_weights()  # type: ignore[operator, union-attr]  # a PreTrainedModel method
            return
        super()._issue_warnings_after_load(load_result)

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


class _PackedPaddingWarning(logging.Filter):
    """Drops transformers' advice to pass an attention mask when a batch holds pad tokens. Packed rows carry
    padding and, by design, no mask: transformers builds the block-diagonal causal mask from the position
    ids alone (training/packing.py), and a mask would turn that off."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "passing in an `attention_mask`" not in record.getMessage()


def quiet_packed_padding() -> None:
    target = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _PackedPaddingWarning) for f in target.filters):
        target.addFilter(_PackedPaddingWarning())


def training_arguments(p: TrainerParams, output_dir: Path, seed: int) -> TrainingArguments:
    for tracker, variable, value in (
        ("mlflow", "MLFLOW_TRACKING_URI", "file:./mlruns"),
        ("wandb", "WANDB_MODE", "offline"),
    ):
        if tracker in p.report_to:
            os.environ.setdefault(variable, value)  # local store / offline mode: never a network service by default
    import torch

    # Under torchrun / accelerate launch without GPUs, DDP runs on CPU with the gloo backend (NCCL on GPUs,
    # the Trainer's default). transformers needs both settings to leave single-process mode on CPU.
    distributed_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    # transformers 5 always saves safetensors; the old names (evaluation_strategy, no_cuda, ...) are gone.
    distributed: dict[str, Any] = {"use_cpu": True, "ddp_backend": "gloo"} if distributed_cpu else {}
    return TrainingArguments(
        **distributed,
        output_dir=str(output_dir),
        seed=seed,
        data_seed=seed,
        num_train_epochs=p.num_train_epochs,
        per_device_train_batch_size=p.per_device_train_batch_size,
        per_device_eval_batch_size=p.per_device_eval_batch_size,
        gradient_accumulation_steps=p.gradient_accumulation_steps,
        learning_rate=p.learning_rate,
        warmup_steps=p.warmup_steps,
        weight_decay=p.weight_decay,
        lr_scheduler_type=p.lr_scheduler_type,
        eval_strategy="steps",
        eval_steps=p.eval_steps,
        save_strategy="steps",
        save_steps=p.save_steps,
        logging_strategy="steps",
        logging_steps=p.logging_steps,
        logging_first_step=True,
        save_total_limit=p.save_total_limit,
        load_best_model_at_end=p.load_best_model_at_end,
        metric_for_best_model=p.metric_for_best_model,
        greater_is_better=p.metric_for_best_model != "eval_loss",
        report_to=list(p.report_to) or "none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        train_sampling_strategy="random",
        dataloader_pin_memory=False,
        remove_unused_columns=False,  # fit selects the columns the collator reads
        use_cache=False,  # the default, and what packing needs: packed rows are detected only without a cache
    )


def fit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_set: Dataset,
    val_set: Dataset,
    p: TrainerParams,
    out_dir: Path,
    plots_dir: Path,
    seed: int,
    probe: Callable[[Any], float] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    pack_capacity: int = 256,
    resume_dir: Path | None = None,
) -> dict:
    """Train, keep the best model (by metric_for_best_model), save it as safetensors with its tokenizer
    in `out_dir`, and return a small summary for metrics/<stage>.json. With `p.packing`, each batch's
    examples share rows of at most `pack_capacity` tokens (see medchat.training.packing); otherwise they are
    padded to the longest in the batch.

    With `resume_dir` (single process), checkpoints go there instead of into `out_dir`, so they outlive a
    killed run: the next run of the same training resumes from the newest complete one (optimizer,
    scheduler, RNG and data position restored by the Trainer) and ends with the same weights. The folder
    is removed when training succeeds. The dvclive plots of a resumed run start at its checkpoint."""
    from transformers import set_seed

    set_seed(seed)
    columns = ["input_ids", "labels"]
    train_set, val_set = train_set.select_columns(columns), val_set.select_columns(columns)
    collator: Callable[[list[dict[str, Any]]], dict[str, Any]]
    if p.packing:
        collator = PackingCollator(tokenizer.pad_token_id, pack_capacity)
        quiet_packed_padding()
    else:
        collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX)
    if "logits_to_keep" in forward_arguments(model):  # a LoRA model's too
        collator = LossPositionsOnly(collator)  # LM head only where the loss is taken
    main = is_main_process()
    resumable = resume_dir is not None and int(os.environ.get("WORLD_SIZE", "1")) == 1
    checkpoints, resume_from = out_dir / CHECKPOINTS, None
    if resumable and resume_dir is not None:
        checkpoints = Path(resume_dir)
        resume_from = resumable_checkpoint(
            checkpoints, run_fingerprint(model, train_set, val_set, p, seed, pack_capacity)
        )
        if resume_from is not None:
            print(f"training: resuming from {resume_from} (an earlier run of the same training was interrupted)")
    every = [*([StepAlignedDVCLive(live=make_live(plots_dir))] if main else []), MarkCompleteCheckpoints(), *callbacks]
    if p.early_stopping_patience:
        every.append(EarlyStoppingCallback(early_stopping_patience=p.early_stopping_patience))
    trainer = ChatTrainer(
        model=model,
        args=training_arguments(p, checkpoints, seed),
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=every,
        accuracy_probe=probe,
    )
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    # The Trainer evaluates at the last step too, so the kept checkpoint's metrics are already in the
    # log history: no need to evaluate the same weights a second time.
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    kept = (
        int(str(trainer.state.best_model_checkpoint).rsplit("-", 1)[-1])
        if trainer.state.best_model_checkpoint
        else None
    )
    final = next((h for h in evals if h["step"] == kept), evals[-1] if evals else None) or trainer.evaluate()
    if is_lora(trainer.model):
        if main:
            save_trained(trainer.model, tokenizer, out_dir)  # the adapter, and the model with it merged
    else:
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
