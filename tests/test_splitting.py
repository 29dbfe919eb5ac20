"""Leak-free grouped, stratified split and k-fold."""

import random

import pytest

from medchat.data.splitting import SPLITS, SplitConfig, overlap, split_examples


def synthetic(seed=0, diseases=8, groups_per=7, per_group=5):
    rng = random.Random(seed)
    out = []
    for d in range(diseases):
        for g in range(groups_per):
            symptoms = sorted(rng.sample([f"s{i}" for i in range(40)], 4))
            for k in range(per_group):
                out.append(
                    {
                        "id": f"{d}-{g}-{k}",
                        "task": "diagnose",
                        "disease": f"D{d}",
                        "symptoms": symptoms,
                        "user": f"{d} {g} {k}",
                        "group": "+".join(symptoms) + f"#{d}{g}",
                    }
                )
    return out


@pytest.mark.parametrize("seed", range(5))
def test_groups_never_straddle_splits(seed):
    examples = synthetic(seed)
    splits = split_examples(examples, SplitConfig(0.1, 0.2, 0, 0, seed))
    assert sum(len(v) for v in splits.values()) == len(examples)
    where = {}
    for name, rows in splits.items():
        for e in rows:
            assert where.setdefault(e["group"], name) == name
    assert overlap(splits) == {"groups": 0, "symptom_sets": 0, "user_texts": 0}


def test_every_disease_is_in_every_split():
    splits = split_examples(synthetic(), SplitConfig(0.15, 0.15, 0, 0, 1))
    for name in SPLITS:
        assert {e["disease"] for e in splits[name]} == {f"D{d}" for d in range(8)}


def test_folds_partition_the_groups():
    examples = synthetic()
    tests = [{e["group"] for e in split_examples(examples, SplitConfig(0.1, 0.0, 4, f, 9))["test"]} for f in range(4)]
    assert set().union(*tests) == {e["group"] for e in examples}
    assert sum(map(len, tests)) == len({e["group"] for e in examples})


def test_overlap_detects_leaks():
    a = {"group": "g1", "symptoms": ["x", "y"], "user": "I itch"}
    b = {"group": "g2", "symptoms": ["y", "x"], "user": "i itch "}
    counts = overlap({"train": [a], "val": [], "test": [b]})
    assert counts == {"groups": 0, "symptom_sets": 1, "user_texts": 1}


def test_deterministic_for_a_seed():
    examples = synthetic()
    first = split_examples(examples, SplitConfig(0.1, 0.2, 0, 0, 5))
    assert first == split_examples(examples, SplitConfig(0.1, 0.2, 0, 0, 5))
    assert first != split_examples(examples, SplitConfig(0.1, 0.2, 0, 0, 6))
