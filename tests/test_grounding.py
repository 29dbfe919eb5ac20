"""Grounded replies: the model's decision, the knowledge base's words, the retriever as the check."""

from __future__ import annotations

import pytest
from conftest import ROOT

from medchat.data.condition_names import ConditionNames
from medchat.data.dialogue import REPLIES
from medchat.data.kb import read_kb
from medchat.data.lexicon import Lexicon
from medchat.data.medication import MedicationLexicon
from medchat.data.names import parse_disease
from medchat.inference.grounding import (
    HEDGE,
    Composer,
    Grounding,
    about_reply,
    compose,
    decide,
    decision,
    escalation_bias,
)
from medchat.retrieval.normaliser import SymptomNormaliser
from medchat.retrieval.passages import build_passages
from medchat.retrieval.prompts import PromptBuilder, PromptConfig
from medchat.retrieval.retrievers import Retriever, RetrieverConfig
from medchat.safety.rules import SafetyRules, escalates

RULES = ROOT / "data" / "safety" / "rules.yaml"
NO_EVERYDAY_NAMES = ConditionNames({})  # questions matched by the conditions' own names only


@pytest.fixture(scope="module")
def setup():
    rules = SafetyRules.load(RULES)
    kb = read_kb(ROOT / "data" / "raw", MedicationLexicon.from_rules(RULES))[0]
    lexicon = Lexicon.load(ROOT / "data" / "lexicon.yaml")
    retriever = Retriever(build_passages(kb, lexicon), RetrieverConfig("tfidf"))
    prompts = PromptBuilder(PromptConfig(False, False, 2, 0.5), retriever, SymptomNormaliser(lexicon, 0.5))
    return kb, rules, prompts


def test_decide_reads_the_reply_shapes(setup):
    kb, rules, _ = setup
    assert decide(REPLIES["diagnose"](kb, "Malaria", rules), rules).task == "diagnose"
    assert decide(REPLIES["describe"](kb, "Acne", rules), rules).disease == "Acne"
    assert decide(REPLIES["describe"](kb, "Acne", rules), rules).task == "describe"
    assert decide(REPLIES["precautions"](kb, "GERD", rules), rules).task == "precautions"
    for task in ("emergency", "refusal", "minor"):
        assert decide(REPLIES[task](kb, "", rules), rules).task == task
    assert decide("sounds most sounds", rules) == decide("", rules) == type(decide("", rules))(None, None)


def test_a_diagnosis_outside_the_retrievers_top_k_gives_the_retrievers_best_with_a_hedge(setup):
    kb, rules, prompts = setup
    user = "it burns when i pee, i need to go all the time and my wee smells strong"
    best = prompts.retriever.rank([user])[0][0]
    assert best == "Urinary tract infection"
    wrong = REPLIES["diagnose"](kb, "Psoriasis", rules)
    grounded = Grounding(kb, rules, prompts, top_k=1, names=NO_EVERYDAY_NAMES)([user], [wrong])[0]
    assert grounded == f"{HEDGE} {REPLIES['diagnose'](kb, best, rules)}"
    right = REPLIES["diagnose"](kb, best, rules)
    assert Grounding(kb, rules, prompts, top_k=1, names=NO_EVERYDAY_NAMES)([user], [right]) == [right]
    # with a wide enough k the model's own choice stands, in the knowledge base's words
    assert Grounding(kb, rules, prompts, top_k=41, names=NO_EVERYDAY_NAMES)([user], [wrong]) == [wrong]


def test_a_question_is_answered_about_the_condition_it_names_and_fixed_replies_stay(setup):
    kb, rules, prompts = setup
    grounding = Grounding(kb, rules, prompts, top_k=1, names=NO_EVERYDAY_NAMES)
    question = "what exactly is psoriasis? my sister was just told she has it"
    about_acne = REPLIES["describe"](kb, "Acne", rules)
    assert grounding([question], [about_acne]) == [REPLIES["describe"](kb, "Psoriasis", rules)]
    # the model decided neither describe nor precautions: what it is and what helps, one referral
    both = about_reply(kb, "Psoriasis", rules)
    assert both.startswith("Psoriasis: ") and "For Psoriasis, these steps can help:" in both
    assert both.count(rules.referral) == 1 and both.endswith(rules.referral)
    garbled = "It sounds most like sounds like like"
    assert grounding([question], [garbled]) == [both]
    assert grounding([question], [REPLIES["diagnose"](kb, "Acne", rules)]) == [both]
    for task in ("refusal", "minor"):
        fixed = REPLIES[task](kb, "", rules)
        assert grounding([question], [fixed]) == [fixed]
        assert grounding([question], [decision(fixed, rules)]) == [fixed]  # a decision model's opening


