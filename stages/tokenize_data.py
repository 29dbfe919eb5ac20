"""tokenize: split JSONL -> Arrow datasets with reply-only labels, and the tokenizer (trained here for scratch).

(Not named tokenize.py: a script directory comes first on sys.path, and that name would shadow the
standard library module that `inspect` imports.)"""

from __future__ import annotations

import sys

from medchat.artifacts import atomic_dir, read_jsonl, write_json
from medchat.data.lexicon import Lexicon
from medchat.data.splitting import SPLITS
from medchat.errors import InputError
from medchat.inference.grounding import decision
from medchat.model.tokenization import (
    SCRATCH,
    add_domain_tokens,
    domain_terms,
    encode_rows,
    load_saved_tokenizer,
    save_domain_tokens,
    save_tokenizer,
    tokens_per_term,
    train_bpe_tokenizer,
)
from medchat.params import load_params
from medchat.retrieval.prompts import PromptBuilder
from medchat.safety.rules import SafetyRules

SPLIT_DIR = "data/split"
BASE = "models/base"  # a pretrained model's tokenizer (the base stage)
INDEX = "models/retriever"  # its prompt settings: normalised and/or retrieval-augmented user turns
OUT_DIR = "data/tokenized"
METRICS = "metrics/tokenize.json"


def main() -> int:
    from datasets import Dataset, DatasetDict, disable_progress_bars

    disable_progress_bars()

    try:
        params = load_params()
        builder = PromptBuilder.load(INDEX)
        rows = {}
        for name in SPLITS:
            split = read_jsonl(f"{SPLIT_DIR}/{name}.jsonl")
            rows[name] = [{**row, "user": prompt} for row, prompt in zip(split, builder([r["user"] for r in split]))]
        if params.tokenize.reply_form == "decision":  # the model learns the opening; the rest is composed
            rules = SafetyRules.load(params.safety.rules)
            rows = {name: [{**r, "reply": decision(r["reply"], rules)} for r in split] for name, split in rows.items()}
        if params.model.name == SCRATCH:
            # Trained on the train split only, so validation and test text never shapes the vocabulary.
            tokenizer = train_bpe_tokenizer(
                (f"{r['user']}\n{r['reply']}" for r in rows["train"]), params.model.vocab_size
            )
        else:
            tokenizer = load_saved_tokenizer(BASE)  # the base model's, with its dedicated pad token
        terms = domain_terms(Lexicon.load(params.augment.lexicon))
    except InputError as exc:
        print(f"tokenize: error: {exc}", file=sys.stderr)
        return 1
    domain = {"terms": len(terms), "tokens_per_term_before": tokens_per_term(tokenizer, terms)}
    added = add_domain_tokens(tokenizer, terms) if params.tokenize.add_domain_tokens else {}
    domain.update(added=len(added), tokens_per_term_after=tokens_per_term(tokenizer, terms))
    metrics = {
        "vocab_size": len(tokenizer),
        "max_length": params.train.max_length,
        "domain_tokens": domain,
        "chat_template": bool(tokenizer.chat_template),
        "reply_form": params.tokenize.reply_form,
        "prompts": {"normalised": builder.config.normalise, "grounded": builder.config.ground},
    }
    splits = {}
    for name in SPLITS:
        columns, metrics[name] = encode_rows(tokenizer, rows[name], params.train.max_length)
        splits[name] = Dataset.from_dict(columns)
    with atomic_dir(OUT_DIR) as tmp:
        DatasetDict(splits).save_to_disk(str(tmp / "datasets"))
        save_tokenizer(tokenizer, tmp / "tokenizer")
        save_domain_tokens(tokenizer, added, tmp / "tokenizer")
    write_json(METRICS, metrics)
    print(
        f"tokenize: vocab {len(tokenizer)}, train tokens mean {metrics['train']['tokens_mean']}, "
        f"truncated {sum(metrics[n]['truncated'] for n in SPLITS)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
