"""The knowledge base: read the four Kaggle-schema files, repair names, validate joins.

Accepts both published variants: with a header row, or without one (where `dataset.csv`
starts with an empty row). What is an error and what is a counted warning:

errors (stop the stage, nothing written)
    missing, empty or non-UTF-8 file; a header that is not the expected one; a row with too many
    columns; an unknown disease in any file; an unknown symptom in dataset.csv; a dataset symptom
    with no severity weight; a weight that is not a whole number; a disease in dataset.csv with no
    description or no precautions; two different descriptions for one disease; one symptom set
    labelled with two diseases.
warnings (the row or cell is dropped or fixed, and counted in metrics/clean.json)
    a dataset row with no symptoms; a symptom repeated within a row; a severity entry for a name
    that is not a symptom (Kaggle's `prognosis`); a symptom weighted twice (rule: keep the highest
    weight, so no symptom is ever under-weighted; Kaggle's `fluid_overload` is 6 and 4); an empty
    precaution cell; a repeated description or precaution row with the same text.
flags (kept in the tidy files, excluded from training targets)
    precautions that are medication or treatment advice (medication.MedicationLexicon).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medchat.data import names
from medchat.data.medication import MedicationLexicon
from medchat.errors import InputError

DATASET = "dataset.csv"
DESCRIPTIONS = "symptom_Description.csv"
PRECAUTIONS = "symptom_precaution.csv"
SEVERITY_NAMES = ("Symptom-severity.csv", "Symptom_severity.csv")  # both published spellings
MAX_SYMPTOMS = 17
HEADERS = {
    DATASET: ["Disease"] + [f"Symptom_{i}" for i in range(1, MAX_SYMPTOMS + 1)],
    DESCRIPTIONS: ["Disease", "Description"],
    PRECAUTIONS: ["Disease"] + [f"Precaution_{i}" for i in range(1, 5)],
    "severity": ["Symptom", "weight"],
}
FIX_UNKNOWN_NAME = "add the spelling to the alias table in src/medchat/names.py"


@dataclass(frozen=True)
class SymptomSet:
    disease: str
    symptoms: tuple[str, ...]  # canonical names, sorted
    rows: int = 1  # raw rows that collapsed into this set

    @property
    def group(self) -> str:
        """The split's group key: the canonical symptom set itself."""
        return "+".join(self.symptoms)


@dataclass(frozen=True)
class Precaution:
    text: str
    medication_terms: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.medication_terms)


@dataclass
class KnowledgeBase:
    symptom_sets: list[SymptomSet]
    descriptions: dict[str, str]
    precautions: dict[str, list[Precaution]]
    severity: dict[str, int]

    @property
    def diseases(self) -> list[str]:
        present = {s.disease for s in self.symptom_sets}
        return [d for d in names.DISEASES if d in present]

    def safe_precautions(self, disease: str) -> list[str]:
        """Precautions that may appear in a training target (no medication advice)."""
        return [p.text for p in self.precautions[disease] if not p.flagged]


@dataclass
class CleanReport:
    counts: Counter = field(default_factory=Counter)
    repairs: dict[str, dict[str, str]] = field(default_factory=lambda: {"disease": {}, "symptom": {}})

    def name(self, kind: str, raw: str, canonical: str) -> None:
        """Count how a raw name became canonical: unchanged, repaired (case/space) or aliased."""
        if raw == canonical:
            return
        key = names.disease_key if kind == "disease" else names.symptom_key
        self.counts["aliases_applied" if key(raw) != key(canonical) else "names_repaired"] += 1
        self.repairs[kind][raw] = canonical


