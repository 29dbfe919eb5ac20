"""The knowledge base reader on our embedded files, on both real Kaggle variants, and on bad input."""

import json
import shutil

import pytest
from conftest import ROOT, kaggle_dir, run_stage, set_params

from medchat.data import names
from medchat.data.kb import load_tidy, read_kb, write_tidy
from medchat.data.medication import MedicationLexicon


@pytest.fixture(scope="module")
def medication():
    return MedicationLexicon.from_rules(ROOT / "data" / "safety" / "rules.yaml")


def test_embedded_kb_is_complete_and_clean(medication):
    kb, report = read_kb(ROOT / "data" / "raw", medication)
    assert kb.diseases == list(names.DISEASES)
    assert {s for st in kb.symptom_sets for s in st.symptoms} == set(names.SYMPTOMS)
    assert set(kb.severity) == set(names.SYMPTOMS)
    assert report.counts["precautions_flagged"] == 0
    assert report.counts["aliases_applied"] == report.counts["names_repaired"] == 0


@pytest.mark.parametrize("variant", ["headerless", "headered"])
def test_real_kaggle_files(variant, medication):
    kb, report = read_kb(kaggle_dir(variant), medication)
    c = report.counts
    assert (c["rows_in"], c["unique_rows"], c["duplicates_dropped"]) == (4920, 304, 4616)
    assert kb.diseases == list(names.DISEASES)
    assert c["symptoms"] == 131
    assert all(kb.descriptions[d] and kb.precautions[d] for d in kb.diseases)
    # explicit aliases were needed (not just whitespace fixes), and recorded
    assert c["aliases_applied"] > 0
    repairs = report.repairs["disease"]
    assert repairs["Peptic ulcer diseae"] == "Peptic ulcer disease"
    assert repairs["(vertigo) Paroymsal  Positional Vertigo"] == "Paroxysmal Positional Vertigo"
    assert repairs["Diabetes "] == "Diabetes"
    assert report.repairs["symptom"][" dischromic _patches"] == "dischromic_patches"
    assert kb.severity["foul_smell_of_urine"] == 5
    # fluid_overload is listed with weights 6 and 4: the rule keeps the highest
    assert kb.severity["fluid_overload"] == 6
    assert c["severity_conflicts_resolved"] == 1
    # medication advice never reaches a training target
    flagged = {p.text for d in kb.diseases for p in kb.precautions[d] if p.flagged}
    assert {"chew or swallow asprin", "use antibiotics", "medication"} <= flagged
    assert "chew or swallow asprin" not in kb.safe_precautions("Heart attack")
    assert "call ambulance" in kb.safe_precautions("Heart attack")


def test_tidy_round_trip(tmp_path, medication):
    kb, _ = read_kb(ROOT / "data" / "raw", medication)
    write_tidy(kb, tmp_path)
    again = load_tidy(tmp_path)
    assert again.symptom_sets == kb.symptom_sets
    assert again.descriptions == kb.descriptions
    assert again.precautions == kb.precautions
    assert again.severity == kb.severity


# --- bad input: one clear error line, non-zero exit, nothing written --------------------------------


def _edit(path, transform):
    path.write_text(transform(path.read_text(encoding="utf-8")), encoding="utf-8")


def _replace(old, new):
    return lambda text: text.replace(old, new, 1)


