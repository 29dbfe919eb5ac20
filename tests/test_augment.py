"""Example generation: balance, partial subsets, reply contents, determinism."""

from collections import Counter

import pytest
from conftest import ROOT

from medchat.data import names
from medchat.data.augment import AugmentConfig, generate, partial_subsets, summarize
from medchat.data.dialogue import Templates
from medchat.data.kb import SymptomSet, read_kb
from medchat.data.lexicon import Lexicon
from medchat.data.medication import MedicationLexicon
from medchat.safety.rules import SafetyRules
from medchat.safety.training_text import TrainingText

DATA = ROOT / "data"
RULES = DATA / "safety" / "rules.yaml"


@pytest.fixture(scope="module")
def parts():
    medication = MedicationLexicon.from_rules(RULES)
    kb, _ = read_kb(DATA / "raw", medication)
    rules = SafetyRules.load(RULES)
    return (
        kb,
        Lexicon.load(DATA / "lexicon.yaml"),
        Templates.load(DATA / "templates.yaml"),
        rules,
        TrainingText.load(DATA / "safety" / "training.yaml", rules),
        medication,
    )


def run(parts, seed=7, **overrides):
    kb, lexicon, templates, rules, training, _ = parts
    config = AugmentConfig(
        **{
            "per_disease": {"diagnose": 20, "describe": 4, "precautions": 3},
            "partial_share": 0.4,
            "max_partial_size": 3,
            "seed": seed,
            **overrides,
        }
    )
    return generate(kb, lexicon, templates, rules, training, config)


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
    kb, _, _, rules, _, medication = parts
    examples, _ = run(parts)
    for e in examples:
        assert e.disease in e.reply
        assert e.reply.endswith(rules.referral)
        assert medication.find(e.reply.replace(e.disease, "")) == [], e.reply
        if e.task == "diagnose":
            assert e.reply.startswith(f"It sounds most like {e.disease}.")
            assert (rules.emergency in e.reply) == (e.disease in names.EMERGENCY_DISEASES)


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
    sets = [
        SymptomSet("Malaria", ("chills", "high_fever", "vomiting")),
        SymptomSet("Typhoid", ("high_fever", "vomiting", "constipation")),
    ]
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
    groups = Counter(
        e.group.split("|")[2][:5] if e.task == "emergency" else e.group.split("|")[2][:5]
        for e in examples
        if e.task in ("emergency", "refusal")
    )
    emergency = [e for e in examples if e.task == "emergency"]
    composed = [e for e in emergency if "|sign" in e.group]
    assert 0.4 * len(emergency) <= len(composed) <= 0.6 * len(emergency)
    assert len({e.group for e in composed}) > 20  # many different signs, not one repeated
    refusal = [e for e in examples if e.task == "refusal"]
    assert 0.4 * len(refusal) <= sum("|frame" in e.group for e in refusal) <= 0.6 * len(refusal)
    rules, training = parts[3], parts[4]
    wider = [w.lower() for f in training.red_flags for w in (*f.wider_signs, *f.wider_companions)]
    # a composed message reads as its emergency to the patterns, unless it uses the wordings beyond them
    assert all(rules.red_flag(e.user) or any(w in e.user.lower() for w in wider) for e in composed)
    assert sum(any(w in e.user.lower() for w in wider) for e in composed) >= len(composed) // 3
    assert groups


def test_minor_examples_mix_written_and_composed_complaints(parts):
    rules, training = parts[3], parts[4]
    examples, _ = run(parts, safety_examples={"emergency": 0, "refusal": 0, "minor": 80})
    minor = [e for e in examples if e.task == "minor"]
    assert len(minor) == 80 and all(e.reply == rules.minor_reply() and e.disease == "" for e in minor)
    composed = [e for e in minor if "|complaint" in e.group]
    assert 0.4 * len(minor) <= len(composed) <= 0.6 * len(minor)
    assert len({e.group for e in composed}) > 20  # groups are complaints: one complaint never spans splits
    complaints = [c.lower().rstrip(".?!") for c in training.minor_complaints]
    assert all(any(c in e.user.lower() for c in complaints) for e in composed)


def test_some_diagnose_prompts_use_the_emergency_frames(parts):
    """Urgent, casual wording must also precede ordinary diagnoses, or the model learns style, not content."""
    training = parts[4]
    examples, _ = run(parts, framed_share=0.5)
    diagnose = [e for e in examples if e.task == "diagnose"]
    openings = tuple(f.split("{")[0].lower() for f in training.emergency_frames if not f.startswith("{"))
    framed = [e for e in diagnose if e.user.lower().startswith(openings)]
    assert 0.1 * len(diagnose) < len(framed) < 0.5 * len(diagnose)  # the frames that open with fixed words
    assert any(e.user == e.user.lower() for e in framed) and any(e.user != e.user.lower() for e in framed)
    assert all(e.reply.startswith("It sounds most like") for e in framed)
    unframed, _ = run(parts, framed_share=0.0)
    assert not any(e.user.lower().startswith(openings) for e in unframed if e.task == "diagnose")
