"""Drafted (speculative) greedy decoding: pinned to the library's own greedy `generate`."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from medchat.inference.chat_model import ChatModel
from medchat.inference.drafting import DraftStats, ReplyDrafter, load_drafts, save_drafts, speculative_generate
from medchat.model.tokenization import prompt_ids, reply_ids, train_bpe_tokenizer

REPLIES = [
    "It sounds most like Malaria. Rest and drink fluids.",
    "It sounds most like Heart attack. Call emergency services now.",
    "It sounds most like GERD. Avoid lying down after meals.",
    "It sounds most like Common Cold. Rest.",
]
USERS = [
    "I have a fever and chills.",
    "My chest hurts.",
    "Hi",
    "I have a fever and chills and my chest hurts a lot.",
    "burning after meals",
    "sneezing and a runny nose for two days now",
]


@pytest.fixture(scope="module")
def chat():
    """A tiny model taught (a few seconds) to answer each user text with one of REPLIES, as the chatbot does."""
    tokenizer = train_bpe_tokenizer(REPLIES * 10 + USERS * 10, vocab_size=300)
    torch.manual_seed(3)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=2,
        n_embd=48,
        n_head=2,
        n_positions=96,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = GPT2LMHeadModel(config)
    examples = []
    for i, user in enumerate(USERS):
        prompt, answer = prompt_ids(tokenizer, user), reply_ids(tokenizer, user, REPLIES[i % len(REPLIES)])
        examples.append((torch.tensor([prompt + answer]), torch.tensor([[-100] * len(prompt) + answer])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        for ids, labels in examples:
            model(input_ids=ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return ChatModel(model.eval(), tokenizer, max_new_tokens=40, batch_size=4)


def test_proposes_what_followed_the_longest_matching_suffix():
    drafter = ReplyDrafter([[1, 2, 3, 4, 5], [9, 2, 3, 7, 8]], max_ngram=3)
    assert drafter.propose([9, 2, 3], 5) == [7, 8]  # the 3-gram picks the second sequence
    assert drafter.propose([0, 2, 3], 5) == [4, 5]  # only the 2-gram matches: first occurrence
    assert drafter.propose([5, 1, 2], 2) == [3, 4]  # at most `limit` tokens
    assert drafter.propose([6], 5) == []  # nothing to look up
    assert drafter.propose([3], 0) == []


def test_drafted_generation_equals_library_greedy_generation(chat):
    reference = ChatModel(chat.model, chat.tokenizer, max_new_tokens=40, batch_size=4).generate(USERS).replies
    assert sum(r in REPLIES for r in reference) >= 4  # the model has learned most of its replies
    # drafts that fit (long runs accepted), drafts that half fit, and drafts that never fit
    for drafts in (REPLIES, [r[:30] + " and more." for r in REPLIES], USERS):
        drafted = ChatModel(chat.model, chat.tokenizer, max_new_tokens=40, batch_size=4, drafts=drafts)
        assert drafted.generate(USERS).replies == reference
        single = ChatModel(chat.model, chat.tokenizer, max_new_tokens=40, batch_size=1, drafts=drafts)
        assert single.generate(USERS).replies == reference


def test_good_drafts_save_forward_passes_and_budgets_hold(chat):
    plain = ChatModel(chat.model, chat.tokenizer, max_new_tokens=40, batch_size=4)
    drafter = ReplyDrafter.from_texts(chat.tokenizer, REPLIES)
    ids, mask = plain._pad_left([prompt_ids(chat.tokenizer, u) for u in USERS[:4]])
    for budget in (1, 7, 40):
        stats = DraftStats()
        rows = speculative_generate(chat.model, ids, mask, budget, drafter, chat.tokenizer.eos_token_id, stats=stats)
        library = chat.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=budget,
            do_sample=False,
            pad_token_id=chat.tokenizer.pad_token_id,
            eos_token_id=chat.tokenizer.eos_token_id,
        )
        for row, want in zip(rows, library[:, ids.shape[1] :].tolist()):
            assert len(row) <= budget
            assert row == want[: len(row)]  # the library pads finished rows after EOS
            assert row[-1] == chat.tokenizer.eos_token_id or len(row) == budget
        if budget == 40:
            longest = max(map(len, rows))
            assert stats.accepted > 0 and stats.passes < longest / 2  # several tokens confirmed per pass


def test_drafts_file_round_trip(tmp_path):
    assert load_drafts(tmp_path) is None
    save_drafts(tmp_path, ["b", "a", "b"])
    assert load_drafts(tmp_path) == ["a", "b"]


def test_an_opening_bias_moves_the_first_token_only_and_acts_as_a_threshold(chat):
    """A decision model's first token is its decision: a bias there must flip exactly the rows whose margin
    for that token is below the offset, in both decoding paths, and leave later tokens alone."""
    from medchat.inference.chat_model import left_padded_positions

    tokenizer = chat.tokenizer
    reference = ChatModel(chat.model, tokenizer, max_new_tokens=40, batch_size=4).generate(USERS).replies
    opening = reply_ids(tokenizer, "", REPLIES[0])[0]  # every reply opens with "It"
    later = reply_ids(tokenizer, "", REPLIES[0])[1]
    ids, mask = chat._pad_left([prompt_ids(tokenizer, u) for u in USERS])
    with torch.inference_mode():
        logits = chat.model(input_ids=ids, attention_mask=mask, position_ids=left_padded_positions(mask)).logits[:, -1]
    others = logits.clone()
    others[:, opening] = float("-inf")
    margins = (logits[:, opening] - others.max(-1).values).tolist()
    opens = [m > 0 for m in margins]
    assert sum(opens) >= 2  # the rows that open with it at all
    offset = sorted(m for m in margins if m > 0)[0] + 1e-3  # just above the weakest opening's margin
    for drafts in (None, REPLIES):
        biased = ChatModel(chat.model, tokenizer, 40, 4, drafts, opening_bias={opening: -offset}).generate(USERS)
        flipped = [a != b for a, b in zip(biased.replies, reference)]
        assert flipped == [m > 0 and m < offset for m in margins]
        untouched = ChatModel(chat.model, tokenizer, 40, 4, drafts, opening_bias={later: -100.0}).generate(USERS)
        assert untouched.replies == reference  # a token that never opens a reply keeps its place later on


def test_opening_is_the_start_shared_by_the_most_sequences_and_completion_needs_one_way_on():
    drafter = ReplyDrafter([[5, 6, 7, 1], [5, 6, 7, 2], [5, 6, 7, 3], [8, 9], [8, 4], [3, 2, 1]])
    assert drafter.opening == [5, 6, 7]  # 3 sequences x 3 tokens beats 2 x 1 and 1 x 3
    assert drafter.propose([], 2) == [5, 6]  # proposed before the first token, within the limit
    assert drafter.complete([5, 6]) is None  # three ways on
    assert drafter.complete([5, 6, 7, 2]) == []  # a whole sequence: nothing left to add
    assert drafter.complete([8, 9]) == []
    assert drafter.complete([3]) == [2, 1]  # one sequence starts so
    assert drafter.complete([4]) is None  # none does


def test_a_cached_prompt_prefix_changes_no_reply(chat):
    """Every prompt starting with the same text: its keys and values computed once give the same greedy replies
    as reading it in every prompt."""
    from medchat.inference.drafting import PromptPrefix

    tokenizer = chat.tokenizer
    prompts = [prompt_ids(tokenizer, "Hi " + u) for u in USERS]
    shared = next(i for i, column in enumerate(zip(*prompts)) if len(set(column)) > 1)
    assert shared >= 1
    prefix = PromptPrefix.compute(chat.model, prompts[0][:shared])
    drafter = ReplyDrafter.from_texts(tokenizer, REPLIES)
    eos = tokenizer.eos_token_id
    whole = speculative_generate(chat.model, *chat._pad_left(prompts), 40, drafter, eos)
    rest = speculative_generate(
        chat.model, *chat._pad_left([p[shared:] for p in prompts]), 40, drafter, eos, prefix=prefix
    )
    assert rest == whole
    assert prefix.cache.get_seq_length() == shared  # the prefix's own cache is never grown by a generation


def test_completion_ends_a_reply_once_one_known_reply_starts_with_it(chat):
    tokenizer = chat.tokenizer
    ids, mask = chat._pad_left([prompt_ids(tokenizer, u) for u in USERS])
    drafter = ReplyDrafter.from_texts(tokenizer, REPLIES)
    eos = tokenizer.eos_token_id
    greedy_stats, stats = DraftStats(), DraftStats()
    greedy = speculative_generate(chat.model, ids, mask, 40, drafter, eos, stats=greedy_stats)
    completed = speculative_generate(chat.model, ids, mask, 40, drafter, eos, stats=stats, complete=True)
    known = {tuple(s) for s in drafter.sequences}
    for plain, short in zip(greedy, completed):
        assert tuple(short) in known  # always a whole known reply, with its end of turn
        if tuple(plain) in known:
            assert short == plain  # where the model would have written a known reply anyway, the same one
    assert stats.passes < greedy_stats.passes  # the replies' known ends are not decoded
