"""User feedback: what `medchat chat --feedback` appends, what augment trains on, what it skips and says."""

import json

import pytest
from conftest import ROOT, run_stage, set_params

from medchat.data.feedback import append_feedback, corrections, feedback_record, parse_rating
from medchat.data.splitting import SplitConfig, assign_groups
from medchat.safety.rules import SafetyRules


@pytest.fixture(scope="module")
def rules():
    return SafetyRules.load(ROOT / "data" / "safety" / "rules.yaml")


GOOD = {
    "text": "my skin is itchy with red patches",
    "reply": "It sounds most like Psoriasis.",
    "rating": 2,
    "correction": "It sounds most like Fungal infection. Keep the skin clean and dry.",
}


def feedback_file(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_sound_corrections_become_examples_and_bad_lines_are_reported(tmp_path, rules):
    path = feedback_file(
        tmp_path / "feedback.jsonl",
        [
            GOOD,
            '{"text": "cut off',  # 2: not JSON
            {**GOOD, "text": "  "},  # 3: no text
            {**GOOD, "text": "fever and chills", "rating": 7},  # 4: rating out of range
            {**GOOD, "text": "fever and chills", "rating": "5"},  # 5: rating not a number
            {**GOOD, "text": "just rating it", "correction": ""},  # 6: nothing to learn
            {**GOOD, "text": "headache", "correction": "Take 400 mg of ibuprofen."},  # 7: a medicine and a dose
            {**GOOD, "correction": "It sounds most like Acne."},  # 8: repeats line 1's message
            "",  # blank: ignored
            ["not", "an", "object"],  # 10
            {
                **GOOD,
                "text": "burning when I pee",
                "rating": 1,
                "correction": f"It sounds most like Urinary tract infection. {rules.referral}",
            },
        ],
    )
    examples, skipped = corrections(path, rules)
    assert [s.line for s in skipped] == [2, 3, 4, 5, 6, 7, 8, 10]
    assert "medicine or dose" in skipped[5].reason and "rating" in skipped[2].reason and "JSON" in skipped[0].reason
    assert [e.user for e in examples] == [GOOD["text"], "burning when I pee"]
    first, second = examples
    assert first.task == "feedback" and first.disease == "Fungal infection" and first.group.startswith("feedback|")
    assert first.reply == f"{GOOD['correction']} {rules.referral}"  # the referral every reply carries is added
    assert second.reply.count(rules.referral) == 1  # ... once
    assert all(rules.leaks(e.reply) == [] for e in examples)


def test_chat_appends_one_line_per_rating(tmp_path):
    path = tmp_path / "sub" / "feedback.jsonl"
    append_feedback(path, feedback_record("a", "b", 4, "", "models/chatbot"))
    append_feedback(path, feedback_record("c", "d", 1, "better", "models/chatbot"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["text"], r["rating"], r["correction"]) for r in rows] == [("a", 4, ""), ("c", 1, "better")]
    assert parse_rating(" 3 ") == 3 and parse_rating("") is None
    for bad in ("0", "6", "3.5", "good"):
        with pytest.raises(ValueError):
            parse_rating(bad)


def test_feedback_stays_in_train_and_leaves_other_splits_alone():
    examples = [{"task": "diagnose", "disease": f"D{i % 3}", "group": f"g{i}"} for i in range(30)]
    config = SplitConfig(0.2, 0.2, 0, 0, 42)
    before = assign_groups(examples, config)
    with_feedback = examples + [{"task": "feedback", "disease": "D0", "group": f"feedback|{i}"} for i in range(5)]
    after = assign_groups(with_feedback, config)
    assert {g: s for g, s in after.items() if not g.startswith("feedback")} == before
    assert {s for g, s in after.items() if g.startswith("feedback")} == {"train"}


def test_augment_stage_trains_on_corrections_and_names_skipped_lines(workdir, rules):
    for stage in ("clean", "augment"):
        run_stage(stage, workdir)
    plain = (workdir / "data" / "augmented" / "examples.jsonl").read_text().splitlines()
    feedback_file(
        workdir / "data" / "feedback.jsonl", [GOOD, {**GOOD, "text": "x", "correction": "Take 2 tablets of aspirin."}]
    )
    result = run_stage("augment", workdir)
    assert "data/feedback.jsonl line 2 skipped: the correction names a medicine or dose" in result.stderr
    rows = [json.loads(line) for line in (workdir / "data" / "augmented" / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == len(plain) + 1 and rows[-1]["task"] == "feedback" and rows[-1]["user"] == GOOD["text"]
    metrics = json.loads((workdir / "metrics" / "augment.json").read_text())
    assert metrics["feedback_used"] == 1 and metrics["feedback_skipped"] == 1 and metrics["per_task"]["feedback"] == 1
    set_params(workdir, {"augment": {"feedback": "data/missing.jsonl"}})
    failed = run_stage("augment", workdir, check=False)
    assert failed.returncode == 1 and "data/missing.jsonl: not found" in failed.stderr