def read_kb(raw_dir: str | Path, medication: MedicationLexicon) -> tuple[KnowledgeBase, CleanReport]:
    """Read, repair and validate the four files under `raw_dir`."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError(
            "raw data folder not found",
            file=str(raw_dir),
            fix="set clean.raw_dir to a folder holding the four Kaggle CSV files",
        )
    report = CleanReport()
    severity = _read_severity(_severity_path(raw_dir), report)
    sets = _read_dataset(raw_dir / DATASET, severity, report)
    descriptions = _read_descriptions(raw_dir / DESCRIPTIONS, report)
    precautions = _read_precautions(raw_dir / PRECAUTIONS, medication, report)
    for disease in sorted({s.disease for s in sets}, key=names.DISEASES.index):
        for path, table in ((DESCRIPTIONS, descriptions), (PRECAUTIONS, precautions)):
            if not table.get(disease):
                raise InputError(
                    f"disease {disease!r} from {DATASET} has no entry here",
                    file=str(raw_dir / path),
                    fix=f"add a row for {disease!r}",
                )
    report.counts["diseases"] = len({s.disease for s in sets})
    report.counts["symptoms"] = len({sym for s in sets for sym in s.symptoms})
    report.counts["precautions_flagged"] = sum(p.flagged for ps in precautions.values() for p in ps)
    return KnowledgeBase(sets, descriptions, precautions, severity), report


def _severity_path(raw_dir: Path) -> Path:
    for name in SEVERITY_NAMES:
        if (raw_dir / name).exists():
            return raw_dir / name
    raise InputError(
        "file not found",
        file=str(raw_dir / SEVERITY_NAMES[0]),
        fix=f"add {SEVERITY_NAMES[0]} (Symptom,weight) to the raw folder",
    )


def _read_rows(path: Path, header: list[str], is_known) -> list[tuple[int, list[str]]]:
    """(line number, cells) for every data row; detects and checks the header variant."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", file=str(path), fix="check clean.raw_dir and the file name") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"byte 0x{data[exc.start]:02x} is not valid UTF-8",
            file=str(path),
            row=line,
            fix="re-save the file as UTF-8",
        ) from None
    reader = csv.reader(io.StringIO(text))
    rows = [(reader.line_num, cells) for cells in reader]
    if not any(cell.strip() for _, cells in rows for cell in cells):
        raise InputError("file is empty", file=str(path), fix="restore the file from the download")
    first_line, first = rows[0]
    if not any(cell.strip() for cell in first):
        rows = rows[1:]  # the header-less variant starts with an empty row
    elif not is_known(first[0]):
        _check_header(path, first, header)
        rows = rows[1:]
    out = []
    for line, cells in rows:
        while cells and not cells[-1].strip() and len(cells) > len(header):
            cells = cells[:-1]  # trailing empty cells from spreadsheet exports
        if len(cells) > len(header):
            raise InputError(
                f"{len(cells)} columns, expected at most {len(header)}",
                file=str(path),
                row=line,
                fix=f"columns are {', '.join(header)}",
            )
        if any(cell.strip() for cell in cells):
            out.append((line, cells + [""] * (len(header) - len(cells))))
    return out


def _check_header(path: Path, got: list[str], want: list[str]) -> None:
    norm = [names.symptom_key(c) for c in got]
    for i, column in enumerate(want):
        if i >= len(norm) or norm[i] != names.symptom_key(column):
            found = repr(got[i]) if i < len(got) else "nothing"
            raise InputError(
                f"column {i + 1} of the header is {found}, expected {column!r}",
                file=str(path),
                row=1,
                fix=f"the header must be {','.join(want)} (or no header at all)",
            )


def _disease(raw: str, path: Path, line: int, report: CleanReport) -> str:
    canonical = names.canonical_disease(raw)
    if canonical is None:
        raise InputError(f"unknown disease {raw.strip()!r}", file=str(path), row=line, fix=FIX_UNKNOWN_NAME)
    report.name("disease", raw, canonical)
    return canonical


def _read_severity(path: Path, report: CleanReport) -> dict[str, int]:
    weights: dict[str, int] = {}
    for line, (raw, weight) in _read_rows(path, HEADERS["severity"], lambda c: names.canonical_symptom(c) is not None):
        symptom = names.canonical_symptom(raw)
        if symptom is None:
            report.counts["severity_unknown_dropped"] += 1
            continue
        report.name("symptom", raw, symptom)
        try:
            value = int(weight.strip())
        except ValueError:
            raise InputError(
                f"weight {weight!r} for {raw.strip()!r} is not a whole number",
                file=str(path),
                row=line,
                fix="use an integer weight such as 1..7",
            ) from None
        if value < 0:
            raise InputError(f"weight {value} for {symptom!r} is negative", file=str(path), row=line)
        if symptom in weights:
            report.counts["severity_conflicts_resolved"] += weights[symptom] != value
            report.counts["severity_duplicates_dropped"] += 1
            value = max(value, weights[symptom])
        weights[symptom] = value
    return weights


def _read_dataset(path: Path, severity: dict[str, int], report: CleanReport) -> list[SymptomSet]:
    first_row: dict[frozenset, tuple[str, int]] = {}
    counts: Counter = Counter()
    for line, (raw_disease, *cells) in _read_rows(
        path, HEADERS[DATASET], lambda c: names.canonical_disease(c) is not None
    ):
        report.counts["rows_in"] += 1
        disease = _disease(raw_disease, path, line, report)
        symptoms = []
        for raw in (c for c in cells if c.strip()):
            symptom = names.canonical_symptom(raw)
            if symptom is None:
                raise InputError(f"unknown symptom {raw.strip()!r}", file=str(path), row=line, fix=FIX_UNKNOWN_NAME)
            report.name("symptom", raw, symptom)
            if symptom not in severity:
                raise InputError(
                    f"symptom {symptom!r} has no weight in the severity table",
                    file=str(path),
                    row=line,
                    fix=f"add '{symptom},<weight>' to {SEVERITY_NAMES[0]}",
                )
            if symptom in symptoms:
                report.counts["repeated_symptoms_dropped"] += 1
                continue
            symptoms.append(symptom)
        if not symptoms:
            report.counts["rows_without_symptoms"] += 1
            continue
        key = frozenset(symptoms)
        if key in first_row and first_row[key][0] != disease:
            other, other_line = first_row[key]
            raise InputError(
                f"the same symptoms are labelled {disease!r} here and {other!r} at row {other_line}",
                file=str(path),
                row=line,
                fix="remove or correct one of the two rows",
            )
        first_row.setdefault(key, (disease, line))
        counts[key] += 1
    if not counts:
        raise InputError("no row with a disease and at least one symptom", file=str(path))
    report.counts["unique_rows"] = len(counts)
    report.counts["duplicates_dropped"] = sum(counts.values()) - len(counts)
    sets = [SymptomSet(first_row[k][0], tuple(sorted(k)), n) for k, n in counts.items()]
    return sorted(sets, key=lambda s: (names.DISEASES.index(s.disease), s.symptoms))


