"""The one canonical vocabulary: 41 diseases, 131 symptoms, and every published misspelling.

Everything else in the package gets disease and symptom names from here, never from string
literals, so a typo in one module cannot silently create a 42nd disease.

Matching is two-step: a *key* (case-folded, whitespace collapsed, spaces around underscores
removed) absorbs the harmless noise of the Kaggle files; the explicit alias tables below map
keys that are genuinely different spellings. Anything else is unknown and the caller decides
whether that is an error.
"""

from __future__ import annotations

import functools
import re

DISEASES: tuple[str, ...] = (
    "Fungal infection",
    "Allergy",
    "GERD",
    "Chronic cholestasis",
    "Drug Reaction",
    "Peptic ulcer disease",
    "AIDS",
    "Diabetes",
    "Gastroenteritis",
    "Bronchial Asthma",
    "Hypertension",
    "Migraine",
    "Cervical spondylosis",
    "Paralysis (brain hemorrhage)",
    "Jaundice",
    "Malaria",
    "Chicken pox",
    "Dengue",
    "Typhoid",
    "Hepatitis A",
    "Hepatitis B",
    "Hepatitis C",
    "Hepatitis D",
    "Hepatitis E",
    "Alcoholic hepatitis",
    "Tuberculosis",
    "Common Cold",
    "Pneumonia",
    "Dimorphic hemorrhoids (piles)",
    "Heart attack",
    "Varicose veins",
    "Hypothyroidism",
    "Hyperthyroidism",
    "Hypoglycemia",
    "Osteoarthritis",
    "Arthritis",
    "Paroxysmal Positional Vertigo",
    "Acne",
    "Urinary tract infection",
    "Psoriasis",
    "Impetigo",
)

# Spellings seen in the published files (and common user spellings) -> canonical name.
# Case and whitespace differences ("Diabetes ", "hepatitis A") need no entry: the key absorbs them.
DISEASE_ALIASES: dict[str, str] = {
    "Peptic ulcer diseae": "Peptic ulcer disease",
    "Dimorphic hemmorhoids(piles)": "Dimorphic hemorrhoids (piles)",
    "Osteoarthristis": "Osteoarthritis",
    "(vertigo) Paroymsal  Positional Vertigo": "Paroxysmal Positional Vertigo",
    "(vertigo) Paroxysmal Positional Vertigo": "Paroxysmal Positional Vertigo",
    "Benign paroxysmal positional vertigo": "Paroxysmal Positional Vertigo",
    "Vertigo": "Paroxysmal Positional Vertigo",
    "Chickenpox": "Chicken pox",
    "Piles": "Dimorphic hemorrhoids (piles)",
    "Hemorrhoids": "Dimorphic hemorrhoids (piles)",
    "Brain hemorrhage": "Paralysis (brain hemorrhage)",
    "Common cold": "Common Cold",
    "Asthma": "Bronchial Asthma",
    "UTI": "Urinary tract infection",
    "Peptic ulcer": "Peptic ulcer disease",
    "Heart attack (myocardial infarction)": "Heart attack",
}

SYMPTOMS: tuple[str, ...] = (
    "abdominal_pain",
    "abnormal_menstruation",
    "acidity",
    "acute_liver_failure",
    "altered_sensorium",
    "anxiety",
    "back_pain",
    "belly_pain",
    "blackheads",
    "bladder_discomfort",
    "blister",
    "blood_in_sputum",
    "bloody_stool",
    "blurred_and_distorted_vision",
    "breathlessness",
    "brittle_nails",
    "bruising",
    "burning_micturition",
    "chest_pain",
    "chills",
    "cold_hands_and_feets",
    "coma",
    "congestion",
    "constipation",
    "continuous_feel_of_urine",
    "continuous_sneezing",
    "cough",
    "cramps",
    "dark_urine",
    "dehydration",
    "depression",
    "diarrhoea",
    "dischromic_patches",
    "distention_of_abdomen",
    "dizziness",
    "drying_and_tingling_lips",
    "enlarged_thyroid",
    "excessive_hunger",
    "extra_marital_contacts",
    "family_history",
    "fast_heart_rate",
    "fatigue",
    "fluid_overload",
    "foul_smell_of_urine",
    "headache",
    "high_fever",
    "hip_joint_pain",
    "history_of_alcohol_consumption",
    "increased_appetite",
    "indigestion",
    "inflammatory_nails",
    "internal_itching",
    "irregular_sugar_level",
    "irritability",
    "irritation_in_anus",
    "itching",
    "joint_pain",
    "knee_pain",
    "lack_of_concentration",
    "lethargy",
    "loss_of_appetite",
    "loss_of_balance",
    "loss_of_smell",
    "malaise",
    "mild_fever",
    "mood_swings",
    "movement_stiffness",
    "mucoid_sputum",
    "muscle_pain",
    "muscle_wasting",
    "muscle_weakness",
    "nausea",
    "neck_pain",
    "nodal_skin_eruptions",
    "obesity",
    "pain_behind_the_eyes",
    "pain_during_bowel_movements",
    "pain_in_anal_region",
    "painful_walking",
    "palpitations",
    "passage_of_gases",
    "patches_in_throat",
    "phlegm",
    "polyuria",
    "prominent_veins_on_calf",
    "puffy_face_and_eyes",
    "pus_filled_pimples",
    "receiving_blood_transfusion",
    "receiving_unsterile_injections",
    "red_sore_around_nose",
    "red_spots_over_body",
    "redness_of_eyes",
    "restlessness",
    "runny_nose",
    "rusty_sputum",
    "scurring",
    "shivering",
    "silver_like_dusting",
    "sinus_pressure",
    "skin_peeling",
    "skin_rash",
    "slurred_speech",
    "small_dents_in_nails",
    "spinning_movements",
    "spotting_urination",
    "stiff_neck",
    "stomach_bleeding",
    "stomach_pain",
    "sunken_eyes",
    "sweating",
    "swelled_lymph_nodes",
    "swelling_joints",
    "swelling_of_stomach",
    "swollen_blood_vessels",
    "swollen_extremeties",
    "swollen_legs",
    "throat_irritation",
    "toxic_look_(typhos)",
    "ulcers_on_tongue",
    "unsteadiness",
    "visual_disturbances",
    "vomiting",
    "watering_from_eyes",
    "weakness_in_limbs",
    "weakness_of_one_body_side",
    "weight_gain",
    "weight_loss",
    "yellow_crust_ooze",
    "yellow_urine",
    "yellowing_of_eyes",
    "yellowish_skin",
)

