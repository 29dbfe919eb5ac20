"""Time and peak memory of clean -> augment -> split on the Kaggle dataset blown up 1x, 10x and 100x.

    python benchmarks/data_scale.py [--kaggle ../shared/data/kaggle-disease-symptom] [--factors 1 10 100]

Each factor repeats every row of dataset.csv that many times (100x: 492,000 rows) next to the other three
files, then runs the three data stages as `dvc repro` would (their scripts, in a scratch copy of the repo,
one process per stage) and records wall time and the largest resident memory of any stage.
Results: metrics/data_scale.json and a table on stdout. Outside CI (the 100x run takes about a minute).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("clean", "augment", "split")
OUT = ROOT / "metrics" / "data_scale.json"


def blow_up(kaggle: Path, factor: int, into: Path) -> int:
    """Copy the four files with dataset.csv's data rows repeated `factor` times; return the row count."""
    into.mkdir(parents=True)
    for item in kaggle.iterdir():
        if item.name != "dataset.csv":
            shutil.copy2(item, into / item.name)
    with (kaggle / "dataset.csv").open(newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    header, rows = lines[0], lines[1:]
    with (into / "dataset.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for _ in range(factor):
            writer.writerows(rows)
    return len(rows) * factor


def run_stages(workdir: Path, raw: Path) -> dict:
    params = (workdir / "params.yaml").read_text(encoding="utf-8")
    (workdir / "params.yaml").write_text(params.replace("raw_dir: data/raw", f"raw_dir: {raw}"), encoding="utf-8")
    timings = {}
    for stage in STAGES:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, f"stages/{stage}.py"],
            cwd=workdir,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        timings[stage] = round(time.perf_counter() - started, 2)
    # ru_maxrss of waited-for children: the largest of the three stage processes, in KiB on Linux
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": timings, "total_s": round(sum(timings.values()), 2), "peak_rss_mib": round(peak_mib, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kaggle", type=Path, default=ROOT.parent / "shared/data/kaggle-disease-symptom")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args()
    if not (args.kaggle / "dataset.csv").exists():
        sys.exit(f"no dataset.csv in {args.kaggle}: pass --kaggle with the Kaggle download")
    results = {}
    for factor in args.factors:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            workdir = tmp / "repo"
            shutil.copytree(ROOT, workdir, ignore=shutil.ignore_patterns(".git", ".venv", ".dvc", "models", "data"))
            shutil.copytree(
                ROOT / "data",
                workdir / "data",
                ignore=shutil.ignore_patterns("clean", "augmented", "split", "tokenized", "evaluate"),
            )
            rows = blow_up(args.kaggle, factor, tmp / "raw")
            # a fresh interpreter per factor keeps RUSAGE_CHILDREN from carrying a previous maximum
            here, raw = str(Path(__file__).parent), str(tmp / "raw")
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    (
                        f"import json, sys; sys.path.insert(0, {here!r}); from data_scale import run_stages; "
                        f"from pathlib import Path; print(json.dumps(run_stages(Path({str(workdir)!r}), Path({raw!r}))))"
                    ),
                ],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            )
            results[f"{factor}x"] = {"rows": rows, **json.loads(out.stdout.strip().splitlines()[-1])}
    OUT.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("| factor | rows | clean s | augment s | split s | total s | peak MiB |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        s = r["seconds"]
        print(
            f"| {name} | {r['rows']:,} | {s['clean']} | {s['augment']} | {s['split']} | {r['total_s']} | {r['peak_rss_mib']} |"
        )


if __name__ == "__main__":
    main()
