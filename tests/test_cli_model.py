"""`medchat batch`: bad input gives one error line with the line number, and no output file."""

import pytest

from medchat.cli import main


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"id": 1, "text": "ok"}\n{"id": 2, "text": "x"\n', "in.jsonl:2: not valid JSON"),
        ('{"id": 1, "text": "ok"}\n{"text": "no id"}\n', "in.jsonl:2: missing field 'id'"),
        ('{"id": 1, "text": "  "}\n', "in.jsonl:1: 'text' must be a non-empty string"),
        ('["a list"]\n', "in.jsonl:1: expected a JSON object"),
        ("", "in.jsonl: input has no records"),
    ],
)
def test_bad_batch_input(tmp_path, capsys, content, message):
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    out = tmp_path / "out.jsonl"
    assert main(["batch", "--model", str(tmp_path), "--input", str(source), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_missing_model_dir(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "I have a rash"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["batch", "--model", str(tmp_path / "nope"), "--input", str(source), "--output", str(out)]) == 1
    assert "model folder not found" in capsys.readouterr().err
    assert not out.exists()
    assert main(["ask", "--model", str(tmp_path / "nope"), "hello"]) == 1


def test_a_bare_model_folder_answers_with_or_without_the_guard(tmp_path, chat, capsys):
    """models/train as it is (no package files): guarded with the fallback rules, or with --no-guard not
    needing any rules file at all; never grounded (a bare folder has no knowledge base)."""
    from conftest import ROOT

    from medchat.inference.chatbot import Chatbot

    chat.model.save_pretrained(tmp_path / "model")
    chat.tokenizer.save_pretrained(tmp_path / "model")
    rules = ROOT / "data" / "safety" / "rules.yaml"
    guarded = Chatbot(tmp_path / "model", fallback_rules=rules, max_new_tokens=8)
    assert guarded.rules is not None and guarded.grounding is None
    reply = guarded.replies(["I have a rash"])[0][0]
    assert "doctor" in reply or "clinician" in reply  # the guard's referral
    bare = Chatbot(tmp_path / "model", guard=False, fallback_rules=tmp_path / "no-such-rules.yaml", max_new_tokens=8)
    assert bare.rules is None and bare.grounding is None
    assert (
        main(["ask", "--model", str(tmp_path / "model"), "--no-guard", "--rules", str(tmp_path / "none.yaml"), "hi"])
        == 0
    )
    capsys.readouterr()
