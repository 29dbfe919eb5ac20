"""Low-rank adapters (peft LoRA) instead of full fine-tuning, and how a trained model is saved either way.

With train.lora.r > 0 (or finetune.lora.r) the model's weights are frozen and each target linear layer of the
top `layers` decoder blocks gets a trainable low-rank update. The stage saves the adapter (models/<stage>/adapter/)
and, for shipping, the model with the update merged into its weights: an ordinary causal LM folder, which the
next stage, evaluate and the chatbot load like any other. Gradual unfreezing works on the adapters: its layer
groups hold only parameters that train (medchat.training.callbacks.layer_groups).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medchat.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from medchat.params import LoraParams

ADAPTER_DIR = "adapter"


def with_lora(model: PreTrainedModel, lora: LoraParams, seed: int) -> Any:
    """`model` wrapped with fresh adapters (seeded), or `model` itself when lora.r is 0."""
    if not lora.r:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise InputError(
            "LoRA needs peft", key="lora.r", fix="pip install 'medchat[pretrained]' or set lora.r: 0"
        ) from None
    from transformers import set_seed

    n_layers = model.config.num_hidden_layers
    layers = list(range(n_layers - lora.layers, n_layers)) if lora.layers and lora.layers < n_layers else None
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )
    set_seed(seed)  # the adapters' initial weights
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # e.g. no module of the model is named like a target
        raise InputError(
            f"cannot add LoRA adapters: {str(exc).splitlines()[0]}",
            key="lora.target_modules",
            fix="name linear layers of this model (q_proj, v_proj for Llama-style; c_attn for GPT-2)",
        ) from None


def is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config")


def save_trained(model: Any, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """A plain model as it is; a LoRA model as its adapter (out_dir/adapter) and, merged, as the model itself."""
    if is_lora(model):
        model.save_pretrained(str(out_dir / ADAPTER_DIR))
        model = model.merge_and_unload()
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
