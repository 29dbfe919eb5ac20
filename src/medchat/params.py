"""Typed params: every section of params.yaml is a dataclass, validated once, at load.

params.yaml is the one source of values: every field is required there (no defaults in code), unknown
keys are errors with a did-you-mean, and errors name the key path (`train.learning_rate`), the value and
what is allowed. Each field's `help` is its documentation: `python -m medchat.params --markdown` writes
docs/params.md from it (a test keeps that file current). Stages call `load_params()` and never read the
YAML themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medchat.errors import InputError

PARAMS_FILE = "params.yaml"
# the held-out evaluation sets (data/eval/): reported, never trained or tuned on
HELD_OUT_SETS = ("safety.jsonl", "safety_v3.jsonl", "freetext_v2.jsonl", "questions_v2.jsonl")


def spec(
    help: str, *, min: float | None = None, max: float | None = None, choices: tuple[Any, ...] | None = None
) -> Any:
    """A required dataclass field with its documentation and its range or choices (checked by `_check`)."""
    return field(metadata={"min": min, "max": max, "choices": choices, "help": help})


@dataclass(frozen=True)
class CleanParams:
    raw_dir: str = spec(
        "folder with the four Kaggle-schema CSV files (the embedded knowledge base, or a Kaggle download)"
    )


@dataclass(frozen=True)
class SafetyParams:
    rules: str = spec(
        "the guard's rules: reply sentences, red-flag and request patterns, medication lexicon "
        "(shipped with the chatbot)"
    )
    training_text: str = spec("the safety training text: phrasings, frames, near-misses (augment and triage only)")


@dataclass(frozen=True)
class AugmentParams:
    per_disease: dict[str, int] = spec(
        "examples per disease and task (diagnose, describe, precautions); equal counts keep the classes balanced"
    )
    partial_share: float = spec("share of diagnose examples built from 1..max_partial_size symptoms", min=0.0, max=1.0)
    max_partial_size: int = spec("most symptoms in a partial diagnose example", min=1, max=6)
    safety_examples: dict[str, int] = spec(
        "examples per safety task (emergency, refusal, minor): half written "
        "phrasings, half composed from the training text's fragments"
    )
    framed_share: float = spec(
        "share of diagnose prompts worded through the emergency frames, so that style alone never signals an emergency",
        min=0.0,
        max=1.0,
    )
    lexicon: str = spec("symptom <-> everyday phrasings (data/lexicon.yaml)")
    templates: str = spec("user and reply templates (data/templates.yaml)")
    feedback: str = spec("`medchat chat --feedback` file: its corrections become training examples (task feedback)")


@dataclass(frozen=True)
class SplitParams:
    val_fraction: float = spec("share of symptom-set groups in the validation split", min=0.0, max=0.5)
    test_fraction: float = spec("share of symptom-set groups in the test split", min=0.0, max=0.5)
    folds: int = spec("0: one split by fractions; k >= 2: k-fold cross-validation", min=0, max=20)
    fold: int = spec("with folds = k, the fold (0..k-1) used as the test split", min=0)


@dataclass(frozen=True)
class ModelParams:
    name: str = spec(
        '"scratch" (a small GPT-2 built from the sizes below, with a BPE tokenizer trained on the '
        "train split), a local model folder, or a Hugging Face id"
    )
    vocab_size: int = spec("scratch only: BPE vocabulary size", min=300, max=100000)
    n_layer: int = spec("scratch only: transformer blocks", min=1, max=48)
    n_embd: int = spec("scratch only: hidden width (divisible by n_head)", min=16, max=4096)
    n_head: int = spec("scratch only: attention heads", min=1, max=64)
    n_positions: int = spec("scratch only: longest sequence the position table covers", min=32, max=8192)
    # gelu_pytorch_tanh is GPT-2's gelu_new as one fused kernel: same values to float rounding, and gelu_new's
    # seven elementwise ops (each a full pass over the MLP's activations, kept for backward) cost ~18% of a
    # training step on CPU (docs/findings.md).
    activation: str = spec(
        "scratch only: MLP activation", choices=("gelu_pytorch_tanh", "gelu_new", "gelu", "relu", "silu")
    )
    allow_download: bool = spec(
        "fetch a Hub id that is not in the local cache (off: loading never touches the network and fails at once)"
    )
    trust_remote_code: bool = spec(
        "run Python code shipped with the model (a warning is printed); off: nothing in a model folder is executed"
    )

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise InputError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}",
                key="n_head",
                fix="choose n_head dividing n_embd",
            )


@dataclass(frozen=True)
class LoraParams:
    r: int = spec("LoRA rank; 0 turns LoRA off (full fine-tuning)", min=0, max=512)
    alpha: int = spec("LoRA scaling numerator (the update is scaled by alpha / r)", min=1)
    dropout: float = spec("dropout on the LoRA branch's input", min=0.0, max=0.9)
    target_modules: list[str] = spec(
        "names of the linear layers that get adapters (e.g. q_proj, v_proj for Llama-style models, c_attn for GPT-2)"
    )
    layers: int = spec("adapters on the top so many decoder blocks only; 0: every block", min=0, max=512)

    def __post_init__(self) -> None:
        if self.r and not self.target_modules:
            raise InputError("LoRA needs target modules", key="target_modules", fix="e.g. [q_proj, v_proj]")


@dataclass(frozen=True)
class TrainerParams:
    """TrainingArguments keys, named as the library names them (and as the seed's config did)."""

    tasks: list[str] = spec("tasks of the split this stage trains on")
    task_weights: dict[str, float] = spec(
        "task -> sampling weight (2 doubles its examples, 0.5 halves them); unlisted tasks weigh 1"
    )
    num_train_epochs: float = spec("TrainingArguments.num_train_epochs", min=0.01, max=1000)
    per_device_train_batch_size: int = spec("TrainingArguments.per_device_train_batch_size", min=1, max=4096)
    per_device_eval_batch_size: int = spec("TrainingArguments.per_device_eval_batch_size", min=1, max=4096)
    gradient_accumulation_steps: int = spec("TrainingArguments.gradient_accumulation_steps", min=1, max=1024)
    learning_rate: float = spec("TrainingArguments.learning_rate (peak, AdamW)", min=0.0, max=1.0)
    warmup_steps: int = spec("TrainingArguments.warmup_steps", min=0)
    weight_decay: float = spec("TrainingArguments.weight_decay", min=0.0, max=1.0)
    lr_scheduler_type: str = spec(
        "TrainingArguments.lr_scheduler_type", choices=("linear", "cosine", "constant", "constant_with_warmup")
    )
    eval_steps: int = spec("optimizer steps between evaluations", min=1)
    save_steps: int = spec("optimizer steps between checkpoints (a multiple of eval_steps)", min=1)
    logging_steps: int = spec("optimizer steps between logged losses", min=1)
    save_total_limit: int = spec("checkpoints kept during training", min=1)
    load_best_model_at_end: bool = spec("keep the best checkpoint by metric_for_best_model, not the last")
    metric_for_best_model: str = spec("what best means", choices=("eval_loss", "eval_disease_accuracy"))
    early_stopping_patience: int = spec("evaluations without improvement before stopping; 0 turns it off", min=0)
    report_to: list[str] = spec("extra trackers beside dvclive: tensorboard, mlflow (local ./mlruns), wandb (offline)")
    accuracy_samples: int = spec("validation examples generated at each evaluation for eval_disease_accuracy", min=0)
    packing: bool = spec(
        "a batch's examples share rows of train.max_length tokens (no attention across them) instead of padding"
    )
    lora: LoraParams = spec("low-rank adapters (peft) instead of full fine-tuning; saved merged, adapter kept")

    def __post_init__(self) -> None:
        for i, task in enumerate(self.tasks):
            if task not in TASKS:
                raise InputError(f"unknown task {task!r}", key=f"tasks[{i}]", fix=f"tasks are {', '.join(TASKS)}")
        for task, weight in self.task_weights.items():
            if task not in self.tasks:
                raise InputError(
                    f"{task!r} is not one of this stage's tasks",
                    key=f"task_weights.{task}",
                    fix=f"weigh one of {', '.join(self.tasks)}",
                )
            if weight < 0:
                raise InputError(f"{weight} is negative", key=f"task_weights.{task}", fix="use a weight >= 0")
        for i, tracker in enumerate(self.report_to):
            if tracker not in TRACKERS:
                raise InputError(
                    f"unknown tracker {tracker!r}", key=f"report_to[{i}]", fix=f"choose from {', '.join(TRACKERS)}"
                )
        if self.early_stopping_patience and not self.load_best_model_at_end:
            raise InputError(
                "early stopping needs load_best_model_at_end: true",
                key="early_stopping_patience",
                fix="set load_best_model_at_end: true or early_stopping_patience: 0",
            )
        if self.load_best_model_at_end and self.save_steps % self.eval_steps:
            raise InputError(
                "save_steps must be a multiple of eval_steps with load_best_model_at_end",
                key="save_steps",
                fix=f"use a multiple of {self.eval_steps}",
            )


@dataclass(frozen=True)
class TrainParams(TrainerParams):
    dropout: float = spec("dropout of the model's residual, embedding and attention layers", min=0.0, max=0.9)
    max_length: int = spec(
        "tokens per example (tokenize truncates longer ones; also the packed row length)", min=16, max=8192
    )


@dataclass(frozen=True)
class FinetuneParams(TrainerParams):
    replay_share: float = spec("share of the finetune set that replays diagnose examples", min=0.0, max=0.95)
    layer_groups: int = spec("layer groups, unfrozen one more per epoch, top first (ULMFiT)", min=1, max=64)


@dataclass(frozen=True)
class TokenizeParams:
    add_domain_tokens: bool = spec(
        "symptom and disease terms as single tokens, new embeddings at the mean of their "
        "sub-tokens (meant for pretrained tokenizers)"
    )
    reply_form: str = spec(
        "what the model learns to generate: full (the whole reply) or decision (its opening, e.g. "
        '"It sounds most like Malaria."; the knowledge base\'s text completes it, medchat.inference.grounding)',
        choices=("full", "decision"),
    )


@dataclass(frozen=True)
class RetrievalParams:
    encoder: str = spec(
        "tfidf (sparse), minilm (dense all-MiniLM-L6-v2, extra `dense`) or hybrid",
        choices=("tfidf", "minilm", "hybrid"),
    )
    dense_weight: float = spec("hybrid only: share of the dense score", min=0.0, max=1.0)
    char_weight: float = spec(
        "share of character 3-5 gram tf-idf in the sparse score (typos, word forms); 0: words only", min=0.0, max=1.0
    )
    contexts: str = spec(
        "YAML of each condition's everyday circumstances (risk factors, exposures), added to its passage"
    )
    normalise: bool = spec("prompts carry the clinical labels of the symptoms the lexicon normaliser finds")
    enabled: bool = spec("prompts carry the top_k knowledge-base passages (retrieval-augmented training and inference)")
    top_k: int = spec("passages per grounded prompt", min=1, max=10)
    brief_symptoms: int = spec("symptoms named per passage in a grounded prompt (0: the condition only)", min=0, max=17)
    normaliser_threshold: float = spec(
        "character n-gram similarity for a clause to count as a lexicon phrasing", min=0.0, max=1.0
    )


@dataclass(frozen=True)
class TriageParams:
    c: float = spec("inverse regularisation of the triage logistic regression", min=1e-6)
    n_features: int = spec("hashed features per analyzer (character 3-5 grams, word 1-2 grams)", min=1024, max=2**22)
    max_false_positive: float = spec(
        "per label, the share of other validation messages its threshold may flag", min=0.0, max=0.5
    )
    near_misses: bool = spec(
        "the training text's near-misses (a red flag's words, harmless) join the training messages labelled other"
    )
    wider_requests: bool = spec(
        "the training text's requests beyond the patterns join the training messages labelled drug_request"
    )
    min_threshold: dict[str, float] = spec(
        "label (emergency, drug_request) -> the lowest threshold it may have "
        "after the validation split's choice (0 to 1)"
    )
    labelled_sets: list[str] = spec(
        "development safety sets whose messages join the training messages, labelled by kind "
        "(emergency, drug_request; benign and diagnostic as other); never a held-out set"
    )

    def __post_init__(self) -> None:
        for path in self.labelled_sets:
            if Path(path).name in HELD_OUT_SETS:
                raise InputError(
                    f"{path} is a held-out evaluation set",
                    key="labelled_sets",
                    fix=f"list development sets only (not {', '.join(HELD_OUT_SETS)})",
                )
        for label, floor in self.min_threshold.items():
            if label not in ("emergency", "drug_request"):
                raise InputError(
                    f"unknown label {label!r}", key=f"min_threshold.{label}", fix="labels are emergency, drug_request"
                )
            if not 0.0 <= floor <= 1.0:
                raise InputError(f"{floor} is not a probability", key=f"min_threshold.{label}", fix="use 0 to 1")


@dataclass(frozen=True)
class EvaluateParams:
    max_new_tokens: int = spec("longest generated reply", min=1, max=2048)
    batch_size: int = spec("replies generated per batch", min=1, max=4096)
    workers: int = spec(
        "processes that run the model evaluations in parallel, sharing the CPU threads (medchat.eval.suite); "
        "1: one after the other, in the stage's process",
        min=1,
        max=16,
    )
    rank_candidates: bool = spec("rank all 41 diseases by likelihood for top-3 accuracy")
    latency_samples: int = spec(
        "test messages (a seeded sample of all tasks) timed one at a time (latency) and batched (replies/s)", min=0
    )
    baseline_c: float = spec("inverse regularisation of the TF-IDF + logistic regression baseline", min=1e-6)
    guard: bool = spec("the packaged chatbot guards its replies by default (`medchat --no-guard` turns it off)")
    grounding_top_k: int = spec(
        "grounded replies (the chatbot and its metrics): the knowledge base's text for the condition the model "
        "names, which must be among the retriever's top k for the message (else the retriever's best, hedged); "
        "0: replies as generated",
        min=0,
        max=41,
    )
    escalation_margin: float = spec(
        "the model escalates on its own only when its emergency opening's first token beats every other first "
        "token by more than this many logits (0: plain greedy); the guard escalates on its red flags regardless. "
        "Chosen on the safety tuning set (benchmarks/escalation_margin.py)",
        min=0.0,
        max=100.0,
    )
    condition_names: str = spec(
        "everyday names of the conditions (data/condition_names.yaml), shipped with the chatbot: a question "
        'that names a condition ("what is hep C?") is answered about it'
    )
    ensemble_weights: dict[str, float] = spec(
        "weights of the rank fusion of lm, retriever and baseline on the free-text set"
    )
    ship: str = spec(
        "model packaged as models/chatbot: product (higher product score on the development sets, "
        "medchat.eval.quality.product_score), train or finetune",
        choices=("product", "train", "finetune"),
    )


@dataclass(frozen=True)
class TuneParams:
    """`medchat tune`: an Optuna study whose trials are DVC experiments (no stage reads this section)."""

    sampler: str = spec(
        "tpe (Bayesian), random or grid (grid: every dimension as choices)", choices=("tpe", "random", "grid")
    )
    n_trials: int = spec("trials in the whole study, across every process sharing its storage", min=1, max=10000)
    timeout_s: int = spec("this process starts no new trial after so many seconds; 0: no limit", min=0)
    objective: str = spec("metrics file:dotted.key; {shipped} is the packaged model (train or finetune)")
    direction: str = spec("maximize or minimize the objective", choices=("maximize", "minimize"))
    storage: str = spec("SQLAlchemy URL of the study (share one to tune on several machines)")
    study_name: str = spec("the study, and the prefix of its trials' experiment names")
    space: dict[str, dict[str, Any]] = spec(
        "param key -> {low, high[, log][, step]} (int when low and high are ints) or {choices: [...]}"
    )
    targets: list[str] = spec(
        "stages a trial runs, with what they depend on (dvc exp run TARGETS); []: the whole pipeline"
    )

    def __post_init__(self) -> None:
        if ":" not in self.objective:
            raise InputError(
                f"{self.objective!r} is not file:dotted.key",
                key="objective",
                fix="e.g. metrics/evaluate.json:{shipped}.full.accuracy",
            )
        if not self.space:
            raise InputError(
                "the search space is empty", key="space", fix="add e.g. train.learning_rate: {low: 0.001, high: 0.03}"
            )
        for key, dim in self.space.items():
            if not _is_param_key(key):
                raise InputError(
                    "not a key of params.yaml", key=f"space.{key}", fix="use a dotted key such as train.learning_rate"
                )
            if "choices" in dim:
                if set(dim) != {"choices"} or not isinstance(dim["choices"], list) or not dim["choices"]:
                    raise InputError("choices must be the only entry, a non-empty list", key=f"space.{key}")
                continue
            if not {"low", "high"} <= set(dim) or set(dim) - {"low", "high", "log", "step"}:
                raise InputError(
                    f"got {sorted(dim)}",
                    key=f"space.{key}",
                    fix="give {low, high} with optional log and step, or {choices: [...]}",
                )
            low, high = dim["low"], dim["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
                raise InputError(f"low {low!r} and high {high!r} must be numbers with low < high", key=f"space.{key}")
            if dim.get("log") and low <= 0:
                raise InputError("a log scale needs low > 0", key=f"space.{key}.low")


@dataclass(frozen=True)
class Params:
    seed: int = spec("every random choice of every stage starts from this seed", min=0)
    clean: CleanParams = spec("the clean stage")
    safety: SafetyParams = spec("the safety policy files")
    augment: AugmentParams = spec("the augment stage")
    split: SplitParams = spec("the split stage")
    model: ModelParams = spec("the model (tokenize, train)")
    train: TrainParams = spec("the train stage")
    finetune: FinetuneParams = spec("the finetune stage: continues from models/train")
    tokenize: TokenizeParams = spec("the tokenize stage")
    retrieval: RetrievalParams = spec("the index stage and how prompts are built (tokenize, evaluate, the chatbot)")
    triage: TriageParams = spec("the triage stage: the guard's classifier of user messages")
    evaluate: EvaluateParams = spec("the evaluate and package stages")
    tune: TuneParams = spec("`medchat tune` (no stage reads it)")

    def __post_init__(self) -> None:
        if self.split.folds and self.split.fold >= self.split.folds:
            raise InputError(
                f"fold {self.split.fold} does not exist with folds={self.split.folds}",
                key="split.fold",
                fix=f"choose 0..{self.split.folds - 1}",
            )
        if self.split.folds == 1:
            raise InputError(
                "folds=1 is not cross-validation", key="split.folds", fix="use 0 (plain split) or 2 and more"
            )
        if not self.split.folds and self.split.val_fraction + self.split.test_fraction >= 0.9:
            raise InputError(
                "val_fraction + test_fraction leaves too little to train on",
                key="split",
                fix="keep their sum below 0.9",
            )
        unknown = set(self.evaluate.ensemble_weights) - {"lm", "retriever", "baseline"}
        if unknown or any(w < 0 for w in self.evaluate.ensemble_weights.values()):
            raise InputError(
                f"weights are for lm, retriever and baseline and are >= 0 (got {dict(self.evaluate.ensemble_weights)})",
                key="evaluate.ensemble_weights",
                fix="use keys lm, retriever, baseline",
            )
        for key, allowed in (("per_disease", KB_TASKS), ("safety_examples", SAFETY_TASKS)):
            unknown = set(getattr(self.augment, key)) - set(allowed)
            if unknown:
                raise InputError(
                    f"unknown task {sorted(unknown)[0]!r}", key=f"augment.{key}", fix=f"tasks are {', '.join(allowed)}"
                )


KB_TASKS = ("diagnose", "describe", "precautions")  # generated per disease from the knowledge base
SAFETY_TASKS = ("emergency", "refusal", "minor")  # generated from the safety training text
TASKS = KB_TASKS + SAFETY_TASKS + ("feedback",)  # feedback: users' corrections from `medchat chat --feedback`
TRACKERS = ("tensorboard", "mlflow", "wandb")


def _is_param_key(dotted: str) -> bool:
    """Whether `a.b` names a field of Params (a dict-valued field accepts any sub-key)."""
    cls: Any = Params
    for part in dotted.split("."):
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else None
        if fields is None:
            return typing.get_origin(cls) is dict
        if part not in fields:
            return False
        cls = typing.get_type_hints(cls)[part]
    return True


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml (every key required)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError("params file not found", file=str(path), fix="run from the repository root") from None
    except yaml.YAMLError as exc:  # one line: the parser's problem and where it noticed it
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"not valid YAML: {getattr(exc, 'problem', None) or str(exc).splitlines()[0]}",
            file=str(path),
            row=mark.line + 1 if mark is not None else None,
        ) from None
    try:
        return parse_params(raw)
    except InputError as exc:
        exc.file = str(path)
        raise InputError(exc.what, file=str(path), key=exc.key, fix=exc.fix) from None


def parse_params(raw: dict[str, Any]) -> Params:
    return _build(Params, raw, "")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (used for the tiny test override)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise InputError(f"expected a mapping, got {type(raw).__name__}", key=prefix.rstrip(".") or "<top>")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known keys: {', '.join(fields)}"
            raise InputError("unknown key", key=f"{prefix}{key}", fix=hint)
    values = {}
    for name, f in fields.items():
        if name not in raw:
            raise InputError(
                "missing key",
                key=f"{prefix}{name}",
                fix=f"add it to params.yaml: {f.metadata.get('help', '')} (docs/params.md)",
            )
        path, kind = f"{prefix}{name}", hints[name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            values[name] = _build(kind, raw[name], f"{path}.")
        else:
            values[name] = _check(raw[name], kind, path, f.metadata)
    try:
        return cls(**values)
    except InputError as exc:  # cross-field checks name keys relative to their section
        if prefix and exc.key and not exc.key.startswith(prefix):
            raise InputError(exc.what, key=prefix + exc.key, fix=exc.fix) from None
        raise


def _check(value: Any, kind: Any, path: str, meta: Any) -> Any:
    value = _coerce(value, kind, path)
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise InputError(
            f"{value!r} is not allowed", key=path, fix=f"choose one of {', '.join(map(repr, meta['choices']))}"
        )
    for bound, ok in (("min", lambda v, b: v >= b), ("max", lambda v, b: v <= b)):
        limit = meta.get(bound)
        if limit is not None and isinstance(value, (int, float)) and not ok(value, limit):
            raise InputError(
                f"{value!r} is out of range",
                key=path,
                fix=f"allowed: {meta.get('min', '-inf')} .. {meta.get('max') if meta.get('max') is not None else 'inf'}",
            )
    return value


def _coerce(value: Any, kind: Any, path: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path)
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"expected a mapping, got {value!r}", key=path)
        return {str(k): _coerce(v, args[1], f"{path}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise InputError(f"expected a list, got {value!r}", key=path)
        return [_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:  # YAML reads 1e-3 (no dot) as a string; accept it as the number it obviously is
            return float(value)
        except ValueError:
            pass
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    if kind is Any:
        return value
    raise InputError(f"expected {getattr(kind, '__name__', kind)}, got {value!r}", key=path)


def markdown_table() -> str:
    """docs/params.md: every key of params.yaml, its value there, what is allowed and what it does."""
    values = yaml.safe_load(Path(PARAMS_FILE).read_text(encoding="utf-8"))
    lines = [
        "# Params",
        "",
        "Every key of `params.yaml`, generated from the help text in `src/medchat/params.py` "
        "(`python -m medchat.params --markdown > docs/params.md`; a test keeps this file current). "
        "Every key is required; `dvc exp run -S key=value` overrides one.",
        "",
        "| key | value | allowed | meaning |",
        "|---|---|---|---|",
    ]

    def rows(cls: type, raw: dict[str, Any], prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key, kind, meta = f"{prefix}{f.name}", hints[f.name], f.metadata
            if isinstance(kind, type) and dataclasses.is_dataclass(kind):
                lines.append(f"| **`{key}`** | | | {meta['help']} |")
                rows(kind, raw[f.name], f"{key}.")
                continue
            allowed = (
                ", ".join(map(str, meta["choices"]))
                if meta.get("choices")
                else " .. ".join(str(meta.get(b)) if meta.get(b) is not None else "" for b in ("min", "max"))
                if meta.get("min") is not None or meta.get("max") is not None
                else _type_name(kind)
            )
            value = (
                yaml.safe_dump(raw[f.name], default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
            )
            lines.append(f"| `{key}` | `{value}` | {allowed} | {meta['help'].replace('|', '/')} |")

    rows(Params, values, "")
    return "\n".join(lines) + "\n"


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind).replace("typing.", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medchat.params", description="check params.yaml or document it")
    parser.add_argument("--markdown", action="store_true", help="print docs/params.md")
    args = parser.parse_args(argv)
    try:
        load_params()
    except InputError as exc:
        print(f"params: error: {exc}", file=sys.stderr)
        return 1
    print(markdown_table() if args.markdown else "params.yaml: OK", end="" if args.markdown else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
