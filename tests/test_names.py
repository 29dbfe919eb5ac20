from medchat.data import names


def test_vocabulary_sizes_and_uniqueness():
    assert len(names.DISEASES) == len(set(names.DISEASES)) == 41
    assert len(names.SYMPTOMS) == len(set(names.SYMPTOMS)) == 131


def test_every_alias_points_to_a_canonical_name():
    assert set(names.DISEASE_ALIASES.values()) <= set(names.DISEASES)
    assert set(names.SYMPTOM_ALIASES.values()) <= set(names.SYMPTOMS)
    assert names.EMERGENCY_DISEASES <= set(names.DISEASES)


def test_published_disease_spellings_map_to_canonical():
    published = {
        "Peptic ulcer diseae": "Peptic ulcer disease",
        "Diabetes ": "Diabetes",
        "Hypertension ": "Hypertension",
        "Dimorphic hemmorhoids(piles)": "Dimorphic hemorrhoids (piles)",
        "Dimorphic hemorrhoids(piles)": "Dimorphic hemorrhoids (piles)",
        "Osteoarthristis": "Osteoarthritis",
        "(vertigo) Paroymsal  Positional Vertigo": "Paroxysmal Positional Vertigo",
        "hepatitis A": "Hepatitis A",
        " Fungal infection": "Fungal infection",
    }
    for raw, canonical in published.items():
        assert names.canonical_disease(raw) == canonical, raw


def test_published_symptom_spellings_map_to_canonical():
    published = {
        " dischromic _patches": "dischromic_patches",
        " spotting_ urination": "spotting_urination",
        " foul_smell_of urine": "foul_smell_of_urine",
        "foul_smell_ofurine": "foul_smell_of_urine",
        " Skin_Rash ": "skin_rash",
        "itching": "itching",
    }
    for raw, canonical in published.items():
        assert names.canonical_symptom(raw) == canonical, raw


def test_unknown_names_are_not_guessed():
    assert names.canonical_disease("Flu") is None
    assert names.canonical_symptom("prognosis") is None
    assert names.canonical_symptom("itchingg") is None
