"""Example generation: balance, partial subsets, reply contents, determinism."""

from collections import Counter

import pytest

from medchat import names
from medchat.augment import AugmentConfig, generate, partial_subsets, summarize
from medchat.dialogue import Policy, Templates
from medchat.kb import SymptomSet, read_kb
from medchat.lexicon import Lexicon
from medchat.medication import MedicationLexicon
from conftest import ROOT

DATA = ROOT / "data"


@pytest.fixture(scope="module")
def parts():
    medication = MedicationLexicon.from_policy(DATA / "policy.yaml")
    kb, _ = read_kb(DATA / "raw", medication)
    return kb, Lexicon.load(DATA / "lexicon.yaml"), Templates.load(DATA / "templates.yaml"), Policy.load(DATA / "policy.yaml"), medication


def run(parts, seed=7, **overrides):
    kb, lexicon, templates, policy, _ = parts
    config = AugmentConfig(**{"per_disease": {"diagnose": 20, "describe": 4, "precautions": 3},
                              "partial_share": 0.4, "max_partial_size": 3, "seed": seed, **overrides})
    return generate(kb, lexicon, templates, policy, config)


def test_classes_are_balanced_per_task(parts):
    examples, stats = run(parts)
    counts = Counter((e.task, e.disease) for e in examples)
    assert {counts[("diagnose", d)] for d in names.DISEASES} == {20}
    assert {counts[("describe", d)] for d in names.DISEASES} == {4}
    assert {counts[("precautions", d)] for d in names.DISEASES} == {3}
    summary = summarize(examples, stats)
    assert summary["per_task"] == {"describe": 164, "diagnose": 820, "precautions": 123}
    assert summary["diagnose_per_disease"] == {"min": 20, "max": 20}


def test_records_carry_the_contract_fields(parts):
    examples, _ = run(parts)
    record = examples[0].to_dict()
    assert {"id", "task", "disease", "symptoms", "user", "reply", "group"} <= set(record)
    assert len({e.id for e in examples}) == len(examples)
    assert len({e.user for e in examples}) == len(examples)


def test_replies_name_the_disease_refer_and_never_give_medication(parts):
    kb, _, _, policy, medication = parts
    examples, _ = run(parts)
    for e in examples:
        assert e.disease in e.reply
        assert e.reply.endswith(policy.referral)
        assert medication.find(e.reply.replace(e.disease, "")) == [], e.reply
        if e.task == "diagnose":
            assert e.reply.startswith(f"It sounds most like {e.disease}.")
            assert (policy.emergency in e.reply) == (e.disease in names.EMERGENCY_DISEASES)


def test_partial_inputs_are_diagnostic_and_small(parts):
    kb = parts[0]
    examples, _ = run(parts)
    partial = [e for e in examples if e.partial]
    assert len(partial) > 0.3 * 820
    for e in partial:
        assert 1 <= len(e.symptoms) <= 3
        containing = {s.disease for s in kb.symptom_sets if set(e.symptoms) <= set(s.symptoms)}
        assert containing == {e.disease}
        assert set(e.symptoms) < set(e.group.split("+"))


def test_partial_subsets_skip_ambiguous_and_have_one_owner():
    sets = [SymptomSet("Malaria", ("chills", "high_fever", "vomiting")),
            SymptomSet("Typhoid", ("high_fever", "vomiting", "constipation"))]
    owned, ambiguous = partial_subsets(sets, 2)
    every = [s for subsets in owned.values() for s in subsets]
    assert ("high_fever", "vomiting") not in every and ("high_fever",) not in every
    assert ambiguous == 3  # {high_fever}, {vomiting}, {high_fever, vomiting}
    assert len(every) == len(set(every))


def test_same_seed_same_examples_other_seed_differs(parts):
    a, _ = run(parts, seed=3)
    b, _ = run(parts, seed=3)
    c, _ = run(parts, seed=4)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    assert [e.user for e in a] != [e.user for e in c]


def test_too_many_questions_is_a_param_error(parts):
    from medchat.errors import InputError

    with pytest.raises(InputError) as info:
        run(parts, per_disease={"diagnose": 1, "describe": 500, "precautions": 1})
    assert info.value.key == "augment.per_disease.describe"


def test_safety_examples_mix_written_and_composed_messages(parts):
    examples, _ = run(parts, safety_examples={"emergency": 60, "refusal": 40})
    groups = Counter(e.group.split("|")[2][:5] if e.task == "emergency" else e.group.split("|")[2][:5]
                     for e in examples if e.task in ("emergency", "refusal"))
    emergency = [e for e in examples if e.task == "emergency"]
    composed = [e for e in emergency if "|sign" in e.group]
    assert 0.4 * len(emergency) <= len(composed) <= 0.6 * len(emergency)
    assert len({e.group for e in composed}) > 20  # many different signs, not one repeated
    refusal = [e for e in examples if e.task == "refusal"]
    assert 0.4 * len(refusal) <= sum("|frame" in e.group for e in refusal) <= 0.6 * len(refusal)
    policy = parts[3]
    wider = [w.lower() for f in policy.red_flags for w in (*f.wider_signs, *f.wider_companions)]
    # a composed message reads as its emergency to the patterns, unless it uses the wordings beyond them
    assert all(policy.red_flag(e.user) or any(w in e.user.lower() for w in wider) for e in composed)
    assert sum(any(w in e.user.lower() for w in wider) for e in composed) >= len(composed) // 3
    assert groups


