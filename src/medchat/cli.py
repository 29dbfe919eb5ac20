"""`medchat` command line: ask one question, chat, answer a JSONL file, or check a data folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from medchat.errors import InputError

if TYPE_CHECKING:
    from medchat.inference.chatbot import Chatbot


def _check_data(args: argparse.Namespace) -> int:
    """Validate a folder of Kaggle-schema files exactly as the clean stage would, writing nothing."""
    from medchat.data.kb import read_kb
    from medchat.data.medication import MedicationLexicon

    kb, report = read_kb(args.raw_dir, MedicationLexicon.from_rules(args.rules))
    c = report.counts
    print(
        f"{args.raw_dir}: OK: {c['rows_in']} rows, {c['unique_rows']} unique symptom sets, "
        f"{c['diseases']} diseases, {c['symptoms']} symptoms, {c['aliases_applied']} aliases applied, "
        f"{c['precautions_flagged']} precautions flagged as medication advice"
    )
    return 0


def _import_data(args: argparse.Namespace) -> int:
    from medchat.data.dataset_import import import_dataset

    counts = import_dataset(args.source, args.to, args.rules, dvc_add=args.dvc_add)
    print(
        f"{args.to}: {counts['rows_in']} rows, {counts['diseases']} diseases, {counts['symptoms']} symptoms"
        + (f"; tracked by DVC: git add {args.to}.dvc {Path(args.to).parent / '.gitignore'}" if args.dvc_add else "")
    )
    print(f"use it: set clean.raw_dir: {args.to} in params.yaml (or dvc exp run -S clean.raw_dir={args.to})")
    return 0


DEFAULT_MODEL = "models/chatbot"
RULES = "data/safety/rules.yaml"


def load_chatbot(args: argparse.Namespace) -> Chatbot:
    from transformers.utils import logging as transformers_logging

    from medchat.inference.chatbot import Chatbot

    # a chat user gets our one-line errors, not the library's advice about checkpoint internals
    transformers_logging.set_verbosity_error()
    return Chatbot(
        args.model,
        guard=args.guard,
        fallback_rules=args.rules,
        max_new_tokens=args.max_new_tokens,
        batch_size=getattr(args, "batch_size", 64),
    )


def _ask(args: argparse.Namespace) -> int:
    if not args.text.strip():
        raise InputError("the question is empty", fix='medchat ask "describe your symptoms"')
    print(load_chatbot(args).replies([args.text])[0][0])
    return 0


def _chat(args: argparse.Namespace) -> int:
    bot = load_chatbot(args)
    print("medchat: describe your symptoms or ask about a condition (empty line or Ctrl-D to quit).")
    print("This is a demonstration, not medical advice. In an emergency call your local emergency number.")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        reply = bot.replies([text])[0][0]
        print(f"medchat> {reply}")
        if args.feedback and not _ask_feedback(args, text, reply):
            break
    return 0


def _ask_feedback(args: argparse.Namespace, text: str, reply: str) -> bool:
    """Rate the reply (Enter skips) and optionally type a better one; appended to args.feedback at once.
    False when input ends."""
    from medchat.data.feedback import append_feedback, feedback_record, parse_rating

    try:
        while True:
            try:
                rating = parse_rating(input("rate 1-5 (Enter skips)> "))
                break
            except ValueError as exc:
                print(f"medchat: {exc}")
        if rating is None:
            return True
        correction = input("better reply (Enter for none)> ").strip()
    except EOFError:
        return False
    append_feedback(args.feedback, feedback_record(text, reply, rating, correction, args.model))
    print(
        f"medchat: thanks, saved to {args.feedback}"
        + (" (the correction trains the next dvc repro)" if correction else "")
    )
    return True


def read_batch_input(path: str) -> list[dict]:
    """`{"id": ..., "text": ...}` per line; any bad line stops the whole batch with its line number."""
    from medchat.artifacts import iter_jsonl

    records = []
    for number, record in iter_jsonl(path):
        for key in ("id", "text"):
            if key not in record:
                raise InputError(f"missing field {key!r}", file=path, row=number, fix='each line needs "id" and "text"')
        if not isinstance(record["text"], str) or not record["text"].strip():
            raise InputError("'text' must be a non-empty string", file=path, row=number)
        records.append({"id": record["id"], "text": record["text"]})
    if not records:
        raise InputError("input has no records", file=path, fix='add lines like {"id": "1", "text": "..."}')
    return records


def _batch(args: argparse.Namespace) -> int:
    from medchat.artifacts import write_jsonl
    from medchat.data.names import parse_disease

    records = read_batch_input(args.input)
    bot = load_chatbot(args)
    out = []
    for start in range(0, len(records), args.batch_size):
        chunk = records[start : start + args.batch_size]
        replies, seconds = bot.replies([r["text"] for r in chunk])
        # every reply of a batch is ready when the batch is: report the batch time shared per reply
        latency = round(seconds * 1000 / len(chunk), 1)
        out += [
            {"id": r["id"], "reply": reply, "disease": parse_disease(reply), "latency_ms": latency}
            for r, reply in zip(chunk, replies)
        ]
    write_jsonl(args.output, out)
    print(f"medchat: {len(out)} replies written to {args.output}", file=sys.stderr)
    return 0


CV_METRICS = ["metrics/evaluate.json:train.full.accuracy", "metrics/evaluate.json:train.partial.accuracy"]


def _cv(args: argparse.Namespace) -> int:
    import json

    from medchat.ops.experiments import dvc_exp_show, experiment_records, folds_table, summarize_folds

    shown = json.loads(Path(args.exp_json).read_text()) if args.exp_json else dvc_exp_show()
    print(folds_table(summarize_folds(experiment_records(shown), args.metric or CV_METRICS)))
    return 0


def _tune(args: argparse.Namespace) -> int:
    import dataclasses

    from medchat.ops import tune
    from medchat.params import load_params

    params = load_params(args.params)
    overrides = {
        k: v
        for k, v in (
            ("n_trials", args.n_trials),
            ("sampler", args.sampler),
            ("storage", args.storage),
            ("study_name", args.study_name),
        )
        if v is not None
    }
    settings = dataclasses.replace(params.tune, **overrides)  # revalidated by TuneParams.__post_init__
    return tune.main(settings, params.seed, apply=args.apply, table_path=args.table)


def _verify(args: argparse.Namespace) -> int:
    from medchat.ops import cache_check

    return cache_check.main(Path("."), remote=args.remote)


def _pr_report(args: argparse.Namespace) -> int:
    from medchat.ops import pr_report

    return pr_report.main(args.base, args.out, args.plots_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medchat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-data", help="validate a folder of Kaggle-schema CSV files")
    check.add_argument("raw_dir")
    check.add_argument("--rules", default=RULES, help=f"safety rules with the medication lexicon (default {RULES})")
    check.set_defaults(run=_check_data)
    imported = commands.add_parser(
        "import-data", help="a Kaggle download (zip or folder) -> a validated, DVC-tracked data folder"
    )
    imported.add_argument("source", help="the downloaded zip, or the folder it unzips to")
    imported.add_argument("--to", default="data/kaggle", help="new folder under data/ (default data/kaggle)")
    imported.add_argument("--rules", default=RULES, help=f"safety rules with the medication lexicon (default {RULES})")
    imported.add_argument(
        "--dvc-add",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="track the folder with `dvc add` (default on)",
    )
    imported.set_defaults(run=_import_data)

    def model_command(name: str, help: str, run) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help)
        command.add_argument("--model", default=DEFAULT_MODEL, help=f"trained model folder (default {DEFAULT_MODEL})")
        command.add_argument("--max-new-tokens", type=int, default=160)
        command.add_argument(
            "--guard",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="safety guard on replies (default: as packaged, else on)",
        )
        command.add_argument(
            "--rules", default=RULES, help=f"safety rules when the model folder has none (default {RULES})"
        )
        command.set_defaults(run=run)
        return command

    cv = commands.add_parser("cv", help="mean ± std of metrics over the cross-validation fold experiments")
    cv.add_argument(
        "--metric",
        action="append",
        default=None,
        help="path:dotted.key (repeatable; default: " + ", ".join(CV_METRICS) + ")",
    )
    cv.add_argument("--exp-json", help="read `dvc exp show --json` output from this file instead of running dvc")
    cv.set_defaults(run=_cv)

    tune = commands.add_parser(
        "tune", help="Optuna search whose trials are DVC experiments (settings: tune in params.yaml)"
    )
    tune.add_argument("--params", default="params.yaml")
    tune.add_argument("--n-trials", type=int, help="override tune.n_trials")
    tune.add_argument("--sampler", choices=("tpe", "random", "grid"), help="override tune.sampler")
    tune.add_argument("--storage", help="override tune.storage (SQLAlchemy URL)")
    tune.add_argument("--study-name", help="override tune.study_name")
    tune.add_argument("--table", help="also write the markdown table of trials to this file")
    tune.add_argument(
        "--apply", action=argparse.BooleanOptionalAction, default=True, help="dvc exp apply the best trial (default on)"
    )
    tune.set_defaults(run=_tune)

    verify = commands.add_parser(
        "verify",
        help="re-hash every cached output dvc.lock and the .dvc files record; say which are missing or corrupted",
    )
    verify.add_argument("--remote", action="store_true", help="also check that the default DVC remote can be reached")
    verify.set_defaults(run=_verify)
    report = commands.add_parser(
        "pr-report",
        help="markdown report for a pull request: metrics and params diffs "
        "against a base revision, plots as PNG (for cml comment create)",
    )
    report.add_argument("--base", default="main", help="git revision to compare with (default main)")
    report.add_argument("--out", default="report.md")
    report.add_argument("--plots-dir", help="where the PNG files go (default: report_plots/ beside --out)")
    report.set_defaults(run=_pr_report)

    model_command("ask", "answer one question", _ask).add_argument("text")
    model_command("chat", "interactive session", _chat).add_argument(
        "--feedback",
        metavar="FILE",
        help="after each reply, ask for a 1-5 rating and a better reply; append them "
        "to FILE (augment.feedback, data/feedback.jsonl, trains on them)",
    )
    batch = model_command("batch", "answer a JSONL file of {id, text}", _batch)
    batch.add_argument("--input", required=True)
    batch.add_argument("--output", required=True)
    batch.add_argument("--batch-size", type=int, default=32)
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
