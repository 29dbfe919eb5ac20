"""Tokenizers and the dialogue token format. Imports transformers' tokenizer classes only (never torch).

Format: the tokenizer's chat template when it has one; otherwise DialoGPT's, where each turn ends
with the EOS token. Padding always uses a dedicated pad token: if pad were EOS, the collator would
mask every EOS label and the model would never learn to stop.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medchat.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from medchat.data.lexicon import Lexicon
    from medchat.params import ModelParams

SCRATCH = "scratch"
EOS, PAD = "<|endoftext|>", "<|pad|>"
IGNORE_INDEX = -100  # label value the loss skips


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, seed_texts: Iterable[str] = ()) -> Any:
    """A byte-level BPE tokenizer (GPT-2 style) trained on our corpus: small vocabulary, no unknown tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator([*texts, *seed_texts], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=EOS, bos_token=EOS, pad_token=PAD, model_max_length=1_000_000
    )


DOMAIN_TOKENS_FILE = "domain_tokens.json"


def domain_terms(lexicon: Lexicon) -> list[str]:
    """Symptom labels and disease names: the terms worth a token of their own."""
    from medchat.data import names

    return sorted({*lexicon.labels.values(), *names.DISEASES})


def tokens_per_term(tokenizer: PreTrainedTokenizerBase, terms: list[str]) -> float:
    """Mean tokens per term as it appears mid-sentence (after a space)."""
    return round(sum(len(tokenizer(f" {t}", add_special_tokens=False)["input_ids"]) for t in terms) / len(terms), 3)


def add_domain_tokens(tokenizer: PreTrainedTokenizerBase, terms: list[str]) -> dict[str, list[int]]:
    """Give every term that takes several tokens one token of its own (" term", matched mid-sentence);
    returns term -> its former sub-token ids, from which `init_domain_embeddings` starts the new rows."""
    from tokenizers import AddedToken

    before = {t: tokenizer(f" {t}", add_special_tokens=False)["input_ids"] for t in terms}
    split = [t for t in terms if len(before[t]) > 1]
    tokenizer.add_tokens([AddedToken(f" {t}", normalized=False) for t in split])
    return {t: before[t] for t in split}


def save_domain_tokens(tokenizer: PreTrainedTokenizerBase, added: dict[str, list[int]], folder: str | Path) -> None:
    import json

    mapping = {str(tokenizer.convert_tokens_to_ids(f" {t}")): ids for t, ids in added.items()}
    (Path(folder) / DOMAIN_TOKENS_FILE).write_text(json.dumps(mapping, indent=1) + "\n")


def load_domain_tokens(folder: str | Path) -> dict[int, list[int]]:
    """New token id -> the sub-token ids it replaced ({} when the tokenizer has no domain tokens)."""
    import json

    path = Path(folder) / DOMAIN_TOKENS_FILE
    return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def hub_options(params: ModelParams) -> dict[str, bool]:
    """from_pretrained keywords for `model.name` (a ModelParams): no network unless model.allow_download
    (so an uncached Hub id fails at once instead of after ~23 s of retries), and no code from the model
    folder unless model.trust_remote_code, which warns every time it is used."""
    if params.trust_remote_code:
        print(
            f"medchat: warning: model.trust_remote_code is on: Python code shipped with {params.name!r} "
            "will run with your permissions",
            file=sys.stderr,
        )
    return {"local_files_only": not params.allow_download, "trust_remote_code": params.trust_remote_code}


def cannot_load(what: str, params: ModelParams, exc: Exception) -> InputError:
    fix = (
        (
            'use "scratch" or a local model folder; a Hub id must be in the local Hugging Face cache '
            f"(download it once: hf download {params.name}) or needs model.allow_download: true "
            "on a machine with network"
        )
        if not params.allow_download
        else "check the id and the network"
    )
    return InputError(f"cannot load {what} {params.name!r}: {str(exc).splitlines()[0]}", key="model.name", fix=fix)


def load_pretrained_tokenizer(
    params: ModelParams, folder: str | Path | None = None, gguf_file: str | None = None
) -> Any:
    """The tokenizer of `model.name` (Hub id or local path; or `folder`, with `gguf_file` a GGUF file in it),
    given a dedicated pad token if it lacks one."""
    from transformers import AutoTokenizer

    name = str(folder or params.name)
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().is_dir():
        raise InputError(
            f"local model folder {name!r} not found",
            key="model.name",
            fix='use "scratch", an existing folder, or a Hub id',
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name, **hub_options(params), **({"gguf_file": gguf_file} if gguf_file else {})
        )
    except (OSError, ValueError) as exc:
        raise cannot_load("a tokenizer for", params, exc) from None
    if tokenizer.eos_token is None:
        raise InputError(f"tokenizer of {name!r} has no EOS token", key="model.name")
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD})
    return tokenizer


