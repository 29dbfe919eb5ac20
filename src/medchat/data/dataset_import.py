"""`medchat import-data`: a user's Kaggle download (the zip, or the unzipped folder) -> a DVC-tracked
dataset folder under data/, validated exactly as the clean stage will read it.

    medchat import-data ~/Downloads/archive.zip --to data/kaggle
    # then: clean.raw_dir: data/kaggle in params.yaml (or dvc exp run -S clean.raw_dir=data/kaggle)

The four files are found wherever they sit in the zip or folder (Kaggle zips nest them), validated by
medchat.kb.read_kb, copied into a temporary folder beside the target and moved into place only when all
is well, then `dvc add` tracks the folder: git keeps `data/kaggle.dvc` (its hash), the DVC cache and
remote keep the files. Importing a newer download the same way makes a second data version; `git
checkout <old> && dvc checkout` brings the first one back.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from medchat.data.kb import DATASET, DESCRIPTIONS, PRECAUTIONS, SEVERITY_NAMES, read_kb
from medchat.data.medication import MedicationLexicon
from medchat.errors import InputError
from medchat.ops.dvc_commands import run_dvc

WANTED = (DATASET, DESCRIPTIONS, PRECAUTIONS)


def _find(root: Path) -> dict[str, Path]:
    """The four files under `root` (any depth): dataset, descriptions, precautions and one severity file."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.csv")):
        name = path.name
        if name in WANTED or name in SEVERITY_NAMES:
            key = "severity" if name in SEVERITY_NAMES else name
            if key in found:
                raise InputError(
                    f"two copies of {name}: {found[key]} and {path}",
                    file=str(root),
                    fix="point at a folder or zip holding one copy of the dataset",
                )
            found[key] = path
    missing = [n for n in (*WANTED, "severity") if n not in found]
    if missing:
        names = ", ".join(SEVERITY_NAMES[0] if n == "severity" else n for n in missing)
        raise InputError(
            f"not the Kaggle 'Disease Symptom Prediction' files: {names} missing",
            file=str(root),
            fix="download the dataset from Kaggle and pass its zip or the folder it unzips to",
        )
    return found


def import_dataset(source: str | Path, target: str | Path, rules: str | Path, dvc_add: bool = True) -> dict[str, int]:
    """Validate and copy; returns the clean report's counts. Nothing is written when anything is wrong."""
    source, target = Path(source), Path(target)
    if not source.exists():
        raise InputError("not found", file=str(source), fix="pass the downloaded zip or the folder it unzips to")
    if target.exists():
        raise InputError(
            "already exists",
            file=str(target),
            fix="choose a new folder for a new data version, or remove this one (dvc remove it if tracked)",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as scratch:
        root = Path(scratch) / "unpacked"
        if source.is_dir():
            root = source
        else:
            try:
                with zipfile.ZipFile(source) as archive:
                    archive.extractall(root)
            except zipfile.BadZipFile:
                raise InputError("neither a folder nor a zip file", file=str(source)) from None
        found = _find(root)
        staged = Path(scratch) / "dataset"
        staged.mkdir()
        for path in found.values():
            shutil.copy2(path, staged / path.name)
        _, report = read_kb(staged, MedicationLexicon.from_rules(rules))  # the clean stage's own checks
        staged.rename(target)
    if dvc_add:
        try:
            run_dvc("add", str(target))
        except InputError:
            shutil.rmtree(target)  # nothing half-done: no untracked copy left behind
            raise
    return dict(report.counts)
