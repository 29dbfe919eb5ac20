import pytest
from conftest import ROOT

from medchat.data.medication import MedicationLexicon


@pytest.fixture(scope="module")
def lexicon():
    return MedicationLexicon.from_rules(ROOT / "data" / "safety" / "rules.yaml")


@pytest.mark.parametrize(
    "text, hit",
    [
        ("chew or swallow asprin", "asprin"),
        ("use antibiotics", "antibiotics"),
        ("antiboitic therapy", "antiboitic"),
        ("medication", "medication"),
        ("take otc pain reliver", "pain reliver"),
        ("Take 500 mg every 6 hours", "500 mg"),
        ("the usual dosage is low", "dosage"),
        ("apply Calamine lotion", "calamine"),
        ("consume witch hazel", "witch hazel"),
    ],
)
def test_medication_advice_is_found(lexicon, text, hit):
    assert hit in lexicon.find(text)


@pytest.mark.parametrize(
    "text",
    [
        "see a doctor for testing and a treatment plan",
        "wash your face gently twice a day",
        "drink plenty of water",
        "ask a clinician about vaccination",
        "avoid drugstore queues",  # 'drug' inside a longer word is not a match
    ],
)
def test_ordinary_advice_is_not_flagged(lexicon, text):
    assert lexicon.find(text) == []


def test_missing_section_is_an_error(tmp_path):
    from medchat.errors import InputError

    path = tmp_path / "rules.yaml"
    path.write_text("referral: see a doctor\n")
    with pytest.raises(InputError, match="medication"):
        MedicationLexicon.from_rules(path)
