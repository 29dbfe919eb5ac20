"""Building the scratch model, loading a local pretrained checkpoint offline, and refusing bad model folders."""

import pytest
from conftest import NO_NETWORK, params_section

from medchat.errors import InputError
from medchat.model.loading import build_model, load_trained
from medchat.model.tokenization import load_pretrained_tokenizer, train_bpe_tokenizer

CORPUS = ["I have a fever and chills.", "It sounds most like Malaria.", "What is GERD?", "Keep skin dry."] * 10


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(CORPUS, vocab_size=300)


def test_scratch_model_matches_params_and_tokenizer(tokenizer):
    model = build_model(params_section("model", n_layer=1, n_embd=32, n_head=2, n_positions=64), tokenizer, dropout=0.2)
    assert model.config.n_layer == 1 and model.config.n_embd == 32 and model.config.resid_pdrop == 0.2
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id != model.config.eos_token_id


def test_scratch_activation_and_its_fused_twin(tokenizer):
    """The scratch model's default activation is gelu_pytorch_tanh: GPT-2's gelu_new as one fused kernel
    (same values and gradients to float rounding), not the exact erf gelu; gelu_new stays selectable."""
    import torch
    from transformers.activations import ACT2FN

    fused = build_model(params_section("model", n_layer=1, n_embd=32, n_head=2, n_positions=64), tokenizer, dropout=0.0)
    assert fused.config.activation_function == "gelu_pytorch_tanh"
    model = build_model(
        params_section("model", n_layer=1, n_embd=32, n_head=2, n_positions=64, activation="gelu_new"),
        tokenizer,
        dropout=0.0,
    )
    assert model.config.activation_function == "gelu_new"
    x = torch.linspace(-8, 8, 2001, dtype=torch.float64, requires_grad=True)
    twin, reference = ACT2FN["gelu_pytorch_tanh"](x), ACT2FN["gelu_new"](x)
    torch.testing.assert_close(twin, reference, rtol=0, atol=1e-12)
    (grad_twin,) = torch.autograd.grad(twin.sum(), x)
    (grad_reference,) = torch.autograd.grad(reference.sum(), x)
    torch.testing.assert_close(grad_twin, grad_reference, rtol=0, atol=1e-12)
    assert not torch.allclose(reference, ACT2FN["gelu"](x), atol=1e-6)


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory):
    """A 'pretrained' checkpoint saved locally the way a Hub model is: EOS but no pad token."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    base = train_bpe_tokenizer(CORPUS, vocab_size=300)
    core = base.backend_tokenizer
    hub_like = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    path = tmp_path_factory.mktemp("pretrained")
    vocab = len(hub_like)
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_layer=1, n_embd=32, n_head=2, n_positions=64)).save_pretrained(path)
    hub_like.save_pretrained(path)
    return path


def test_pretrained_local_checkpoint_gets_a_pad_token(pretrained_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = load_pretrained_tokenizer(params_section("model", name=str(pretrained_dir)))
    assert tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    model = build_model(params_section("model", name=str(pretrained_dir)), tokenizer, dropout=0.0)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_unknown_model_name_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"model.name: local model folder .* not found"):
        load_pretrained_tokenizer(params_section("model", name=str(tmp_path / "no-such-model")))


def test_load_trained_refuses_bad_folders(tmp_path, pretrained_dir):
    with pytest.raises(InputError, match="model folder not found"):
        load_trained(tmp_path / "missing")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text((pretrained_dir / "config.json").read_text())
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"not loaded: pickle files are never read")
    with pytest.raises(InputError, match="model.safetensors is missing"):
        load_trained(tmp_path / "pickled")
    model, tokenizer = load_trained(pretrained_dir)
    assert not model.training


def test_uncached_hub_id_fails_at_once_without_the_offline_variable(tmp_path):
    """No HF_HUB_OFFLINE and the network unreachable: an id missing from the cache fails in seconds (not after
    the Hub client's ~23 s of retries) with what to do, because loading never asks the network by default."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(NO_NETWORK, HF_HOME=str(tmp_path / "hf-home"))
    code = (
        "import dataclasses\nfrom medchat.params import load_params\n"
        "from medchat.model.tokenization import load_pretrained_tokenizer\n"
        "load_pretrained_tokenizer(dataclasses.replace(load_params().model, name='medchat-tests/not-cached'))"
    )
    # the timeout only keeps a hang from stalling the suite; the Hub client's retries are what this rules out
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, result.stderr[-500:]
    assert "model.name: cannot load a tokenizer for 'medchat-tests/not-cached'" in result.stderr
    assert "hf download medchat-tests/not-cached" in result.stderr and "allow_download" in result.stderr


def test_remote_code_only_when_asked_and_with_a_warning(pretrained_dir, capsys):
    from medchat.model.tokenization import hub_options

    assert hub_options(params_section("model", name="x")) == {"local_files_only": True, "trust_remote_code": False}
    assert capsys.readouterr().err == ""
    options = hub_options(params_section("model", name="x", trust_remote_code=True, allow_download=True))
    assert options == {"local_files_only": False, "trust_remote_code": True}
    assert "warning: model.trust_remote_code is on" in capsys.readouterr().err


def test_pickle_only_checkpoint_is_refused(tmp_path, pretrained_dir, monkeypatch):
    """A pretrained folder whose weights exist only as a pickle (pytorch_model.bin) is never unpickled."""
    import shutil

    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pickled = tmp_path / "pickled"
    shutil.copytree(pretrained_dir, pickled)
    from safetensors.torch import load_file

    torch.save(load_file(str(pickled / "model.safetensors")), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    params = params_section("model", name=str(pickled))
    tokenizer = load_pretrained_tokenizer(params)
    with pytest.raises(InputError, match="model.name: cannot load model"):
        build_model(params, tokenizer, dropout=0.0)
