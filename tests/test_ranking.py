"""Tree-attention ranking of candidate continuations, pinned to scoring each whole sentence on its own
(`chat`: the tiny untrained model of conftest)."""

import pytest
import torch

from medchat.inference.ranking import candidate_tree, continuation_scores, rank_continuations, tree_attention_mask

DISEASES = ["Malaria", "Heart attack", "GERD", "Common Cold", "Chicken pox"]


def test_tree_mask_lets_each_candidate_see_the_context_and_itself():
    ids, owner, offset = candidate_tree([[7, 8], [9], [10, 11, 12]])
    assert (ids, owner, offset) == ([7, 8, 9, 10, 11, 12], [0, 0, 1, 2, 2, 2], [0, 1, 0, 0, 1, 2])
    mask = tree_attention_mask([2, 3], 3, owner, offset)[:, 0]
    assert mask.shape == (2, 9, 9)
    row = mask[0]  # one padding column, then a two-token context
    assert row[0].tolist() == [True] + [False] * 8  # padding sees itself only
    assert row[1].tolist() == [False, True] + [False] * 7  # causal within the context
    assert row[2, :3].tolist() == [False, True, True] and not row[2, 3:].any()
    assert row[4, :5].tolist() == [False, True, True, True, True] and not row[4, 5:].any()  # 2nd token of candidate 0
    assert row[5, :3].tolist() == [False, True, True] and row[5, 5] and not row[5, 3:5].any()  # candidate 1 alone
    assert row[8, 6:].all() and not row[8, 3:6].any()  # last token of candidate 2
    assert mask[1, :, 0].sum() == 9  # no padding in the longer row: every token sees the first one


def test_tree_scores_equal_whole_sentence_scoring(chat):
    # lengths differ and there are more users than one pass takes, so rows are left-padded and batched
    users = [
        "I have a fever and chills.",
        "My chest hurts.",
        "Hi",
        "I have a fever and chills and my chest hurts a lot.",
    ] * 2
    scores = continuation_scores(chat, users, "It sounds most like", DISEASES, users_per_pass=3)
    ranked = rank_continuations(chat, users, "It sounds most like", DISEASES, users_per_pass=3)
    for u, user in enumerate(users):
        # reference: each whole opening sentence scored alone, no tree, no padding
        want = [chat.sequence_logprobs([(user, f"It sounds most like {d}.")], whole_turn=False)[0][0] for d in DISEASES]
        prefix = chat.sequence_logprobs([(user, "It sounds most like")], whole_turn=False)[0][0]
        assert scores[u].tolist() == pytest.approx([w - prefix for w in want], abs=1e-4)
        assert ranked[u] == sorted(DISEASES, key=lambda d: -want[DISEASES.index(d)])


def test_a_long_prompt_is_cut_from_the_left_to_fit_the_position_table(chat):
    long_user = "I have a fever and chills. " * 40  # far beyond the 128 positions
    scores = continuation_scores(chat, [long_user, "Hi"], "It sounds most like", DISEASES)
    assert torch.isfinite(scores).all() and scores.shape == (2, len(DISEASES))
