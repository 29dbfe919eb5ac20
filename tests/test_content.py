"""Our embedded knowledge base and lexicon: complete, in the Kaggle schema, factually anchored, safe."""

import csv
import re
from collections import defaultdict

import pytest
import yaml
from conftest import ROOT, kaggle_dir

from medchat.data import names
from medchat.data.lexicon import Lexicon
from medchat.data.medication import MedicationLexicon

RAW = ROOT / "data" / "raw"
REFERRAL = re.compile(r"\b(doctor|clinician|emergency|medical care|dermatologist|physiotherapist)\b", re.I)


def rows(name):
    with open(RAW / name, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def embedded_sets():
    sets = defaultdict(list)
    for disease, *symptoms in rows("dataset.csv")[1:]:
        sets[disease].append({s for s in symptoms if s})
    return sets


def test_schema_matches_kaggle_with_header_rows():
    assert rows("dataset.csv")[0] == ["Disease"] + [f"Symptom_{i}" for i in range(1, 18)]
    assert rows("symptom_Description.csv")[0] == ["Disease", "Description"]
    assert rows("symptom_precaution.csv")[0] == ["Disease"] + [f"Precaution_{i}" for i in range(1, 5)]
    assert rows("Symptom-severity.csv")[0] == ["Symptom", "weight"]


def test_five_to_ten_distinct_sets_per_disease_using_canonical_names():
    sets = embedded_sets()
    assert list(sets) == list(names.DISEASES)
    for disease, found in sets.items():
        assert 5 <= len(found) <= 10, disease
        assert len({frozenset(s) for s in found}) == len(found), disease
        assert all(s in names.SYMPTOMS for st in found for s in st)


def test_associations_are_the_real_ones():
    """Every symptom we list for a disease is one the published data associates with it, and vice versa."""
    real = defaultdict(set)
    with open(kaggle_dir("headered") / "dataset.csv", encoding="utf-8", newline="") as handle:
        for disease, *symptoms in list(csv.reader(handle))[1:]:
            real[names.canonical_disease(disease)] |= {names.canonical_symptom(s) for s in symptoms if s.strip()}
    for disease, found in embedded_sets().items():
        assert set().union(*found) == real[disease], disease


def test_severity_weights_cover_every_symptom_once():
    weights = {s: int(w) for s, w in rows("Symptom-severity.csv")[1:]}
    assert set(weights) == set(names.SYMPTOMS) and len(rows("Symptom-severity.csv")) == 132
    assert all(1 <= w <= 7 for w in weights.values())


def test_descriptions_and_precautions_are_ours_and_safe():
    medication = MedicationLexicon.from_rules(ROOT / "data" / "safety" / "rules.yaml")
    descriptions = dict(rows("symptom_Description.csv")[1:])
    precautions = {r[0]: r[1:] for r in rows("symptom_precaution.csv")[1:]}
    assert list(descriptions) == list(precautions) == list(names.DISEASES)
    for disease in names.DISEASES:
        text = descriptions[disease]
        assert 2 <= len(re.findall(r"[.!?](\s|$)", text)) <= 4, disease
        assert medication.find(text) == [], disease
        steps = precautions[disease]
        assert len(steps) == 4 and all(steps), disease
        assert any(REFERRAL.search(p) for p in steps), f"{disease}: no clinician referral"
        assert all(medication.find(p) == [] for p in steps), disease
    for disease in names.EMERGENCY_DISEASES:
        assert "emergency" in precautions[disease][0]


def test_sentences_are_not_copied_from_kaggle():
    with open(kaggle_dir("headered") / "symptom_Description.csv", encoding="utf-8", newline="") as handle:
        theirs = " ".join(r[1] for r in list(csv.reader(handle))[1:]).lower()
    for disease, text in rows("symptom_Description.csv")[1:]:
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            assert sentence.lower().rstrip(".") not in theirs, (disease, sentence)


def test_lexicon_covers_every_symptom_with_distinct_everyday_phrasings():
    lexicon = Lexicon.load(ROOT / "data" / "lexicon.yaml")
    assert set(lexicon.labels) == set(names.SYMPTOMS)
    every = [p.casefold() for ps in lexicon.phrasings.values() for p in ps]
    assert len(every) == len(set(every))
    for symptom, phrasings in lexicon.phrasings.items():
        assert len(phrasings) >= 5, symptom
        assert all(not p.endswith((".", "?", "!", ",")) for p in phrasings), symptom
    assert lexicon.labels["cold_hands_and_feets"] == "cold hands and feet"


def test_lexicon_errors_name_the_entry(tmp_path):
    from medchat.errors import InputError

    data = yaml.safe_load((ROOT / "data" / "lexicon.yaml").read_text())
    data["symptoms"]["itchyness"] = data["symptoms"].pop("itching")
    path = tmp_path / "lexicon.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=r"\[symptoms.itchyness\]: not a known symptom"):
        Lexicon.load(path)