def prompt_ids(tokenizer: PreTrainedTokenizerBase, user: str) -> list[int]:
    """Token ids of the user turn, ending where the assistant's reply begins."""
    if tokenizer.chat_template:
        return list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": user}], tokenize=True, add_generation_prompt=True, return_dict=False
            )
        )
    return tokenizer(user, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def reply_ids(tokenizer: PreTrainedTokenizerBase, user: str, reply: str) -> list[int]:
    """Token ids of the assistant's reply, including its end-of-turn token(s)."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        full = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        prompt = prompt_ids(tokenizer, user)
        if full[: len(prompt)] != prompt:
            raise InputError(
                "the chat template does not extend the prompt with the reply",
                key="model.name",
                fix="use a model whose chat template renders turns incrementally",
            )
        return full[len(prompt) :]
    return tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def encode(
    tokenizer: PreTrainedTokenizerBase, user: str, reply: str, max_length: int
) -> tuple[dict[str, list[int]], bool]:
    """input_ids and labels (the user turn masked), truncated to max_length; and whether it was truncated."""
    return with_labels(prompt_ids(tokenizer, user), reply_ids(tokenizer, user, reply), max_length)


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(prompt_ids, reply_ids) of each (user, reply) pair, the same ids as one call per text would give.
    Without a chat template the texts go through the tokenizer in two batched calls (ten times faster
    than one call per text on our 5,000 examples)."""
    if tokenizer.chat_template or not pairs:
        return [(prompt_ids(tokenizer, user), reply_ids(tokenizer, user, reply)) for user, reply in pairs]
    users = tokenizer([user for user, _ in pairs], add_special_tokens=False)["input_ids"]
    replies = tokenizer([reply for _, reply in pairs], add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id]
    return [(user + eos, reply + eos) for user, reply in zip(users, replies)]


def with_labels(prompt: list[int], answer: list[int], max_length: int) -> tuple[dict[str, list[int]], bool]:
    """encode's result from the prompt's and the reply's ids."""
    ids = (prompt + answer)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + answer)[:max_length]
    return {"input_ids": ids, "labels": labels}, len(prompt) + len(answer) > max_length


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    tokenizer.save_pretrained(str(path))


def load_saved_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise InputError("tokenizer folder not found", file=str(path), fix="run `dvc repro tokenize` first")
    return AutoTokenizer.from_pretrained(str(path))


def encode_rows(tokenizer: PreTrainedTokenizerBase, rows: list[dict], max_length: int) -> tuple[dict[str, list], dict]:
    """Columns for a datasets.Dataset (token ids plus the fields train/evaluate filter on) and length stats."""
    columns: dict[str, list] = {k: [] for k in ("input_ids", "labels", "id", "task", "disease", "partial", "user")}
    lengths, truncated, dropped = [], 0, 0
    for row, (prompt, answer) in zip(rows, encode_pairs(tokenizer, [(row["user"], row["reply"]) for row in rows])):
        encoded, cut = with_labels(prompt, answer, max_length)
        if all(label == IGNORE_INDEX for label in encoded["labels"]):
            dropped += 1  # the prompt alone fills max_length: nothing left to learn from
            continue
        truncated += cut
        lengths.append(len(prompt) + len(answer))
        for key in ("input_ids", "labels"):
            columns[key].append(encoded[key])
        for key in ("id", "task", "disease", "user"):  # user: the prompt as built (the accuracy probe reuses it)
            columns[key].append(row[key])
        columns["partial"].append(bool(row.get("partial", False)))
    ordered = sorted(lengths)
    stats = {
        "examples": len(lengths),
        "tokens_mean": round(sum(lengths) / len(lengths), 1) if lengths else 0,
        "tokens_p95": ordered[max(0, -(-95 * len(ordered) // 100) - 1)] if ordered else 0,
        "tokens_max": ordered[-1] if ordered else 0,
        "truncated": truncated,
        "dropped_prompt_too_long": dropped,
    }
    return columns, stats
