"""What each part adds on the free-text set: one DVC experiment per configuration of medchat.experiments.ABLATIONS.

    python benchmarks/ablation.py [--prefix ablation] [--collect-only]

Runs `dvc exp run --temp -n <prefix>-<config> -S key=value` for each configuration (one after another: on
two cores a second worker only halves the speed of the first), reads the experiments back from
`dvc exp show --json`, and writes metrics/ablation.json: the committed default run first, then each
configuration. The report stage turns it into the "What each part adds" table of metrics/report.md.
Outside CI: each configuration is a full `dvc repro` (about 5 minutes on 2 cores). Commit first: the
experiments start from HEAD.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from medchat.artifacts import write_json  # noqa: E402
from medchat.experiments import ABLATIONS, ablation_rows, dvc_exp_show, experiment_records  # noqa: E402

OUT = "metrics/ablation.json"


def yaml_value(value: object) -> str:
    return json.dumps(value)  # true/false, numbers and quoted strings are all valid YAML scalars


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="ablation")
    parser.add_argument("--collect-only", action="store_true", help="only read back experiments run earlier")
    args = parser.parse_args()
    os.chdir(ROOT)
    names = {config: f"{args.prefix}-{config}" for config, _, _ in ABLATIONS}
    if not args.collect_only:
        subprocess.run(["dvc", "exp", "remove", *names.values()], capture_output=True)  # a rerun replaces them
        for config, _, overrides in ABLATIONS:
            command = ["dvc", "exp", "run", "--temp", "-n", names[config]]
            for key, value in overrides.items():
                command += ["-S", f"{key}={yaml_value(value)}"]
            print("+", " ".join(command), flush=True)
            subprocess.run(command, check=True)
    default = {path: json.loads((ROOT / path).read_text()) for path in ("metrics/evaluate.json", "metrics/tokenize.json")}
    rows = ablation_rows(experiment_records(dvc_exp_show()), default, names)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    write_json(OUT, {"commit": commit, "rows": rows})
    for row in rows:
        print(f"{row['config']:>14}: reply {row['lm_generated_top1']}, LM ranking {row['lm_top1']}, "
              f"fusion {row['ensemble_top1']}, full accuracy {row['full_accuracy']}")
    print(f"wrote {OUT}; `dvc repro report` puts it in metrics/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
