"""Everyday names of the conditions: the file loads and is unambiguous, and messages are read by them."""

from __future__ import annotations

import pytest
from conftest import ROOT

from medchat.data import names
from medchat.data.condition_names import ConditionNames
from medchat.errors import InputError

NAMES_FILE = ROOT / "data" / "condition_names.yaml"


@pytest.fixture(scope="module")
def condition_names():
    return ConditionNames.load(NAMES_FILE)


def test_the_shipped_file_names_every_condition_and_no_name_names_two(condition_names):
    assert set(condition_names.everyday) == set(names.DISEASES)
    assert all(condition_names.everyday[d] for d in names.DISEASES)
    for disease, aliases in condition_names.everyday.items():
        for alias in aliases:
            # a name that a reply parser reads as another condition would send the question elsewhere
            assert names.canonical_disease(alias) in (None, disease), alias
            assert condition_names.asked_about(f"what is {alias}?") == disease, alias


def test_messages_are_read_by_canonical_names_misspellings_and_everyday_names(condition_names):
    assert condition_names.asked_about("What is Psoriasis, is it contagious?") == "Psoriasis"
    assert condition_names.asked_about("what is peptic ulcer diseae") == "Peptic ulcer disease"  # the Kaggle typo
    assert condition_names.asked_about("how do I lower my high blood pressure") == "Hypertension"
    assert condition_names.asked_about("my mum has osteoarthritis in her knees") == "Osteoarthritis"
    assert condition_names.asked_about("I\u2019ve got a really itchy rash and a temperature") is None
    assert condition_names.asked_about("") is None


def test_the_first_name_in_a_message_wins_and_the_longest_at_one_place():
    made_up = ConditionNames({"Hepatitis B": ("hep b",), "Hepatitis D": ("hep d",), "Arthritis": ("joint disease",)})
    assert made_up.asked_about("My brother has hep B and now hep D too") == "Hepatitis B"
    assert made_up.asked_about("what is hep  d?") == "Hepatitis D"  # whitespace is folded
    assert made_up.asked_about("is osteoarthritis a joint disease") == "Osteoarthritis"  # not "arthritis"


def test_a_not_name_hides_the_name_inside_it_and_the_search_goes_on():
    made_up = ConditionNames({"Common Cold": ("a cold",), "Hypoglycemia": ("a hypo",)}, not_names=("a cold sweat",))
    assert made_up.asked_about("I broke out in a cold sweat") is None
    assert made_up.asked_about("I broke out in a cold sweat, is it a hypo?") == "Hypoglycemia"
    assert made_up.asked_about("is it a cold?") == "Common Cold"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("version: 1\n", "expected a 'conditions' mapping"),
        ("conditions:\n  Dragon pox: [scales]\n", "not a known condition"),
        ("conditions:\n  Malaria: marsh fever\n", "expected a list of non-empty names"),
        ("conditions:\n  Hepatitis B: [hepatitis]\n  Hepatitis C: [Hepatitis]\n", "also names Hepatitis B"),
        ("conditions:\n  Malaria: [marsh fever]\nnot_names: cold sweat\n", "expected a list of non-empty phrases"),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path, text, error):
    path = tmp_path / "condition_names.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=error) as caught:
        ConditionNames.load(path)
    assert str(path) in str(caught.value)
    with pytest.raises(InputError, match="condition names not found"):
        ConditionNames.load(tmp_path / "missing.yaml")
