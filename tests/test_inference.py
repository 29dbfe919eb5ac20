"""Generation and scoring pinned to straightforward references."""

import math

import pytest

from medchat.data.names import parse_disease
from medchat.inference.chat_model import ChatModel


def test_batched_left_padded_generation_equals_one_at_a_time(chat):
    users = [
        "I have a fever and chills.",
        "My chest hurts.",
        "Hi",
        "I have a fever and chills and my chest hurts a lot.",
    ]
    batched = chat.generate(users).replies
    single = ChatModel(chat.model, chat.tokenizer, max_new_tokens=12, batch_size=1).generate(users).replies
    assert batched == single


def test_batched_scoring_equals_one_pair_at_a_time(chat):
    pairs = [
        ("Hi", "It sounds most like GERD."),
        ("I have a fever and chills and my chest hurts a lot.", "It sounds most like Malaria."),
        ("My chest hurts.", "It sounds most like Heart attack."),
    ]
    batched = chat.sequence_logprobs(pairs)
    single = [chat.sequence_logprobs([pair])[0] for pair in pairs]  # no padding at all
    for (got, n_got), (want, n_want) in zip(batched, single):
        assert n_got == n_want and got == pytest.approx(want, abs=1e-4)


def test_perplexity_is_exp_of_mean_token_nll(chat):
    pairs = [("I have a fever and chills.", "It sounds most like Malaria.")]
    total, count = chat.sequence_logprobs(pairs)[0]
    assert chat.perplexity(pairs) == pytest.approx(math.exp(-total / count))
    assert count == len(chat.tokenizer("It sounds most like Malaria.")["input_ids"]) + 1  # + EOS


def test_parse_disease_reads_names_and_aliases():
    assert parse_disease("It sounds most like Osteoarthritis. Unlike Arthritis ...") == "Osteoarthritis"
    assert parse_disease("it sounds most like peptic ulcer diseae.") == "Peptic ulcer disease"
    assert parse_disease("Hepatitis A: a liver infection") == "Hepatitis A"
    assert parse_disease("I am not sure.") is None
