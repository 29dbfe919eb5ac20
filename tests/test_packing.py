"""Packing: rows within capacity, every example once, and the same loss and logits as unpacked examples."""

import random

import pytest
import torch
from transformers import DataCollatorForSeq2Seq, GPT2Config, GPT2LMHeadModel

from medchat.model.tokenization import IGNORE_INDEX, encode, train_bpe_tokenizer
from medchat.training.packing import LossPositionsOnly, PackingCollator, pack_rows, padding_efficiency

CORPUS = [
    ("I have a fever, chills and sweating every other night.", "It sounds most like Malaria. See a doctor."),
    ("Itchy skin.", "It sounds most like Fungal infection."),
    (
        "I have heartburn after meals and a sour taste in my mouth when I lie down at night.",
        "It sounds most like GERD. Eat smaller meals, and see a clinician if it persists.",
    ),
    ("Yellow eyes, dark urine.", "It sounds most like Hepatitis E. Please see a doctor soon."),
] * 3


def test_pack_rows_respects_capacity_and_places_each_example_once():
    rng = random.Random(0)
    lengths = [rng.randint(5, 120) for _ in range(200)]
    rows = pack_rows(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(200))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    assert len(rows) <= -(-sum(lengths) // 128) + 10  # first-fit decreasing is close to the lower bound
    assert pack_rows([300, 10], 128) == [[0], [1]]  # too long for a row: alone (never split or dropped)


def test_padding_efficiency_counts_real_tokens_share():
    effect = padding_efficiency([100, 20, 20, 20], batch_size=4, capacity=200)
    assert effect["dynamic_padding"] == round(160 / 400, 4)
    assert effect["packing"] == 1.0  # one row of 160 tokens, no padding


@pytest.fixture(scope="module")
def encoded():
    tokenizer = train_bpe_tokenizer([u + " " + r for u, r in CORPUS], vocab_size=300)
    rows = [encode(tokenizer, u, r, 64)[0] for u, r in CORPUS]
    return tokenizer, rows


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_batch_gives_the_same_loss_and_logits_as_unpacked_examples(encoded, attention):
    tokenizer, rows = encoded
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=64)
    config._attn_implementation = attention
    config.use_cache = False  # as the Trainer sets it (TrainingArguments.use_cache): packing needs no KV cache
    model = GPT2LMHeadModel(config).eval()
    padded = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX)(
        [dict(r) for r in rows]
    )
    packed = PackingCollator(tokenizer.pad_token_id, capacity=64)([dict(r) for r in rows])
    assert packed["input_ids"].shape[0] < len(rows)  # several examples do share rows
    # same loss-bearing tokens (the first token of each example is a masked prompt token anyway)
    assert (packed["labels"] != IGNORE_INDEX).sum() == (padded["labels"] != IGNORE_INDEX).sum()
    with torch.no_grad():
        loss_padded = model(**padded).loss
        loss_packed = model(**packed).loss
        packed_logits = model(**packed).logits
    assert torch.allclose(loss_packed, loss_padded, atol=1e-5)
    # no attention across examples: every example's logits inside a packed row equal its logits alone
    checked = 0
    for r in range(packed["input_ids"].shape[0]):
        positions = packed["position_ids"][r].tolist()
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for start, end in zip(starts, starts[1:]):
            ids = packed["input_ids"][r, start:end]
            if ids[0] == tokenizer.pad_token_id:
                continue  # the row's padding tail
            with torch.no_grad():
                alone = model(input_ids=ids[None]).logits[0]
            assert torch.allclose(packed_logits[r, start:end], alone, atol=1e-4)
            checked += 1
    assert checked == len(rows)


def test_packing_collator_masks_padding_and_resets_positions(encoded):
    tokenizer, rows = encoded
    batch = PackingCollator(tokenizer.pad_token_id, capacity=64)([dict(r) for r in rows])
    width = batch["input_ids"].shape[1]
    assert width <= 64
    for r in range(batch["input_ids"].shape[0]):
        pads = batch["input_ids"][r] == tokenizer.pad_token_id
        assert (batch["labels"][r][pads] == IGNORE_INDEX).all()
    total = sum(len(r["input_ids"]) for r in rows)
    assert int((batch["input_ids"] != tokenizer.pad_token_id).sum()) == total


@pytest.mark.parametrize("packing", [True, False])
def test_logits_only_at_loss_positions_give_the_same_loss_and_gradients(encoded, packing):
    tokenizer, rows = encoded
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=64, use_cache=False)
    model = GPT2LMHeadModel(config)
    model.config.attn_pdrop = model.config.resid_pdrop = model.config.embd_pdrop = 0.0
    model.eval()
    collate = (
        PackingCollator(tokenizer.pad_token_id, capacity=64)
        if packing
        else DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX)
    )
    full = collate([dict(r) for r in rows])
    lean = LossPositionsOnly(collate)([dict(r) for r in rows])
    assert lean["logits_to_keep"].sum() == (full["labels"] != IGNORE_INDEX).sum() == len(lean["shift_labels"])
    losses, grads = [], []
    for batch in (full, lean):
        model.zero_grad()
        out = model(**batch)
        out.loss.backward()
        losses.append(out.loss.detach())
        grads.append(model.transformer.h[0].attn.c_attn.weight.grad.clone())
    assert out.logits.shape == (len(lean["shift_labels"]), len(tokenizer))  # the head ran on those positions only
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
