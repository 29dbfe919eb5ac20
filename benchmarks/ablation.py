"""Ablations as DVC experiments: one experiment per configuration of medchat.experiments.STUDIES.

    python benchmarks/ablation.py [--study parts] [--study multitask] [--prefix ablation] [--collect-only]

`parts` (what each part adds on free text): the lexicon normaliser in prompts, retrieval-augmented prompts,
domain tokens. `multitask`: diagnose-only training against the default task mix.
Every configuration is queued at once (`dvc exp run --queue -n <prefix>-<config> -S key=value`: the queue
captures the workspace now, so editing files afterwards cannot leak into a run), then one worker runs
them (on two cores a second worker only halves the speed of the first). The experiments are read back
from `dvc exp show --json` into metrics/ablation.json, with the committed default run as the first row of
each study; `dvc repro report` puts the tables in metrics/report.md.
Outside CI: each configuration is a full `dvc repro` (5-8 minutes on 2 cores). Run it on a clean,
committed workspace whose `dvc repro` is up to date: the default row comes from its metrics files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from medchat.artifacts import write_json
from medchat.ops.experiments import STUDIES, ablation_rows, dvc_exp_show, experiment_records

OUT = ROOT / "metrics" / "ablation.json"
DEFAULT_METRICS = (
    "metrics/evaluate.json",
    "metrics/tokenize.json",
    "metrics/train.json",
    "metrics/finetune.json",
)


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=ROOT, check=check, capture_output=True, text=True)


def queue(names: dict[str, dict[str, str]]) -> None:
    dvc("exp", "remove", *[n for study in names.values() for n in study.values()], check=False)  # a rerun replaces them
    for study, configs in names.items():
        for config, _, overrides in STUDIES[study].configs:
            command = ["exp", "run", "--queue", "-n", configs[config]]
            for key, value in overrides.items():
                command += ["-S", f"{key}={json.dumps(value)}"]  # JSON scalars and lists are valid YAML
            print("+ dvc", " ".join(command), flush=True)
            dvc(*command)
    dvc("queue", "start", "-j", "1")
    while True:
        status = dvc("queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(30)
    print(status)
    if "Failed" in status:
        raise SystemExit("an experiment failed: see `dvc queue logs <name>`")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="append", choices=sorted(STUDIES), help="default: all")
    parser.add_argument("--prefix", default="ablation")
    parser.add_argument("--collect-only", action="store_true", help="only read back experiments run earlier")
    parser.add_argument("--rev", help="with --collect-only: the commit the experiments were run from (default HEAD)")
    args = parser.parse_args()
    os.chdir(ROOT)  # dvc exp show runs here
    studies = args.study or list(STUDIES)
    names = {s: {config: f"{args.prefix}-{config}" for config, _, _ in STUDIES[s].configs} for s in studies}
    rev = args.rev if args.collect_only and args.rev else "HEAD"  # the experiments' baseline commit
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if not args.collect_only:
        queue(names)
    default = {path: json.loads((ROOT / path).read_text()) for path in DEFAULT_METRICS}
    records = experiment_records(dvc_exp_show(commit))
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    results = {
        **previous.get("studies", {}),
        **{s: ablation_rows(records, default, names[s], STUDIES[s]) for s in studies},
    }
    # each study keeps the commit its experiments ran from: rerunning one study leaves the others' as they were
    commits = {s: previous.get("commits", {}).get(s, previous.get("commit")) for s in results}
    commits.update(dict.fromkeys(studies, commit))
    write_json(OUT, {"commit": commit, "commits": commits, "studies": results})
    for study in studies:
        for row in results[study]:
            print(study, json.dumps(row))
    print(f"wrote {OUT.relative_to(ROOT)}; `dvc repro report` puts it in metrics/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
