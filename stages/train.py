"""train: a causal LM on the tokenized diagnose examples (by default), with dvclive curves."""

from __future__ import annotations

import sys
from pathlib import Path

from medchat.artifacts import write_json
from medchat.errors import InputError
from medchat.params import load_params

TOKENIZED = Path("data/tokenized")
BASE = "models/base"  # the pretrained weights (the base stage; unused for scratch)
OUT_DIR, PLOTS_DIR, METRICS = "models/train", "plots/train", "metrics/train.json"
RESUME_DIR = Path("models/.checkpoints/train")  # outlives a killed run (not a DVC output); removed on success


def main() -> int:
    from datasets import load_from_disk
    from transformers import set_seed

    from medchat.model.loading import build_model, count_parameters, quiet_progress
    from medchat.model.tokenization import load_domain_tokens, load_saved_tokenizer
    from medchat.training.checkpoints import is_main_process, training_outputs
    from medchat.training.lora import with_lora
    from medchat.training.probe import accuracy_probe
    from medchat.training.sampling import reply_sequences, weight_tasks
    from medchat.training.trainer import fit

    quiet_progress()
    try:
        params = load_params()
        p = params.train
        tokenizer = load_saved_tokenizer(TOKENIZED / "tokenizer")
        # in memory: transforms (filter, shuffle) must not write cache files into the DVC-tracked folder
        data = load_from_disk(str(TOKENIZED / "datasets"), keep_in_memory=True)
        set_seed(params.seed)  # the scratch model's initial weights come from this seed
        model = build_model(params.model, tokenizer, p.dropout, load_domain_tokens(TOKENIZED / "tokenizer"), BASE)
        model = with_lora(model, p.lora, params.seed)
        probe = accuracy_probe(
            tokenizer,
            data["val"].select_columns(["user", "task", "disease"]).to_list(),
            p.accuracy_samples,
            params.seed,
            drafts=reply_sequences(data["train"]),
        )
    except InputError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 1
    train_set = weight_tasks(
        data["train"].filter(lambda task: task in p.tasks, input_columns="task"), dict(p.task_weights), params.seed
    )
    val_set = data["val"].filter(lambda task: task in p.tasks, input_columns="task")
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
            pack_capacity=params.train.max_length,
            resume_dir=RESUME_DIR,
        )
    summary["parameters"] = count_parameters(model)
    if not is_main_process():
        return 0  # rank 0 of a torchrun job writes the metrics
    write_json(METRICS, summary)
    print(
        f"train: eval_loss {summary['eval_loss']}, val disease accuracy {summary['eval_disease_accuracy']}, "
        f"{summary['steps']} steps in {summary['runtime_s']}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
