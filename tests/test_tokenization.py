"""Dialogue token format: reply-only labels, a pad token distinct from EOS, chat templates."""

import pytest

from medchat.model.tokenization import (
    EOS,
    IGNORE_INDEX,
    PAD,
    encode,
    encode_pairs,
    encode_rows,
    prompt_ids,
    reply_ids,
    train_bpe_tokenizer,
)

CORPUS = [
    "I have a headache and a fever. What could it be?",
    "It sounds most like Malaria. Rest and see a doctor.",
    "My skin itches. What is wrong?",
    "It sounds most like Fungal infection. Keep skin dry.",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(CORPUS, vocab_size=300)


def test_scratch_tokenizer_has_dedicated_pad(tokenizer):
    assert tokenizer.eos_token == EOS and tokenizer.pad_token == PAD
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer("It sounds most like Malaria.")["input_ids"]) == "It sounds most like Malaria."


def test_labels_mask_the_user_turn_and_keep_eos(tokenizer):
    encoded, truncated = encode(tokenizer, "My skin itches.", "Keep skin dry.", max_length=256)
    prompt = prompt_ids(tokenizer, "My skin itches.")
    assert not truncated
    assert encoded["labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert encoded["labels"][len(prompt) :] == encoded["input_ids"][len(prompt) :]
    # DialoGPT style: each turn ends with EOS, and the final EOS is a label the model must learn
    assert encoded["input_ids"][len(prompt) - 1] == tokenizer.eos_token_id
    assert encoded["labels"][-1] == tokenizer.eos_token_id


def test_truncation_is_counted_and_prompt_only_rows_dropped(tokenizer):
    rows = [
        {"id": "a", "task": "diagnose", "disease": "Malaria", "user": "I have a fever.", "reply": "Rest. " * 40},
        {"id": "b", "task": "diagnose", "disease": "Malaria", "user": "fever " * 80, "reply": "Rest."},
        {"id": "c", "task": "describe", "disease": "Malaria", "user": "What is it?", "reply": "Rest."},
    ]
    columns, stats = encode_rows(tokenizer, rows, max_length=24)
    assert stats["truncated"] == 1 and stats["dropped_prompt_too_long"] == 1 and stats["examples"] == 2
    assert all(len(ids) <= 24 for ids in columns["input_ids"])
    assert columns["id"] == ["a", "c"]


@pytest.mark.parametrize("templated", [False, True])
def test_batched_pairs_match_one_call_per_text(tokenizer, templated):
    """encode_rows tokenizes in batches; the ids must be what prompt_ids / reply_ids give text by text,
    for odd inputs too (leading and doubled spaces, accents, characters the BPE never saw)."""
    if templated:
        tokenizer = train_bpe_tokenizer(CORPUS, vocab_size=300)
        tokenizer.chat_template = (
            "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}"
        )
    pairs = [
        (" My skin  itches.", "Keep skin dry."),
        ("fièvre, 39°C — why?", "It sounds most like Malaria.\nRest."),
        ("", "x"),
        ("I have a headache and a fever. What could it be?", " "),
    ]
    assert encode_pairs(tokenizer, pairs) == [(prompt_ids(tokenizer, u), reply_ids(tokenizer, u, r)) for u, r in pairs]
    assert encode_pairs(tokenizer, []) == []


def test_chat_template_is_used_when_present(tokenizer):
    templated = train_bpe_tokenizer(CORPUS, vocab_size=300)
    templated.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    encoded, _ = encode(templated, "My skin itches.", "Keep skin dry.", max_length=256)
    prompt = prompt_ids(templated, "My skin itches.")
    assert templated.decode(prompt).endswith("<assistant>")
    assert templated.decode(encoded["input_ids"][len(prompt) :]) == "Keep skin dry." + EOS
    assert encoded["labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)


def test_domain_tokens_make_terms_single_tokens_and_start_at_their_pieces_mean(tmp_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from medchat.model.loading import init_domain_embeddings
    from medchat.model.tokenization import (
        add_domain_tokens,
        load_domain_tokens,
        save_domain_tokens,
        save_tokenizer,
        tokens_per_term,
    )

    tokenizer = train_bpe_tokenizer(CORPUS, vocab_size=300)
    terms = ["burning micturition", "Fungal infection", "fever"]
    before = tokens_per_term(tokenizer, terms)
    old_size = len(tokenizer)
    added = add_domain_tokens(tokenizer, terms)
    assert "burning micturition" in added and all(len(ids) > 1 for ids in added.values())
    assert tokens_per_term(tokenizer, terms) < before and tokens_per_term(tokenizer, list(added)) == 1.0
    # a term mid-sentence is one token and the text still decodes to itself
    text = "I have burning micturition today"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_tokens_to_ids(" burning micturition") in ids and tokenizer.decode(ids) == text
    save_tokenizer(tokenizer, tmp_path)
    save_domain_tokens(tokenizer, added, tmp_path)
    mapping = load_domain_tokens(tmp_path)
    assert sorted(mapping) == sorted(range(old_size, len(tokenizer)))
    model = GPT2LMHeadModel(GPT2Config(vocab_size=old_size, n_layer=1, n_embd=16, n_head=2))
    model.resize_token_embeddings(len(tokenizer))
    init_domain_embeddings(model, mapping)
    table = model.get_input_embeddings().weight
    for new, old in mapping.items():
        torch.testing.assert_close(table[new], table[old].mean(dim=0))
    assert load_domain_tokens(tmp_path / "missing") == {}
