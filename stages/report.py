"""report: metrics/evaluate.json and metrics/ablation.json -> metrics/report.md.

Its own stage, not part of evaluate, because the ablation table comes from experiments run outside the
pipeline (benchmarks/ablation.py): refreshing it then rewrites only the report, without re-evaluating.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from medchat.artifacts import atomic_file
from medchat.eval.report import evaluation_report

EVALUATE, ABLATION, REPORT = "metrics/evaluate.json", "metrics/ablation.json", "metrics/report.md"


def main() -> int:
    try:
        results = json.loads(Path(EVALUATE).read_text(encoding="utf-8"))
        ablation = json.loads(Path(ABLATION).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 1
    with atomic_file(REPORT) as handle:
        handle.write(evaluation_report(results, ablation))
    print(f"report: wrote {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
