"""data/contexts.yaml: each condition's everyday circumstances, their loader and their place in the passages."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

from medchat.data import names
from medchat.data.contexts import load_contexts
from medchat.data.kb import read_kb
from medchat.data.lexicon import Lexicon
from medchat.data.medication import MedicationLexicon
from medchat.errors import InputError
from medchat.retrieval.passages import build_passages
from medchat.retrieval.retrievers import Retriever, RetrieverConfig

CONTEXTS = ROOT / "data" / "contexts.yaml"


def test_every_condition_has_circumstances_that_never_name_it_a_drug_or_a_dose():
    """What people mention may be a kind of medicine ("started a new tablet"), never a named drug or a dose.
    (The phrases only index passages: replies never quote them.)"""
    contexts = load_contexts(CONTEXTS)
    assert set(contexts) == set(names.DISEASES)
    section = yaml.safe_load((ROOT / "data" / "safety" / "rules.yaml").read_text())["medication"]
    drugs = MedicationLexicon.from_section({**section, "classes": ["xqzx"], "remedies": ["xqzx"]}, "rules.yaml")
    for disease, phrases in contexts.items():
        assert len(phrases) >= 10, disease
        for phrase in phrases:
            assert names.parse_disease(phrase) is None, phrase  # a passage must not win by a name in it
            assert not drugs.find(phrase), phrase


def test_an_unknown_condition_or_a_non_list_is_an_error_naming_the_key(tmp_path):
    path = tmp_path / "contexts.yaml"
    path.write_text("contexts:\n  Dragon pox: [after a trip]\n")
    with pytest.raises(InputError) as raised:
        load_contexts(path)
    assert raised.value.key == "contexts.Dragon pox" and raised.value.file == str(path)
    path.write_text("contexts:\n  Malaria: after a trip\n")
    with pytest.raises(InputError, match="list of non-empty phrases"):
        load_contexts(path)


def test_circumstances_let_the_retriever_tell_apart_conditions_with_the_same_symptoms():
    """A new tablet points to a drug reaction, a baby a few days old to newborn jaundice: the symptoms alone
    (an itchy red rash; yellow skin) fit several conditions."""
    rules = ROOT / "data" / "safety" / "rules.yaml"
    kb = read_kb(ROOT / "data" / "raw", MedicationLexicon.from_rules(rules))[0]
    lexicon = Lexicon.load(ROOT / "data" / "lexicon.yaml")
    contexts = load_contexts(CONTEXTS)
    with_contexts = Retriever(build_passages(kb, lexicon, contexts=contexts), RetrieverConfig(char_weight=0.3))
    without = Retriever(build_passages(kb, lexicon), RetrieverConfig(char_weight=0.3))
    assert "Often:" in with_contexts.passages[0].text and "Often:" not in without.passages[0].text
    queries = {
        "itchy red rash all over since I started a new tablet last week": "Drug Reaction",
        "our baby is a few days old and his skin and eyes have gone yellow": "Jaundice",
    }
    assert [r[0] for r in with_contexts.rank(list(queries))] == list(queries.values())