# Symptom spellings that the key alone does not repair (the severity table drops an underscore).
SYMPTOM_ALIASES: dict[str, str] = {
    "foul_smell_ofurine": "foul_smell_of_urine",
    "cold_hands_and_feet": "cold_hands_and_feets",
    "scarring": "scurring",
    "swollen_lymph_nodes": "swelled_lymph_nodes",
    "swollen_extremities": "swollen_extremeties",
    "diarrhea": "diarrhoea",
}

# Emergency conditions: a diagnose reply for these escalates instead of suggesting self-care first.
EMERGENCY_DISEASES: frozenset[str] = frozenset({"Heart attack", "Paralysis (brain hemorrhage)"})


# Cached: a Kaggle file repeats a few hundred spellings across thousands of rows (millions at 100x).
@functools.lru_cache(maxsize=1 << 16)
def disease_key(name: str) -> str:
    """Case- and whitespace-insensitive key; "(piles)" and "( piles )" compare equal."""
    key = " ".join(name.split()).casefold()
    return re.sub(r"\s*([()])\s*", r"\1", key)


@functools.lru_cache(maxsize=1 << 16)
def symptom_key(name: str) -> str:
    """`' dischromic _patches'` -> `dischromic_patches`; `'foul_smell_of urine'` -> `foul_smell_of_urine`."""
    key = name.strip().casefold()
    key = re.sub(r"\s*_\s*", "_", key)
    return re.sub(r"\s+", "_", key)


_DISEASE_BY_KEY: dict[str, str] = {disease_key(d): d for d in DISEASES}
_DISEASE_BY_KEY.update({disease_key(a): c for a, c in DISEASE_ALIASES.items()})
_SYMPTOM_BY_KEY: dict[str, str] = {symptom_key(s): s for s in SYMPTOMS}
_SYMPTOM_BY_KEY.update({symptom_key(a): c for a, c in SYMPTOM_ALIASES.items()})


def canonical_disease(name: str) -> str | None:
    """The canonical disease for any known spelling, or None."""
    return _DISEASE_BY_KEY.get(disease_key(name))


def canonical_symptom(name: str) -> str | None:
    """The canonical symptom for any known spelling, or None."""
    return _SYMPTOM_BY_KEY.get(symptom_key(name))


def disease_spellings() -> dict[str, str]:
    """Every spelling we know (canonical names and aliases) -> canonical name, for text search."""
    spellings = {d: d for d in DISEASES}
    spellings.update(DISEASE_ALIASES)
    return spellings


# --- reading diseases out of text -----------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _disease_pattern() -> re.Pattern:
    spellings = sorted(disease_spellings(), key=len, reverse=True)  # longest first: "Hepatitis A" before "Hepatitis"
    return re.compile(
        r"(?<!\w)(" + "|".join(re.escape(s).replace(r"\ ", r"\s+") for s in spellings) + r")(?!\w)", re.IGNORECASE
    )


def parse_diseases(reply: str) -> list[str]:
    """Canonical diseases named in a reply, in order of first mention."""
    found: list[str] = []
    for match in _disease_pattern().finditer(reply):
        disease = canonical_disease(match.group(1))
        if disease and disease not in found:
            found.append(disease)
    return found


def parse_disease(reply: str) -> str | None:
    """The disease a reply names first (our replies name the likely one first), or None."""
    found = parse_diseases(reply)
    return found[0] if found else None
