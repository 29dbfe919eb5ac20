"""The pretrained path end to end, offline: tokenize and train from a local checkpoint saved by the test."""

import json

import pytest
from conftest import run_stage, set_params

pytestmark = pytest.mark.slow


def test_tokenize_and_train_from_a_local_checkpoint(workdir, tmp_path, monkeypatch):
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from medchat.model.tokenization import train_bpe_tokenizer

    # a Hub-like checkpoint: GPT-2 architecture, an EOS token and no pad token
    base = train_bpe_tokenizer(["It sounds most like Malaria.", "I have a fever and chills."] * 20, vocab_size=400)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    checkpoint = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=32, n_head=2, n_positions=512)
    ).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)

    set_params(
        workdir,
        {
            "model": {"name": str(checkpoint)},
            "tokenize": {"add_domain_tokens": True},
            "augment": {"per_disease": {"diagnose": 4, "describe": 1, "precautions": 1}},
            "train": {
                "num_train_epochs": 1,
                "per_device_train_batch_size": 32,
                "eval_steps": 4,
                "save_steps": 4,
                "warmup_steps": 0,
                "accuracy_samples": 4,
            },
        },
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for stage in ("clean", "augment", "split", "index", "base", "tokenize_data", "train"):
        run_stage(stage, workdir)
    source = json.loads((workdir / "models" / "base" / "source.json").read_text())
    assert source["kind"] == "folder" and set(source["sha256"]) == {"model.safetensors"}
    saved = json.loads((workdir / "data" / "tokenized" / "tokenizer" / "tokenizer_config.json").read_text())
    assert saved["pad_token"] == "<|pad|>" and saved["eos_token"] == "<|endoftext|>"  # a dedicated pad was set
    config = json.loads((workdir / "models" / "train" / "config.json").read_text())
    assert config["vocab_size"] >= len(tokenizer) and config["pad_token_id"] != config["eos_token_id"]
    assert json.loads((workdir / "metrics" / "train.json").read_text())["steps"] > 0
    domain = json.loads((workdir / "metrics" / "tokenize.json").read_text())["domain_tokens"]
    assert domain["added"] > 100 and domain["tokens_per_term_before"] > 2 and domain["tokens_per_term_after"] == 1.0
    assert config["vocab_size"] >= len(tokenizer) + domain["added"]
