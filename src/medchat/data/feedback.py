"""User feedback: `medchat chat --feedback FILE` appends ratings and corrections; augment turns the
corrections into training examples (task `feedback`) on the next `dvc repro`.

A line becomes an example only when it is sound: valid JSON with a non-empty `text`, a `rating` of 1-5 and
a non-empty `correction` that names no medicine or dose. Anything else is reported with its line number and
skipped, never trained on. A correction without the safety rules' referral sentence gets it appended, as every
training reply carries it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medchat.data.dialogue import Example
from medchat.data.names import parse_disease
from medchat.errors import InputError

if TYPE_CHECKING:
    from medchat.safety.rules import SafetyRules

TASK = "feedback"


def feedback_record(text: str, reply: str, rating: int, correction: str, model: str) -> dict[str, Any]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": model,
        "text": text,
        "reply": reply,
        "rating": rating,
        "correction": correction,
    }


def append_feedback(path: str | Path, record: dict[str, Any]) -> None:
    """One line per rating, appended and flushed at once, so a session cut short keeps what was said."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def parse_rating(answer: str) -> int | None:
    """'' -> None (skipped); '1'..'5' -> the rating; anything else raises ValueError."""
    answer = answer.strip()
    if not answer:
        return None
    if answer not in {"1", "2", "3", "4", "5"}:
        raise ValueError("a rating is a whole number from 1 to 5")
    return int(answer)


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str


def corrections(path: str | Path, rules: SafetyRules) -> tuple[list[Example], list[Skipped]]:
    """The feedback file's sound corrections as examples, and every line that was skipped and why."""
    examples: list[Example] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    if not Path(path).is_file():
        raise InputError(
            "not found", file=str(path), fix="augment.feedback names the feedback file; create an empty one for none"
        )
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            reason, record = _check(line, rules)
            if reason is None and record["text"].strip() in seen:
                reason = "repeats an earlier corrected message (the first correction is kept)"
            if reason is not None:
                skipped.append(Skipped(number, reason))
                continue
            user, correction = record["text"].strip(), record["correction"].strip()
            seen.add(user)
            if rules.referral not in correction:
                correction = f"{correction} {rules.referral}"
            digest = hashlib.sha1(user.encode("utf-8")).hexdigest()[:12]
            examples.append(
                Example(
                    f"{TASK}-{digest}", TASK, parse_disease(correction) or "", [], user, correction, f"{TASK}|{digest}"
                )
            )
    return examples, skipped


def _check(line: str, rules: SafetyRules) -> tuple[str | None, dict]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})", {}
    if not isinstance(record, dict):
        return "not a JSON object", {}
    if not isinstance(record.get("text"), str) or not record["text"].strip():
        return "'text' is missing or empty", record
    rating = record.get("rating")
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        return "'rating' must be a whole number from 1 to 5", record
    correction = record.get("correction")
    if not isinstance(correction, str) or not correction.strip():
        return "no correction (a rating alone is not a training example)", record
    leaked = rules.leaks(correction)
    if leaked:
        return f"the correction names a medicine or dose ({', '.join(leaked[:3])})", record
    return None, record
