"""Gradual unfreezing really trains what it unfreezes (and nothing it has not)."""

import torch
from conftest import params_section
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback

from medchat.model.tokenization import encode, train_bpe_tokenizer
from medchat.training.callbacks import GradualUnfreezing, layer_groups
from medchat.training.trainer import fit

CORPUS = [
    ("I have a fever and chills.", "It sounds most like Malaria."),
    ("My skin itches and peels.", "It sounds most like Fungal infection."),
    ("I have heartburn after meals.", "It sounds most like GERD."),
] * 8


def tiny_model(vocab: int, n_layer: int = 2) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_layer=n_layer, n_embd=32, n_head=2, n_positions=64))


def test_layer_groups_cover_every_parameter_once_top_first():
    model = tiny_model(300, n_layer=4)
    groups = layer_groups(model, 3)
    flat = [id(p) for g in groups for p in g]
    assert len(flat) == len(set(flat)) == len(list(model.parameters()))
    assert any(p is model.transformer.ln_f.weight for p in groups[0])
    assert any(p is model.transformer.h[3].attn.c_attn.weight for p in groups[0])
    assert any(p is model.transformer.h[0].attn.c_attn.weight for p in groups[1])
    assert any(p is model.transformer.wte.weight for p in groups[-1])
    assert len(layer_groups(model, 1)) == 1


class Snapshots(TrainerCallback):
    def __init__(self, tensor):
        self.tensor, self.seen = tensor, [tensor.detach().clone()]

    def on_epoch_end(self, args, state, control, **kwargs):
        self.seen.append(self.tensor.detach().clone())


def test_frozen_then_unfrozen_layer_changes(tmp_path):
    tokenizer = train_bpe_tokenizer([u + " " + r for u, r in CORPUS], vocab_size=300)
    rows = [encode(tokenizer, u, r, 64)[0] for u, r in CORPUS]
    data = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]})
    model = tiny_model(len(tokenizer))
    bottom_block = model.transformer.h[0].mlp.c_fc.weight
    top_block = model.transformer.h[1].mlp.c_fc.weight
    bottom, top = Snapshots(bottom_block), Snapshots(top_block)
    unfreezing = GradualUnfreezing(layer_groups(model, 3))  # [ln_f + h.1], [h.0], [embeddings]
    params = params_section(
        "train",
        num_train_epochs=3,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        warmup_steps=0,
        eval_steps=3,
        save_steps=3,
        logging_steps=1,
        early_stopping_patience=0,
        load_best_model_at_end=False,
        accuracy_samples=0,
    )
    fit(model, tokenizer, data, data, params, tmp_path / "out", tmp_path / "plots", 0, None, [unfreezing, bottom, top])
    assert unfreezing.history == [1, 2, 3]
    assert not torch.equal(top.seen[0], top.seen[1])  # epoch 1 trains the top group
    assert torch.equal(bottom.seen[0], bottom.seen[1])  # ... and leaves the bottom block untouched
    assert not torch.equal(bottom.seen[1], bottom.seen[2])  # unfrozen at epoch 2, the optimizer does update it
    assert (tmp_path / "out" / "model.safetensors").exists() and not (tmp_path / "out" / "checkpoints").exists()
    assert (tmp_path / "plots" / "plots" / "metrics" / "loss.tsv").exists()


def test_plots_are_indexed_by_optimizer_step(tmp_path):
    """The dvclive curves use the Trainer's global step, so evaluations sit where they happened, whatever
    logging_steps is (the library's callback counted log calls instead)."""
    import csv

    tokenizer = train_bpe_tokenizer([u + " " + r for u, r in CORPUS], vocab_size=300)
    rows = [encode(tokenizer, u, r, 64)[0] for u, r in CORPUS]
    data = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]})
    params = params_section(
        "train",
        num_train_epochs=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        warmup_steps=0,
        eval_steps=3,
        save_steps=1000,
        logging_steps=2,
        early_stopping_patience=0,
        load_best_model_at_end=False,
        accuracy_samples=0,
    )
    summary = fit(tiny_model(len(tokenizer)), tokenizer, data, data, params, tmp_path / "out", tmp_path / "plots", 0)
    metrics = tmp_path / "plots" / "plots" / "metrics"

    def steps(name):
        with open(metrics / name) as f:
            return [int(row["step"]) for row in csv.DictReader(f, delimiter="\t")]

    total = summary["steps"]
    assert total >= 6
    # every logging_steps-th step (and the first, which the Trainer also logs)
    assert [s for s in steps("loss.tsv") if s != 1] == list(range(2, total + 1, 2))
    assert steps("eval/loss.tsv")[: total // 3] == list(range(3, total + 1, 3))


def test_task_weights_resample_each_task():
    from medchat.training.sampling import weight_tasks

    data = Dataset.from_dict({"task": ["a"] * 10 + ["b"] * 4 + ["c"] * 6, "i": list(range(20))})
    weighted = weight_tasks(data, {"a": 2.5, "b": 0.5}, seed=0)
    counts = {t: list(weighted["task"]).count(t) for t in "abc"}
    assert counts == {"a": 25, "b": 2, "c": 6}
    a = [i for i, t in zip(weighted["i"], weighted["task"]) if t == "a"]
    assert all(a.count(i) in (2, 3) for i in range(10))  # every example twice, half of them a third time
    assert list(weight_tasks(data, {"a": 2.5, "b": 0.5}, seed=0)["i"]) == list(weighted["i"])  # seeded
    assert weight_tasks(data, {}, seed=0) is data
