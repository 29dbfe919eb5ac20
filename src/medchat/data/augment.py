"""Example generation: the knowledge base becomes diagnose, describe and precautions dialogues.

Partial inputs (1..N symptoms) are what real users type, but a subset is only a fair training
example when it points to one disease. We keep a subset only if every symptom set in the
knowledge base that contains it has the same disease, and we attach it to one owning group
(the first such set), so that no symptom set can end up in two splits.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from medchat.data import names
from medchat.data.dialogue import REPLIES, Example, Templates, join_list, sentence_case
from medchat.data.kb import KnowledgeBase, SymptomSet
from medchat.data.lexicon import Lexicon
from medchat.errors import InputError
from medchat.params import KB_TASKS

if TYPE_CHECKING:
    from medchat.safety.rules import SafetyRules
    from medchat.safety.training_text import RedFlagText, TrainingText

CLINICAL_SHARE = 0.25  # share of diagnose prompts that list symptom names instead of lay phrasings


@dataclass(frozen=True)
class AugmentConfig:
    per_disease: dict[str, int]
    partial_share: float
    max_partial_size: int
    seed: int
    safety_examples: dict[str, int] = field(default_factory=dict)
    framed_share: float = 0.0


def partial_subsets(sets: list[SymptomSet], max_size: int) -> tuple[dict[str, list[tuple[str, ...]]], int]:
    """Owning group -> its diagnostic subsets of 1..max_size symptoms; and how many were ambiguous."""
    diseases: dict[frozenset, set[str]] = defaultdict(set)
    owner: dict[frozenset, str] = {}
    full = {frozenset(s.symptoms) for s in sets}
    for s in sorted(sets, key=lambda s: s.group):
        for size in range(1, min(max_size, len(s.symptoms) - 1) + 1):
            for combo in itertools.combinations(s.symptoms, size):
                key = frozenset(combo)
                diseases[key].add(s.disease)
                owner.setdefault(key, s.group)
    by_group: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    ambiguous = 0
    for key, found in diseases.items():
        if len(found) > 1:
            ambiguous += 1
        elif key not in full:  # a subset that is itself a full set belongs to that set's group
            by_group[owner[key]].append(tuple(sorted(key)))
    return {g: sorted(v) for g, v in by_group.items()}, ambiguous


def diagnose_user(
    symptoms: list[str],
    lexicon: Lexicon,
    templates: Templates,
    rng: random.Random,
    frames: tuple[str, ...] = (),
    framed_share: float = 0.0,
) -> str:
    """A user's description of `symptoms`. A `framed_share` of them use the training text's emergency frames
    ("is this serious? {sign} and {companion}"), sometimes all lower-case: without these, urgent or casual
    wording would only ever precede an emergency reply in training, and the model would learn to
    escalate on the style of a message instead of its content."""
    order = rng.sample(symptoms, len(symptoms))
    if frames and rng.random() < framed_share:
        first, *rest = order
        sign = rng.choice(lexicon.phrasings[first])
        companion = (
            join_list([rng.choice(lexicon.phrasings[s]) for s in rest])
            if rest
            else rng.choice([p for p in lexicon.phrasings[first] if p != sign] or [sign])
        )
        text = rng.choice(frames).format(sign=sign, companion=companion)
        return text.lower() if rng.random() < 0.5 else sentence_case(text)
    if rng.random() < CLINICAL_SHARE:
        text = rng.choice(templates.diagnose_clinical).format(labels=join_list([lexicon.labels[s] for s in order]))
    else:
        clauses = join_list([rng.choice(lexicon.phrasings[s]) for s in order])
        text = rng.choice(templates.diagnose_lay).format(symptoms=clauses)
    return sentence_case(text)


def generate(
    kb: KnowledgeBase,
    lexicon: Lexicon,
    templates: Templates,
    rules: SafetyRules,
    training: TrainingText,
    config: AugmentConfig,
) -> tuple[list[Example], dict]:
    rng = random.Random(config.seed)
    partials, ambiguous = partial_subsets(kb.symptom_sets, config.max_partial_size)
    seen_users: set[str] = set()
    examples: list[Example] = []
    stats = Counter(ambiguous_subsets_skipped=ambiguous)

    def add(task: str, disease: str, symptoms: list[str], user: str, group: str, partial: bool = False) -> bool:
        if user in seen_users:
            stats["duplicate_texts_skipped"] += 1
            return False
        seen_users.add(user)
        reply = REPLIES[task](kb, disease, rules)
        examples.append(
            Example(f"{task}-{len(examples):05d}", task, disease, sorted(symptoms), user, reply, group, partial)
        )
        return True

    framing = (training.emergency_frames, config.framed_share)
    sets_by_disease: dict[str, list[SymptomSet]] = defaultdict(list)
    for s in kb.symptom_sets:
        sets_by_disease[s.disease].append(s)
    for disease in kb.diseases:
        want = config.per_disease.get("diagnose", 0)
        pool = [(p, s.group) for s in sets_by_disease[disease] for p in partials.get(s.group, [])]
        n_partial = min(round(want * config.partial_share), len(pool))
        stats["partial_shortfall"] += round(want * config.partial_share) - n_partial
        for subset, group in rng.sample(pool, n_partial):
            _retry(
                lambda: add(
                    "diagnose",
                    disease,
                    list(subset),
                    diagnose_user(list(subset), lexicon, templates, rng, *framing),
                    group,
                    partial=True,
                )
            )
        for i in range(want - n_partial):
            s = sets_by_disease[disease][i % len(sets_by_disease[disease])]
            _retry(
                lambda: add(
                    "diagnose",
                    disease,
                    list(s.symptoms),
                    diagnose_user(list(s.symptoms), lexicon, templates, rng, *framing),
                    s.group,
                )
            )
        for task, choices in (("describe", templates.describe), ("precautions", templates.precautions)):
            _question_examples(task, disease, choices, config.per_disease.get(task, 0), rng, add)
    _safety_examples(training, lexicon, templates, config.safety_examples, rng, add)
    return examples, dict(stats)


def _safety_examples(
    training: TrainingText,
    lexicon: Lexicon,
    templates: Templates,
    counts: dict[str, int],
    rng: random.Random,
    add: Callable[..., bool],
) -> None:
    """Emergency and refusal examples, alone or buried among ordinary symptoms, and minor everyday
    complaints that need neither (negatives for both, and for the style of a message). Half come from the
    training text's written phrasings (cycled), half are composed from its fragments (see `compose_emergency`
    and `compose_request`) when it has them. Groups keep every variant of one phrasing, and
    every composition around one sign or request frame, in one split."""
    symptoms = list(lexicon.phrasings)

    def context() -> str:
        chosen = rng.sample(symptoms, rng.randint(1, 3))
        return join_list([rng.choice(lexicon.phrasings[s]) for s in chosen])

    composable = [f for f in training.red_flags if f.training_signs]
    composers = {
        "emergency": (lambda: compose_emergency(training, rng.choice(composable), rng))
        if composable and training.emergency_frames
        else None,
        "refusal": (lambda: compose_request(training, rng)) if training.request_frames else None,
        "minor": (lambda: compose_minor(training, rng)) if training.minor_frames else None,
    }
    sources = {
        "emergency": (
            [(f"{f.name}|{i}", p) for f in training.red_flags for i, p in enumerate(f.training_phrasings)],
            templates.emergency,
            "flag",
        ),
        "refusal": ([(f"request|{i}", p) for i, p in enumerate(training.drug_requests)], templates.refusal, "request"),
        # a minor complaint is never buried among disease symptoms: that would make it a diagnose request
        "minor": ([(f"minor|{i}", p) for i, p in enumerate(training.minor_phrasings)], ("{complaint}",), "complaint"),
    }
    for task, (phrasings, choices, slot) in sources.items():
        want = counts.get(task, 0)
        if want and not phrasings:
            raise InputError(
                f"the safety training text has no {task} phrasings to build examples from",
                key=f"augment.safety_examples.{task}",
                fix="add phrasings to data/safety/training.yaml or set 0",
            )
        order = rng.sample(phrasings, len(phrasings)) if phrasings else []
        compose = composers[task]
        for n in range(want):
            if compose and n % 2:
                pick = compose
            else:
                group, phrasing = order[(n // 2 if compose else n) % len(order)]
                pick = functools.partial(_written, group, phrasing)

            def attempt(pick=pick) -> bool:
                group, text = pick()
                text = text.strip().rstrip(".?!")
                return add(
                    task,
                    "",
                    [],
                    sentence_case(rng.choice(choices).format(**{slot: text}, context=context())),
                    f"{task}|{group}",
                )

            _retry(attempt)


def _written(group: str, phrasing: str) -> tuple[str, str]:
    return group, phrasing


def compose_emergency(training: TrainingText, flag: RedFlagText, rng: random.Random) -> tuple[str, str]:
    """(group, message): one of the flag's signs with one of its companions, through an emergency frame.
    The group is the sign, so a sign seen in validation or test was never trained on."""
    signs = flag.training_signs
    i = rng.randrange(len(signs))
    frame = rng.choice(training.emergency_frames)
    return f"{flag.name}|sign{i}", frame.format(sign=signs[i], companion=rng.choice(flag.training_companions))


def compose_request(training: TrainingText, rng: random.Random) -> tuple[str, str]:
    """(group, message): a request frame filled with a medicine and/or an everyday complaint. The group is
    the frame. A medicine is drawn for every frame, even one without a {medicine} slot, so that the random
    stream (and so the examples) does not depend on which frames use it."""
    i = rng.randrange(len(training.request_frames))
    medicine = rng.choice(training.request_medicines) if training.request_medicines else ""
    return f"request|frame{i}", training.request_frames[i].format(
        medicine=medicine, problem=rng.choice(training.request_problems)
    )


def compose_minor(training: TrainingText, rng: random.Random) -> tuple[str, str]:
    """(group, message): a minor complaint through a minor frame. The group is the complaint, so a
    complaint seen in validation or test was never trained on."""
    i = rng.randrange(len(training.minor_complaints))
    return f"minor|complaint{i}", rng.choice(training.minor_frames).format(complaint=training.minor_complaints[i])


def _question_examples(task, disease, choices, want, rng, add) -> None:
    """`want` distinct questions about `disease`; the group is the template, so case variants stay together."""
    variants = [(t, name) for t in range(len(choices)) for name in disease_variants(disease)]
    if want > len(variants):
        raise InputError(
            f"asks for {want} {task} examples per disease but the templates allow {len(variants)}",
            key=f"augment.per_disease.{task}",
            fix=f"use at most {len(variants)} or add templates",
        )
    for t, name in rng.sample(variants, len(variants)):
        if want == 0:
            break
        want -= add(task, disease, [], sentence_case(choices[t].format(disease=name)), f"{task}|{disease}|t{t}")


def disease_variants(disease: str) -> list[str]:
    """How users write a disease name: as we do, and lower-cased except for acronyms ("GERD", "Hepatitis A")."""
    lower = " ".join(word if word.isupper() else word.lower() for word in disease.split())
    return [disease] if lower == disease else [disease, lower]


def _retry(attempt, tries: int = 20) -> None:
    """Re-sample a colliding user text a few times; a persistent collision is simply skipped."""
    for _ in range(tries):
        if attempt():
            return


def summarize(examples: list[Example], stats: dict) -> dict:
    per_task = Counter(e.task for e in examples)
    per_disease_task = Counter((e.task, e.disease) for e in examples)
    summary = {
        "examples": len(examples),
        "per_task": dict(sorted(per_task.items())),
        "partial_diagnose": sum(e.partial for e in examples),
        **stats,
    }
    for task in (t for t in per_task if t in KB_TASKS):
        counts = [per_disease_task[(task, d)] for d in names.DISEASES if (task, d) in per_disease_task]
        summary[f"{task}_per_disease"] = {"min": min(counts), "max": max(counts)}
    return summary
