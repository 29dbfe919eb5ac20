"""Build the scratch GPT-2 or load a pretrained causal LM, matched to our tokenizer. Imports torch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medchat.errors import InputError
from medchat.model.tokenization import SCRATCH, cannot_load, hub_options
from medchat.params import ModelParams

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DROPOUT_KEYS = ("resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout", "attention_dropout", "hidden_dropout")


def build_model(
    params: ModelParams,
    tokenizer: PreTrainedTokenizerBase,
    dropout: float,
    domain_tokens: dict[int, list[int]] | None = None,
    weights: str | Path | None = None,
    gguf_file: str | None = None,
) -> Any:
    """A causal LM whose embedding table covers the tokenizer, with pad/eos ids taken from it. Domain
    tokens (tokenization.add_domain_tokens) start at the mean of the sub-token embeddings they replace.

    A pretrained model loads from `weights` (default `model.name`): a folder of safetensors (models/base,
    which the base stage writes), or with `gguf_file` a GGUF file in that folder, dequantized to fp32."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    if params.name == SCRATCH:
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=params.n_positions,
            n_embd=params.n_embd,
            n_layer=params.n_layer,
            n_head=params.n_head,
            activation_function=params.activation,
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return causal_lm_loss(GPT2LMHeadModel(config))
    options: dict[str, Any] = dict(hub_options(params))
    try:
        from transformers import AutoConfig

        source = str(weights or params.name)
        # safetensors only: a checkpoint with nothing but pickled weights is refused, not unpickled
        if gguf_file:
            options["gguf_file"] = gguf_file
        config = AutoConfig.from_pretrained(source, **options)
        overrides = {k: dropout for k in DROPOUT_KEYS if isinstance(getattr(config, k, None), float)}
        # GGUF weights are dequantized to fp32 (trainable); a folder must hold safetensors, never pickles
        options.update({"dtype": torch.float32} if gguf_file else {"use_safetensors": True})
        model = AutoModelForCausalLM.from_pretrained(source, **options, **overrides)
    except (OSError, ValueError) as exc:
        raise cannot_load("model", params, exc) from None
    if gguf_file:
        model = unquantized(model)  # type: ignore[assignment]  # a causal LM either way
    if model.get_input_embeddings().num_embeddings < len(tokenizer):  # type: ignore[operator]  # an nn.Embedding
        # New rows (our pad token) start at the mean of the existing embeddings (transformers' mean_resizing
        # samples around it instead, and says so on every run)
        old = model.get_input_embeddings().weight.shape[0]  # type: ignore[index]
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        init_domain_embeddings(model, {new: list(range(old)) for new in range(old, len(tokenizer))})
    if domain_tokens:
        init_domain_embeddings(model, domain_tokens)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return causal_lm_loss(model)


def unquantized(model: PreTrainedModel) -> PreTrainedModel:
    """A GGUF-loaded model as a plain one. Without a GGUF matmul kernel (CPUs) transformers dequantizes every
    weight at load, yet keeps the GGUF quantizer attached, which forbids saving; the same weights in a model
    built from the config have no quantizer. load_state_dict (strict) fails loudly if any weight is still packed."""
    import copy

    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = copy.deepcopy(model.generation_config)
    return plain


def causal_lm_loss(model: PreTrainedModel) -> PreTrainedModel:
    """Name the loss of a model loaded as a causal LM. transformers picks it from the class name, and a
    name without "ForCausalLM" in it (GPT2LMHeadModel) gets none, then a warning at the first step that it
    falls back to the causal-LM loss: the same loss, now chosen here, without the warning."""
    model.loss_type = "ForCausalLM"
    return model


def init_domain_embeddings(model: PreTrainedModel, domain_tokens: dict[int, list[int]]) -> None:
    """Row `new` of the input (and an untied output) embedding := mean of the rows of its former sub-tokens,
    so a new term starts where the model's reading of its pieces was, not at a random point."""
    import torch

    # (the stubs read these nn.Module attributes through Module.__getattr__, hence Tensor | Module)
    tables: list[torch.Tensor] = [model.get_input_embeddings().weight]  # type: ignore[list-item]
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() != tables[0].data_ptr():
        tables.append(output.weight)
    with torch.no_grad():
        for table in tables:
            for new, old in domain_tokens.items():
                table[new] = table[old].mean(dim=0)


def load_trained(model_dir: str | Path) -> tuple[Any, Any]:
    """A model saved by train or finetune (safetensors only) and its tokenizer, ready for inference."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("model folder not found", file=str(model_dir), fix="run `dvc repro` or pass --model")
    has_weights = (model_dir / "model.safetensors").exists() or any(model_dir.glob("model-*.safetensors"))
    for required, present in (
        ("config.json", (model_dir / "config.json").exists()),
        ("model.safetensors", has_weights),
        ("tokenizer.json", (model_dir / "tokenizer.json").exists()),
    ):
        if not present:
            raise InputError(
                f"not a trained model folder: {required} is missing",
                file=str(model_dir),
                fix="point --model at models/train, models/finetune or models/chatbot",
            )
    try:
        # our own folders: never code from them, never the network
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            str(model_dir), use_safetensors=True, local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError, SafetensorError) as exc:  # SafetensorError: a truncated or corrupted weights file
        raise InputError(
            f"cannot load the model: {str(exc).splitlines()[0]}",
            file=str(model_dir),
            fix="re-create it with dvc repro (or dvc checkout / dvc pull)",
        ) from None
    model.eval()
    return causal_lm_loss(model), tokenizer


def forward_arguments(model: Any) -> set[str]:
    """Names a causal LM's forward accepts. A peft model's forward names few and passes the rest on to the
    model it wraps, so that model's are the ones that count (logits_to_keep, the cache)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def count_parameters(model: PreTrainedModel) -> int:
    return sum(p.numel() for p in model.parameters())


def quiet_progress() -> None:
    """No progress bars in stage logs (dvc repro output stays readable); Trainer still prints its logs."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
