"""clean: raw Kaggle-schema files -> tidy, validated knowledge base in data/clean/."""

from __future__ import annotations

import sys

from medchat.artifacts import atomic_dir, write_json
from medchat.data.kb import read_kb, write_tidy
from medchat.data.medication import MedicationLexicon
from medchat.errors import InputError
from medchat.params import load_params

OUT_DIR = "data/clean"
METRICS = "metrics/clean.json"


def main() -> int:
    try:
        params = load_params()
        kb, report = read_kb(params.clean.raw_dir, MedicationLexicon.from_rules(params.safety.rules))
    except InputError as exc:
        print(f"clean: error: {exc}", file=sys.stderr)
        return 1
    with atomic_dir(OUT_DIR) as tmp:
        write_tidy(kb, tmp)
        write_json(tmp / "repairs.json", report.repairs)
    write_json(METRICS, dict(sorted(report.counts.items())))
    warnings = {k: v for k, v in report.counts.items() if k.endswith("_dropped") and v}
    for key, count in sorted(warnings.items()):
        print(f"clean: warning: {key.replace('_', ' ')}: {count}", file=sys.stderr)
    print(
        f"clean: {report.counts['rows_in']} rows -> {report.counts['unique_rows']} symptom sets, "
        f"{report.counts['diseases']} diseases, {report.counts['precautions_flagged']} precautions flagged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
