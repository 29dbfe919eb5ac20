"""Building the scratch model, loading a local pretrained checkpoint offline, and refusing bad model folders."""

import pytest

from medchat.errors import InputError
from medchat.modeling import build_model, load_trained
from medchat.params import ModelParams
from medchat.tokenization import load_pretrained_tokenizer, train_bpe_tokenizer

CORPUS = ["I have a fever and chills.", "It sounds most like Malaria.", "What is GERD?", "Keep skin dry."] * 10


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(CORPUS, vocab_size=300)


def test_scratch_model_matches_params_and_tokenizer(tokenizer):
    model = build_model(ModelParams(n_layer=1, n_embd=32, n_head=2, n_positions=64), tokenizer, dropout=0.2)
    assert model.config.n_layer == 1 and model.config.n_embd == 32 and model.config.resid_pdrop == 0.2
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id != model.config.eos_token_id


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
    tokenizer = load_pretrained_tokenizer(str(pretrained_dir))
    assert tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    model = build_model(ModelParams(name=str(pretrained_dir)), tokenizer, dropout=0.0)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_unknown_model_name_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"model.name: local model folder .* not found"):
        load_pretrained_tokenizer(str(tmp_path / "no-such-model"))


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
