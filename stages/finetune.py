"""finetune: continue from models/train on the domain tasks plus diagnose replay, unfreezing gradually."""

from __future__ import annotations

import sys
from pathlib import Path

from medchat.artifacts import write_json
from medchat.errors import InputError
from medchat.params import load_params

TOKENIZED, BASE = Path("data/tokenized"), "models/train"
OUT_DIR, PLOTS_DIR, METRICS = "models/finetune", "plots/finetune", "metrics/finetune.json"
RESUME_DIR = Path("models/.checkpoints/finetune")  # outlives a killed run (not a DVC output); removed on success


def main() -> int:
    from datasets import concatenate_datasets, load_from_disk

    from medchat.model.loading import load_trained, quiet_progress
    from medchat.training.callbacks import GradualUnfreezing, layer_groups
    from medchat.training.checkpoints import is_main_process, training_outputs
    from medchat.training.lora import with_lora
    from medchat.training.probe import accuracy_probe
    from medchat.training.sampling import reply_sequences, weight_tasks
    from medchat.training.trainer import fit

    quiet_progress()
    try:
        params = load_params()
        p = params.finetune
        model, tokenizer = load_trained(BASE)
        model = with_lora(model, p.lora, params.seed)
        # in memory: transforms (filter, shuffle) must not write cache files into the DVC-tracked folder
        data = load_from_disk(str(TOKENIZED / "datasets"), keep_in_memory=True)
        probe = accuracy_probe(
            tokenizer,
            data["val"].select_columns(["user", "task", "disease"]).to_list(),
            p.accuracy_samples,
            params.seed,
            drafts=reply_sequences(data["train"]),
        )
    except InputError as exc:
        print(f"finetune: error: {exc}", file=sys.stderr)
        return 1
    model.train()
    domain = weight_tasks(
        data["train"].filter(lambda task: task in p.tasks, input_columns="task"), dict(p.task_weights), params.seed
    )
    diagnose = data["train"].filter(lambda task: task == "diagnose", input_columns="task")
    # replay_share of the final mix is diagnose, so the model keeps the skill it was trained for
    n_replay = min(len(diagnose), round(len(domain) * p.replay_share / (1 - p.replay_share)))
    replay = diagnose.shuffle(seed=params.seed).select(range(n_replay))
    train_set = concatenate_datasets([domain, replay]).shuffle(seed=params.seed)
    val_set = data["val"].filter(lambda task: task in p.tasks or task == "diagnose", input_columns="task")
    unfreezing = GradualUnfreezing(layer_groups(model, p.layer_groups))
    with training_outputs(OUT_DIR, PLOTS_DIR) as (out, plots):
        summary = fit(
            model,
            tokenizer,
            train_set,
            val_set,
            p,
            out,
            plots,
            params.seed,
            probe,
            [unfreezing],
            pack_capacity=params.train.max_length,
            resume_dir=RESUME_DIR,
        )
    summary.update(replay_examples=n_replay, domain_examples=len(domain), trainable_groups_per_epoch=unfreezing.history)
    if not is_main_process():
        return 0  # rank 0 of a torchrun job writes the metrics
    write_json(METRICS, summary)
    print(
        f"finetune: eval_loss {summary['eval_loss']}, val disease accuracy {summary['eval_disease_accuracy']}, "
        f"groups per epoch {unfreezing.history}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
