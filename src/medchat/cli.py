"""`medchat` command line."""

from __future__ import annotations

import argparse
import sys

from medchat.errors import InputError


def _check_data(args: argparse.Namespace) -> int:
    """Validate a folder of Kaggle-schema files exactly as the clean stage would, writing nothing."""
    from medchat.kb import read_kb
    from medchat.medication import MedicationLexicon

    kb, report = read_kb(args.raw_dir, MedicationLexicon.from_policy(args.policy))
    c = report.counts
    print(f"{args.raw_dir}: OK: {c['rows_in']} rows, {c['unique_rows']} unique symptom sets, "
          f"{c['diseases']} diseases, {c['symptoms']} symptoms, {c['aliases_applied']} aliases applied, "
          f"{c['precautions_flagged']} precautions flagged as medication advice")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medchat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-data", help="validate a folder of Kaggle-schema CSV files")
    check.add_argument("raw_dir")
    check.add_argument("--policy", default="data/policy.yaml")
    check.set_defaults(run=_check_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except InputError as exc:
        print(f"medchat: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