def _read_descriptions(path: Path, report: CleanReport) -> dict[str, str]:
    descriptions: dict[str, str] = {}
    for line, (raw, text) in _read_rows(path, HEADERS[DESCRIPTIONS], lambda c: names.canonical_disease(c) is not None):
        disease, text = _disease(raw, path, line, report), " ".join(text.split())
        if not text:
            raise InputError(f"empty description for {disease!r}", file=str(path), row=line)
        if disease in descriptions:
            if descriptions[disease] != text:
                raise InputError(
                    f"a second, different description for {disease!r}",
                    file=str(path),
                    row=line,
                    fix="keep one description per disease",
                )
            report.counts["duplicate_descriptions_dropped"] += 1
        descriptions[disease] = text
    return descriptions


def _read_precautions(path: Path, medication: MedicationLexicon, report: CleanReport) -> dict[str, list[Precaution]]:
    precautions: dict[str, list[Precaution]] = {}
    for line, (raw, *cells) in _read_rows(path, HEADERS[PRECAUTIONS], lambda c: names.canonical_disease(c) is not None):
        disease = _disease(raw, path, line, report)
        items = []
        for cell in cells:
            text = " ".join(cell.split())
            if not text:
                report.counts["empty_precautions_dropped"] += 1
                continue
            items.append(Precaution(text, tuple(medication.find(text))))
        if disease in precautions:
            if [p.text for p in precautions[disease]] != [p.text for p in items]:
                raise InputError(
                    f"a second, different precaution row for {disease!r}",
                    file=str(path),
                    row=line,
                    fix="keep one precaution row per disease",
                )
            report.counts["duplicate_precautions_dropped"] += 1
        if not items:
            raise InputError(f"no precautions for {disease!r}", file=str(path), row=line)
        precautions[disease] = items
    return precautions


# --- tidy files written by the clean stage and read by every later stage -------------------------

TIDY_SETS, TIDY_DESCRIPTIONS, TIDY_PRECAUTIONS, TIDY_SEVERITY = (
    "symptom_sets.csv",
    "descriptions.csv",
    "precautions.csv",
    "severity.csv",
)


def write_tidy(kb: KnowledgeBase, out_dir: Path) -> None:
    def table(name: str, header: list[str], rows) -> None:
        with open(out_dir / name, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)

    table(
        TIDY_SETS, ["disease", "symptoms", "rows"], ([s.disease, "|".join(s.symptoms), s.rows] for s in kb.symptom_sets)
    )
    table(
        TIDY_DESCRIPTIONS,
        ["disease", "description"],
        ([d, kb.descriptions[d]] for d in names.DISEASES if d in kb.descriptions),
    )
    table(
        TIDY_PRECAUTIONS,
        ["disease", "rank", "precaution", "medication_terms"],
        (
            [d, i, p.text, "|".join(p.medication_terms)]
            for d in names.DISEASES
            if d in kb.precautions
            for i, p in enumerate(kb.precautions[d], 1)
        ),
    )
    table(TIDY_SEVERITY, ["symptom", "weight"], ([s, kb.severity[s]] for s in sorted(kb.severity)))


def load_tidy(clean_dir: str | Path) -> KnowledgeBase:
    """Read what `write_tidy` wrote (already validated: no repair or checks here)."""
    clean_dir = Path(clean_dir)

    def rows(name: str) -> list[dict[str, str]]:
        try:
            with open(clean_dir / name, encoding="utf-8", newline="") as handle:
                return list(csv.DictReader(handle))
        except FileNotFoundError:
            raise InputError(
                "cleaned file not found", file=str(clean_dir / name), fix="run `dvc repro clean` first"
            ) from None

    sets = [SymptomSet(r["disease"], tuple(r["symptoms"].split("|")), int(r["rows"])) for r in rows(TIDY_SETS)]
    descriptions = {r["disease"]: r["description"] for r in rows(TIDY_DESCRIPTIONS)}
    precautions: dict[str, list[Precaution]] = {}
    for r in rows(TIDY_PRECAUTIONS):
        terms = tuple(t for t in r["medication_terms"].split("|") if t)
        precautions.setdefault(r["disease"], []).append(Precaution(r["precaution"], terms))
    severity = {r["symptom"]: int(r["weight"]) for r in rows(TIDY_SEVERITY)}
    return KnowledgeBase(sets, descriptions, precautions, severity)