def test_the_models_escalation_keeps_the_retrievers_best_condition(setup):
    kb, rules, prompts = setup
    grounding = Grounding(kb, rules, prompts, top_k=1, names=NO_EVERYDAY_NAMES)
    user = "it burns when i pee, i need to go all the time and my wee smells strong"
    escalation = REPLIES["emergency"](kb, "", rules)
    for reply in (escalation, decision(escalation, rules)):
        grounded = grounding([user], [reply])[0]
        assert escalates(grounded)
        assert grounded.startswith(rules.emergency_reply())
        assert parse_disease(grounded.removeprefix(rules.emergency_reply())) == "Urinary tract infection"
        assert HEDGE in grounded


def test_a_cold_sweat_is_not_a_question_about_a_cold(setup):
    kb, rules, prompts = setup
    names = ConditionNames.load(ROOT / "data" / "condition_names.yaml")
    grounding = Grounding(kb, rules, prompts, top_k=1, names=names)
    user = "out of nowhere I get shaky and hungry and break into a cold sweat, then I feel faint"
    assert names.asked_about(user) is None
    best = prompts.retriever.rank([user])[0][0]
    assert grounding([user], [REPLIES["diagnose"](kb, best, rules)]) == [REPLIES["diagnose"](kb, best, rules)]
    assert names.asked_about("I've had a cold for a week and now a cold sweat at night") == "Common Cold"


def test_every_reply_round_trips_through_its_decision(setup):
    """What a decision model learns (the opening) composes back into the very reply it was cut from, for
    every condition and task of the knowledge base, so training on openings loses nothing the user sees."""
    kb, rules, _ = setup
    replies = [REPLIES[t](kb, d, rules) for t in ("diagnose", "describe", "precautions") for d in kb.diseases]
    replies += [REPLIES[t](kb, "", rules) for t in ("emergency", "refusal", "minor")]
    openings = [decision(r, rules) for r in replies]
    assert Composer(kb, rules)(openings) == replies
    assert all(len(o) < len(r) for o, r in zip(openings, replies))  # always shorter than the reply
    assert decision(REPLIES["diagnose"](kb, "Malaria", rules), rules) == "It sounds most like Malaria."
    assert decision(REPLIES["describe"](kb, "Acne", rules), rules) == "Acne:"
    emergency = decision(REPLIES["emergency"](kb, "", rules), rules)
    assert emergency == rules.emergency and decide(emergency, rules).task == "emergency"


def test_compose_keeps_what_it_cannot_read(setup):
    kb, rules, _ = setup
    assert compose("I am not sure what to say.", kb, rules) == "I am not sure what to say."
    assert compose("It sounds most like Dragon pox.", kb, rules) == "It sounds most like Dragon pox."


def test_a_question_in_everyday_names_is_answered_about_that_condition(setup):
    kb, rules, prompts = setup
    names = ConditionNames.load(ROOT / "data" / "condition_names.yaml")
    question = "my dad was just told he has high blood pressure, what can he do day to day?"
    about_acne = REPLIES["precautions"](kb, "Acne", rules)
    assert Grounding(kb, rules, prompts, top_k=1, names=names)([question], [about_acne]) == [
        REPLIES["precautions"](kb, "Hypertension", rules)
    ]
    # the canonical names alone do not know "high blood pressure": the retriever's best, hedged
    assert Grounding(kb, rules, prompts, top_k=1, names=NO_EVERYDAY_NAMES)([question], [about_acne])[0].startswith(
        HEDGE
    )


def test_the_escalation_bias_lowers_the_emergency_replys_first_token(setup):
    from medchat.model.tokenization import reply_ids, train_bpe_tokenizer

    _, rules, _ = setup
    tokenizer = train_bpe_tokenizer([rules.emergency, rules.refusal, "It sounds most like Malaria."] * 5, 300)
    assert escalation_bias(tokenizer, rules, 0.0) == {}
    bias = escalation_bias(tokenizer, rules, 1.5)
    assert bias == {reply_ids(tokenizer, "hi", rules.emergency)[0]: -1.5}
    assert list(bias) != [reply_ids(tokenizer, "hi", rules.refusal)[0]]  # the refusal opens differently