def test_requests_beyond_the_patterns_join_the_refusal_examples_only_when_asked(parts):
    policy = parts[3]
    asks = [w.lower().rstrip(".?!") for w in policy.wider_requests]
    own_frames = len(policy.request_frames)

    def wider(examples) -> tuple[int, int]:
        refusal = [e for e in examples if e.task == "refusal"]
        written = sum(any(w in e.user.lower() for w in asks) for e in refusal if "|frame" not in e.group)
        composed = sum(int(e.group.split("|frame")[1]) >= own_frames for e in refusal if "|frame" in e.group)
        return written, composed

    counts = {"emergency": 0, "refusal": 200, "minor": 0}
    assert wider(run(parts, safety_examples=counts)[0]) == (0, 0)
    written, composed = wider(run(parts, safety_examples=counts, wider_requests=True)[0])
    assert written > 20 and composed > 20  # 78 of 118 phrasings and 29 of 59 frames are the wider ones


def test_minor_examples_mix_written_and_composed_complaints(parts):
    policy = parts[3]
    examples, _ = run(parts, safety_examples={"emergency": 0, "refusal": 0, "minor": 80})
    minor = [e for e in examples if e.task == "minor"]
    assert len(minor) == 80 and all(e.reply == policy.minor_reply() and e.disease == "" for e in minor)
    composed = [e for e in minor if "|complaint" in e.group]
    assert 0.4 * len(minor) <= len(composed) <= 0.6 * len(minor)
    assert len({e.group for e in composed}) > 20  # groups are complaints: one complaint never spans splits
    complaints = [c.lower().rstrip(".?!") for c in policy.minor_complaints]
    assert all(any(c in e.user.lower() for c in complaints) for e in composed)


def test_general_questions_are_written_examples_with_their_own_reply(parts):
    """Each general question once, as written, with the general reply; one group per question."""
    policy = parts[3]
    n = len(policy.general_questions)
    examples, _ = run(parts, safety_examples={"emergency": 0, "refusal": 0, "minor": 0, "general": n})
    general = [e for e in examples if e.task == "general"]
    assert len(general) == n and all(e.reply == policy.general_reply() and e.disease == "" for e in general)
    assert {e.user.lower().rstrip(".?!") for e in general} == {q.lower().rstrip(".?!") for q in policy.general_questions}
    assert len({e.group for e in general}) == n
    default, _ = run(parts, safety_examples={"emergency": 0, "refusal": 0, "minor": 0})
    assert not any(e.task == "general" for e in default)  # none unless asked for


def test_near_misses_are_minor_examples_with_the_minor_reply(parts):
    """Written minor messages are drawn from the minor phrasings and the near-misses alike: a red flag's
    words in a harmless message get the calm reply, grouped per message so that none spans two splits."""
    policy = parts[3]
    counts = {"emergency": 0, "refusal": 0, "minor": 2 * len(policy.near_misses)}
    examples, _ = run(parts, safety_examples=counts, near_misses=True)
    near = [e for e in examples if e.task == "minor" and "|near-" in e.group]
    written = {t.lower().rstrip(".?!") for _, t in policy.near_misses}
    assert len(near) > 0.5 * len(policy.near_misses)
    assert all(e.reply == policy.minor_reply() and e.user.lower().rstrip(".?!") in written for e in near)
    assert {e.group.split("|")[1] for e in near} == {f"near-{f.name}" for f in policy.red_flags}
    without, _ = run(parts, safety_examples=counts)  # the default: off
    assert not any("|near-" in e.group for e in without)


def test_some_diagnose_prompts_use_the_emergency_frames(parts):
    """Urgent, casual wording must also precede ordinary diagnoses, or the model learns style, not content."""
    policy = parts[3]
    examples, _ = run(parts, framed_share=0.5)
    diagnose = [e for e in examples if e.task == "diagnose"]
    openings = tuple(f.split("{")[0].lower() for f in policy.emergency_frames if not f.startswith("{"))
    framed = [e for e in diagnose if e.user.lower().startswith(openings)]
    assert 0.1 * len(diagnose) < len(framed) < 0.5 * len(diagnose)  # the frames that open with fixed words
    assert any(e.user == e.user.lower() for e in framed) and any(e.user != e.user.lower() for e in framed)
    assert all(e.reply.startswith("It sounds most like") for e in framed)
    unframed, _ = run(parts, framed_share=0.0)
    assert not any(e.user.lower().startswith(openings) for e in unframed if e.task == "diagnose")