BAD_INPUT = {
    "missing file": (lambda raw: (raw / "dataset.csv").unlink(), "dataset.csv: file not found"),
    "missing severity file": (
        lambda raw: (raw / "Symptom-severity.csv").unlink(),
        "Symptom-severity.csv: file not found",
    ),
    "empty file": (
        lambda raw: (raw / "symptom_Description.csv").write_text(""),
        "symptom_Description.csv: file is empty",
    ),
    "renamed column": (
        lambda raw: _edit(raw / "dataset.csv", _replace("Disease,", "Illness,")),
        "dataset.csv:1: column 1 of the header is 'Illness', expected 'Disease'",
    ),
    "missing column": (
        lambda raw: _edit(raw / "symptom_precaution.csv", _replace(",Precaution_4", "")),
        "symptom_precaution.csv:1: column 5 of the header is nothing, expected 'Precaution_4'",
    ),
    "non-utf8 bytes": (
        lambda raw: (raw / "dataset.csv").write_bytes(
            (raw / "dataset.csv").read_bytes().replace(b"Malaria", b"Mal\xe9ria", 1)
        ),
        "is not valid UTF-8",
    ),
    "unknown disease in side file": (
        lambda raw: _edit(raw / "symptom_Description.csv", _replace("\nAllergy,", "\nFlu,")),
        "symptom_Description.csv:3: unknown disease 'Flu'",
    ),
    "unknown symptom": (
        lambda raw: _edit(raw / "dataset.csv", _replace("skin_rash", "skin_rashh")),
        "dataset.csv:2: unknown symptom 'skin_rashh'",
    ),
    "symptom without severity": (
        lambda raw: _edit(raw / "Symptom-severity.csv", _replace("\nitching,1", "")),
        "symptom 'itching' has no weight in the severity table",
    ),
    "weight not a number": (
        lambda raw: _edit(raw / "Symptom-severity.csv", _replace("\nitching,1", "\nitching,high")),
        "weight 'high' for 'itching' is not a whole number",
    ),
    "disease without description": (
        lambda raw: _edit(
            raw / "symptom_Description.csv",
            lambda t: "\n".join(row for row in t.split("\n") if not row.startswith("Malaria,")),
        ),
        "disease 'Malaria' from dataset.csv has no entry here",
    ),
    "one set, two diseases": (
        lambda raw: _edit(raw / "dataset.csv", lambda t: t + "Allergy,itching,skin_rash,nodal_skin_eruptions\n"),
        "labelled 'Allergy' here and 'Fungal infection'",
    ),
    "too many columns": (
        lambda raw: _edit(raw / "dataset.csv", lambda t: t + "Malaria,chills" + ",x" * 20 + "\n"),
        "columns, expected at most 18",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_cleanly(case, workdir):
    corrupt, message = BAD_INPUT[case]
    corrupt(workdir / "data" / "raw")
    result = run_stage("clean", workdir, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clean: error: "), result.stderr
    assert message in lines[0]
    assert "(fix:" in lines[0]
    assert not (workdir / "data" / "clean").exists()
    assert not (workdir / "metrics").exists()


def test_missing_raw_dir_is_an_error(workdir):
    set_params(workdir, {"clean": {"raw_dir": "no/such/folder"}})
    result = run_stage("clean", workdir, check=False)
    assert result.returncode == 1 and "raw data folder not found" in result.stderr


def test_droppable_rows_are_counted_warnings(workdir):
    raw = workdir / "data" / "raw"
    _edit(raw / "dataset.csv", lambda t: t + "Malaria" + "," * 17 + "\n" + "Malaria,chills,chills,vomiting\n")
    _edit(raw / "Symptom-severity.csv", lambda t: t + "prognosis,5\nitching,4\n")
    result = run_stage("clean", workdir)
    metrics = json.loads((workdir / "metrics" / "clean.json").read_text())
    assert metrics["rows_without_symptoms"] == 1
    assert metrics["repeated_symptoms_dropped"] == 1
    assert metrics["severity_unknown_dropped"] == 1
    assert metrics["severity_conflicts_resolved"] == 1
    assert "warning: severity unknown dropped: 1" in result.stderr
    assert (workdir / "data" / "clean" / "severity.csv").read_text().count("\nitching,4\n") == 1


def test_header_less_variant_without_blank_first_row(workdir):
    raw = workdir / "data" / "raw"
    for name in ("dataset.csv", "symptom_Description.csv", "symptom_precaution.csv", "Symptom-severity.csv"):
        _edit(raw / name, lambda t: t.split("\n", 1)[1])
    run_stage("clean", workdir)
    assert json.loads((workdir / "metrics" / "clean.json").read_text())["unique_rows"] == 317


def test_clean_stage_on_a_kaggle_download(workdir):
    raw = workdir / "kaggle"
    shutil.copytree(kaggle_dir("headerless"), raw)
    set_params(workdir, {"clean": {"raw_dir": str(raw)}})
    run_stage("clean", workdir)
    metrics = json.loads((workdir / "metrics" / "clean.json").read_text())
    assert metrics["unique_rows"] == 304 and metrics["precautions_flagged"] > 0
    repairs = json.loads((workdir / "data" / "clean" / "repairs.json").read_text())
    assert repairs["disease"]["Osteoarthristis"] == "Osteoarthritis"
