"""LoRA (peft): only the adapters train, the base weights stay bit for bit, and the merged model that ships
computes what base + adapter compute."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import params_section
from datasets import Dataset
from test_training import CORPUS, tiny_model
from transformers import TrainerCallback

from medchat.errors import InputError
from medchat.model.loading import load_trained
from medchat.model.tokenization import encode, train_bpe_tokenizer
from medchat.training.callbacks import GradualUnfreezing, layer_groups
from medchat.training.lora import ADAPTER_DIR, is_lora, with_lora
from medchat.training.trainer import fit

peft = pytest.importorskip("peft", reason="LoRA needs peft (pip install 'medchat[pretrained]')")


def lora_params(**changes):
    lora = dataclasses.replace(params_section("train").lora, r=4, alpha=8, dropout=0.0, target_modules=["c_attn"])
    return dataclasses.replace(lora, **changes)


def training_params(**changes):
    return params_section(
        "train",
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=5e-2,
        warmup_steps=0,
        eval_steps=3,
        save_steps=3,
        logging_steps=1,
        early_stopping_patience=0,
        load_best_model_at_end=False,
        accuracy_samples=0,
        lora=lora_params(),
        **changes,
    )


class BaseWeightsAtTheEnd(TrainerCallback):
    """Copies every parameter when training ends, before the stage merges the adapters."""

    def __init__(self, model):
        self.model, self.at_end = model, {}

    def on_train_end(self, args, state, control, **kwargs):
        self.at_end = {n: p.detach().clone() for n, p in self.model.named_parameters()}


@pytest.fixture()
def corpus():
    tokenizer = train_bpe_tokenizer([u + " " + r for u, r in CORPUS], vocab_size=300)
    rows = [encode(tokenizer, u, r, 64)[0] for u, r in CORPUS]
    return tokenizer, Dataset.from_dict(
        {"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]}
    )


def test_only_adapters_train_and_the_merged_model_equals_base_plus_adapter(tmp_path, corpus):
    from peft import PeftModel

    tokenizer, data = corpus
    base = tiny_model(len(tokenizer))
    base.save_pretrained(tmp_path / "initial")
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = with_lora(base, lora_params(), seed=0)
    assert is_lora(model) and {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if "lora_" in n
    }
    watch = BaseWeightsAtTheEnd(model)
    fit(model, tokenizer, data, data, training_params(), tmp_path / "out", tmp_path / "plots", 0, None, [watch])
    frozen = {
        n.replace("base_model.model.", "").replace(".base_layer", ""): p
        for n, p in watch.at_end.items()
        if "lora_" not in n
    }
    assert frozen.keys() == before.keys()
    assert all(torch.equal(frozen[n], before[n]) for n in before)  # bit for bit
    assert any(not torch.all(p == 0) for n, p in watch.at_end.items() if "lora_B" in n)  # B starts at 0: it trained

    out = tmp_path / "out"
    assert (out / ADAPTER_DIR / "adapter_model.safetensors").exists() and (out / "model.safetensors").exists()
    merged, _ = load_trained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())  # a plain causal LM ships
    initial = type(base).from_pretrained(tmp_path / "initial").eval()
    adapted = PeftModel.from_pretrained(type(base).from_pretrained(tmp_path / "initial"), out / ADAPTER_DIR).eval()
    ids = torch.tensor([data[0]["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted(input_ids=ids).logits, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(merged(input_ids=ids).logits, initial(input_ids=ids).logits, atol=1e-4)


def test_gradual_unfreezing_groups_hold_the_adapters_top_first(corpus):
    tokenizer, _ = corpus
    model = with_lora(tiny_model(len(tokenizer), n_layer=4), lora_params(layers=2), seed=0)
    groups = layer_groups(model, 5)  # [head + h.3], [h.2], [h.1], [h.0], [embeddings]
    names = {id(p): n for n, p in model.named_parameters()}
    flat = [names[id(p)] for g in groups for p in g]
    assert flat and all("lora_" in n for n in flat) and len(flat) == len(set(flat))
    assert all(".h.3." in names[id(p)] for p in groups[0]) and all(".h.2." in names[id(p)] for p in groups[1])
    assert groups[2:] == [[], [], []]  # no adapters below the top two blocks, none on the embeddings
    unfreezing = GradualUnfreezing(groups)

    class State:
        epoch = 0

    unfreezing.on_epoch_begin(None, State(), None)
    assert all(p.requires_grad for p in groups[0]) and not any(p.requires_grad for p in groups[1])
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_lora_off_is_the_model_itself_and_a_wrong_target_is_one_clear_error(corpus):
    tokenizer, _ = corpus
    model = tiny_model(len(tokenizer))
    assert with_lora(model, lora_params(r=0), seed=0) is model
    with pytest.raises(InputError) as raised:
        with_lora(model, lora_params(target_modules=["q_proj"]), seed=0)
    assert raised.value.key == "lora.target_modules"


def test_a_lora_model_trains_with_logits_only_where_the_loss_is(corpus):
    """peft's forward names few arguments and passes the rest on: the LM head must still skip prompt positions
    under LoRA, and the loss must be the one computed over every position."""
    from medchat.model.loading import forward_arguments
    from medchat.training.packing import LossPositionsOnly, PackingCollator

    tokenizer, data = corpus
    model = with_lora(tiny_model(len(tokenizer)), lora_params(), seed=0).eval()  # no dropout: same loss twice
    assert {"logits_to_keep", "labels"} <= forward_arguments(model)
    features = [data[i] for i in range(4)]
    batch = PackingCollator(tokenizer.pad_token_id, 128)(features)
    reply_only = LossPositionsOnly(PackingCollator(tokenizer.pad_token_id, 128))(features)
    with torch.no_grad():
        everywhere, kept = model(**batch), model(**reply_only)
    assert kept.logits.shape[0] == int(reply_only["logits_to_keep"].sum()) < batch["input_ids"].numel()
    assert torch.allclose(kept.loss, everywhere.loss, atol=1e-5)
