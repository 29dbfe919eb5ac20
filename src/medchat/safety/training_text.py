"""The safety policy's training text (data/safety/training.yaml): written phrasings, composable fragments and
frames for augment's emergency, refusal and minor examples, and the extra messages the triage classifier
learns from. Read by augment and triage only; the chatbot never ships it (medchat.safety.rules does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medchat.errors import InputError
from medchat.safety.rules import SafetyRules, check_keys, read_yaml, texts


@dataclass(frozen=True)
class RedFlagText:
    name: str  # a red flag of the rules
    phrasings: tuple[str, ...]  # written training messages; never the held-out evaluation ones
    # Fragments that augment combines through the emergency frames into many more training messages
    # (one sign + one companion), so a small model learns the signals rather than whole sentences.
    signs: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    # Wordings beyond the patterns (key `beyond_patterns`): more ways of saying a sign than a regular
    # expression can spell out without also firing on harmless messages. The model and the triage classifier
    # learn them; the rules' patterns need not match them, so the guard stays narrow.
    wider_phrasings: tuple[str, ...] = ()
    wider_signs: tuple[str, ...] = ()
    wider_companions: tuple[str, ...] = ()

    @property
    def training_phrasings(self) -> tuple[str, ...]:
        return self.phrasings + self.wider_phrasings

    @property
    def training_signs(self) -> tuple[str, ...]:
        return self.signs + self.wider_signs

    @property
    def training_companions(self) -> tuple[str, ...]:
        return self.companions + self.wider_companions


@dataclass(frozen=True)
class TrainingText:
    red_flags: tuple[RedFlagText, ...] = ()
    # Composition: templates with {sign} and {companion}; with {medicine} and/or {problem}.
    emergency_frames: tuple[str, ...] = ()
    drug_requests: tuple[str, ...] = ()
    request_frames: tuple[str, ...] = ()
    request_problems: tuple[str, ...] = ()
    request_medicines: tuple[str, ...] = ()
    # Requests beyond the patterns (`drug_requests.beyond_patterns`): asks that name no medicine and none of
    # the request words ("anything to knock me out tonight"), as phrasings and as frames with {problem}.
    # They train the triage classifier; the rules need not catch them, since cues that loose would refuse
    # plain questions about self-care.
    wider_requests: tuple[str, ...] = ()
    wider_request_frames: tuple[str, ...] = ()
    wider_request_problems: tuple[str, ...] = ()
    # Minor everyday complaints (augment's "minor" task, answered with the rules' minor reply), so that the
    # model has something besides a diagnosis, an escalation or a refusal to say to "I got a paper cut".
    minor_phrasings: tuple[str, ...] = ()
    minor_complaints: tuple[str, ...] = ()
    minor_frames: tuple[str, ...] = ()
    # (red flag, message): harmless messages in a red flag's words (the triage classifier's negatives)
    near_misses: tuple[tuple[str, str], ...] = ()

    @classmethod
    def load(cls, path: str | Path, rules: SafetyRules) -> TrainingText:
        """Read and validate the file; its red flags must be the rules' red flags."""
        path = Path(path)
        data = read_yaml(path)
        check_keys(data, path, {"version", "red_flags", "red_flag_frames", "drug_requests", "minor_complaints"})

        def frames(
            entry: dict[str, Any], name: str, key: str, slots: tuple[str, ...], need_all: bool
        ) -> tuple[str, ...]:
            found = texts(entry, name, path, key)
            for i, frame in enumerate(found):
                used = set(re.findall(r"\{(\w+)\}", frame))
                if used - set(slots) or (need_all and used != set(slots)) or not used:
                    raise InputError(
                        f"frame {frame!r} must use {' and '.join('{' + s + '}' for s in slots)}"
                        + ("" if need_all else " (one or both)")
                        + " and no other slot",
                        file=str(path),
                        key=f"{key}.{name}[{i}]".lstrip("."),
                    )
            return found

        known = {f.name for f in rules.red_flags}
        flags = []
        for name, entry in (data.get("red_flags") or {}).items():
            key = f"red_flags.{name}"
            if name not in known:
                raise InputError(
                    f"not a red flag of the rules (one of {', '.join(sorted(known))})", file=str(path), key=key
                )
            if not isinstance(entry, dict) or not entry.get("phrasings"):
                raise InputError("needs 'phrasings'", file=str(path), key=key)
            unknown = set(entry) - {"phrasings", "signs", "companions", "beyond_patterns"}
            if unknown:  # a pattern left here would look active and do nothing: patterns live in the rules
                raise InputError(
                    f"unknown keys {sorted(unknown)} (patterns belong in the rules file)", file=str(path), key=key
                )
            signs, companions = texts(entry, "signs", path, key), texts(entry, "companions", path, key)
            wider = entry.get("beyond_patterns") or {}
            if not isinstance(wider, dict) or set(wider) - {"phrasings", "signs", "companions"}:
                raise InputError(
                    "expected a mapping with phrasings, signs and/or companions",
                    file=str(path),
                    key=f"{key}.beyond_patterns",
                )
            wkey = f"{key}.beyond_patterns"
            wider_signs, wider_companions = texts(wider, "signs", path, wkey), texts(wider, "companions", path, wkey)
            if bool(signs) != bool(companions) or bool(wider_signs) != bool(wider_companions):
                raise InputError("'signs' and 'companions' go together", file=str(path), key=key)
            flags.append(
                RedFlagText(
                    str(name),
                    texts(entry, "phrasings", path, key),
                    signs,
                    companions,
                    texts(wider, "phrasings", path, wkey),
                    wider_signs,
                    wider_companions,
                )
            )
        minor = data.get("minor_complaints") or {}
        if not isinstance(minor, dict):
            raise InputError("expected a mapping", file=str(path), key="minor_complaints")
        minor_frames = frames(minor, "frames", "minor_complaints", ("complaint",), need_all=True)
        if minor_frames and not minor.get("complaints"):
            raise InputError("'frames' need 'complaints'", file=str(path), key="minor_complaints")
        near_misses = minor.get("near_misses") or {}
        if not isinstance(near_misses, dict):
            raise InputError(
                "expected red flag names, each with a list of messages",
                file=str(path),
                key="minor_complaints.near_misses",
            )
        for name in near_misses:
            if name not in known:
                raise InputError(
                    f"not a red flag (one of {', '.join(f.name for f in rules.red_flags)})",
                    file=str(path),
                    key=f"minor_complaints.near_misses.{name}",
                )
        requests = data.get("drug_requests") or {}
        request_frames = frames(requests, "frames", "drug_requests", ("medicine", "problem"), need_all=False)
        if request_frames and not (requests.get("problems") and requests.get("medicines")):
            raise InputError("'frames' need 'problems' and 'medicines'", file=str(path), key="drug_requests")
        wider_requests = requests.get("beyond_patterns") or {}
        if not isinstance(wider_requests, dict) or set(wider_requests) - {"phrasings", "frames", "problems"}:
            raise InputError(
                "expected a mapping with phrasings, frames and/or problems",
                file=str(path),
                key="drug_requests.beyond_patterns",
            )
        wkey = "drug_requests.beyond_patterns"
        wider_frames = frames(wider_requests, "frames", wkey, ("problem",), need_all=True)
        if wider_frames and not (requests.get("problems") or wider_requests.get("problems")):
            raise InputError("'frames' need 'problems'", file=str(path), key=wkey)
        return cls(
            red_flags=tuple(flags),
            emergency_frames=frames(data, "red_flag_frames", "", ("sign", "companion"), need_all=True),
            # as written (not whitespace-normalised): augment's examples have always used them so
            drug_requests=tuple(map(str, requests.get("phrasings", []))),
            request_frames=request_frames,
            request_problems=texts(requests, "problems", path, "drug_requests"),
            request_medicines=texts(requests, "medicines", path, "drug_requests"),
            wider_requests=texts(wider_requests, "phrasings", path, wkey),
            wider_request_frames=wider_frames,
            wider_request_problems=texts(wider_requests, "problems", path, wkey),
            minor_phrasings=texts(minor, "phrasings", path, "minor_complaints"),
            minor_complaints=texts(minor, "complaints", path, "minor_complaints"),
            minor_frames=minor_frames,
            near_misses=tuple(
                (str(name), text)
                for name in near_misses
                for text in texts(near_misses, name, path, "minor_complaints.near_misses")
            ),
        )

    def wider_request_messages(self, per_frame: int = 3) -> tuple[str, ...]:
        """The requests beyond the patterns as messages: every phrasing, and each wider frame filled with
        `per_frame` of the problems in turn (no randomness: the triage classifier's extra training set)."""
        problems = self.request_problems + self.wider_request_problems
        filled = [
            frame.format(problem=problems[(i * per_frame + k) % len(problems)])
            for i, frame in enumerate(self.wider_request_frames)
            for k in range(per_frame)
        ]
        return tuple(dict.fromkeys((*self.wider_requests, *filled)))
