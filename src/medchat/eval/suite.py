"""The evaluate stage's model runs: what each model gets on the development sets (which choose the model that
ships) and what the shipped one gets on the held-out sets, run as jobs in parallel worker processes.

Why processes: on a CPU the evaluation is almost all small batched forward passes (a 135M model, 8 prompts of
~100 tokens), and torch's threads scale poorly on them: two processes with one thread each generated 240
replies in 36 s where one process with both threads took 53 s (docs/findings.md). The jobs are independent
(one model, one group of sets), so `evaluate.workers` processes share the machine's threads and each runs
jobs on its own copy of the model. With 1 worker the jobs run one after the other in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medchat.inference.chat_model import ChatModel
    from medchat.params import Params

SPLIT_DIR, CLEAN_DIR = "data/split", "data/clean"
SAFETY_SET = "data/eval/safety.jsonl"
TUNING_SET = "data/eval/safety_tuning.jsonl"  # the set the guard's patterns are tuned on; SAFETY_SET stays untouched
MODELS = {"train": "models/train", "finetune": "models/finetune"}
TRIAGE, INDEX = "models/triage", "models/retriever"
FREETEXT = "data/eval/freetext.jsonl"
# version 2, written blind to the repository: reported, never tuned on
FREETEXT_V2, QUESTIONS_V2 = "data/eval/freetext_v2.jsonl", "data/eval/questions_v2.jsonl"
# second and third development sets, written blind to the repository: the retriever's and the guard detectors' rates
FREETEXT_DEV, SAFETY_DEV = "data/eval/freetext_dev.jsonl", "data/eval/safety_dev.jsonl"
FREETEXT_DEV3, SAFETY_DEV3 = "data/eval/freetext_dev3.jsonl", "data/eval/safety_dev3.jsonl"
SAFETY_DEV4 = "data/eval/safety_dev4.jsonl"  # fourth: medicine requests, and questions that only look like them
SAFETY_V3 = "data/eval/safety_v3.jsonl"  # a fresh held-out safety set (2026-12-07): the guard's detectors only
QUESTIONS_DEV = "data/eval/questions_dev.jsonl"  # written blind: the questions that choose what ships


@dataclass
class Suite:
    """Everything evaluate reads, loaded once per process; models are loaded when a job first needs them."""

    params: Params
    rules: Any
    triage: Any
    prompts: Any
    kb: Any
    lexicon: Any
    grounding: Any
    composer: Any
    drafts: list[str]
    baseline: Any
    train_rows: list[dict]
    test_rows: list[dict]
    safety_items: list[dict]
    tuning_items: list[dict]
    free_sets: dict[str, list[dict]]
    detector_sets: dict[str, list[dict]]  # safety sets the guard's detectors are measured on (no model)
    questions: list[dict]
    questions_dev: list[dict]
    chats: dict[str, ChatModel] = field(default_factory=dict)

    @classmethod
    def load(cls, params: Params) -> Suite:
        """Raises InputError (with the file) for a missing or malformed input."""
        from medchat.artifacts import read_jsonl
        from medchat.data.condition_names import ConditionNames
        from medchat.data.eval_sets import load_freetext, load_questions, load_safety_set
        from medchat.data.kb import load_tidy
        from medchat.data.lexicon import Lexicon
        from medchat.eval.baseline import Baseline
        from medchat.inference.drafting import reply_texts
        from medchat.inference.grounding import Composer, Grounding, decision
        from medchat.retrieval.prompts import PromptBuilder
        from medchat.safety.rules import SafetyRules
        from medchat.safety.triage import Triage

        e = params.evaluate
        train_rows = read_jsonl(f"{SPLIT_DIR}/train.jsonl")
        rules, prompts, kb = SafetyRules.load(params.safety.rules), PromptBuilder.load(INDEX), load_tidy(CLEAN_DIR)
        condition_names = ConditionNames.load(e.condition_names)
        # a decision model's openings are composed into whole replies from the knowledge base
        decides = params.tokenize.reply_form == "decision"
        diagnose = [r for r in train_rows if r["task"] == "diagnose"]
        return cls(
            params=params,
            rules=rules,
            triage=Triage.load(TRIAGE),
            prompts=prompts,
            kb=kb,
            lexicon=Lexicon.load(params.augment.lexicon),
            grounding=Grounding(kb, rules, prompts, e.grounding_top_k, condition_names) if e.grounding_top_k else None,
            composer=Composer(kb, rules) if decides else None,
            # greedy decoding drafts from the training replies (medchat.inference.drafting): same replies, fewer passes
            drafts=[decision(t, rules) for t in reply_texts(train_rows)] if decides else reply_texts(train_rows),
            baseline=Baseline.fit(
                [r["user"] for r in diagnose], [r["disease"] for r in diagnose], e.baseline_c, params.seed
            ),
            train_rows=train_rows,
            test_rows=read_jsonl(f"{SPLIT_DIR}/test.jsonl"),
            safety_items=load_safety_set(SAFETY_SET),
            tuning_items=load_safety_set(TUNING_SET),
            free_sets={
                "freetext": load_freetext(FREETEXT),
                "freetext_v2": load_freetext(FREETEXT_V2),
                "freetext_dev": load_freetext(FREETEXT_DEV),
                "freetext_dev3": load_freetext(FREETEXT_DEV3),
            },
            detector_sets={
                "safety_dev": load_safety_set(SAFETY_DEV),
                "safety_dev3": load_safety_set(SAFETY_DEV3),
                "safety_dev4": load_safety_set(SAFETY_DEV4),
                "safety_v3": load_safety_set(SAFETY_V3),
            },
            questions=load_questions(QUESTIONS_V2),
            questions_dev=load_questions(QUESTIONS_DEV),
        )

    def chat(self, name: str) -> ChatModel:
        from medchat.inference.chat_model import ChatModel
        from medchat.inference.grounding import escalation_bias

        if name not in self.chats:
            e = self.params.evaluate
            chat = ChatModel.load(
                MODELS[name],
                max_new_tokens=e.max_new_tokens,
                batch_size=e.batch_size,
                drafts=self.drafts,
                composer=self.composer,
            )
            chat.opening_bias = escalation_bias(chat.tokenizer, self.rules, e.escalation_margin)
            self.chats[name] = chat
        return self.chats[name]

    def _chatbot_on(self, chat: ChatModel, items: list[dict]) -> dict:
        """The LM's own reply, and the chatbot's: grounded, then guarded."""
        from medchat.eval.freetext import evaluate_freetext

        e = self.params.evaluate
        free, _ = evaluate_freetext(
            items,
            self.prompts,
            self.baseline,
            chat,
            dict(e.ensemble_weights),
            self.grounding,
            e.rank_candidates,
            self.rules if e.guard else None,
            self.triage,
        )
        return {k: free[k] for k in ("lm", "lm_generated", "ensemble", "chatbot") if k in free}

    # --- jobs: (results, prediction rows) ------------------------------------------------------

    def development(self, name: str) -> tuple[dict, list[dict]]:
        """One model on the test split, the safety tuning set, free-text v1 and the development questions: the sets
        that choose what ships."""
        from medchat.eval.freetext import evaluate_questions
        from medchat.eval.quality import evaluate_model, product_score
        from medchat.eval.safety_metrics import evaluate_safety
        from medchat.inference.grounding import decision

        chat = self.chat(name)
        # perplexity of what the model learned to generate: a decision model's openings (tokenize.reply_form)
        target = (lambda reply: decision(reply, self.rules)) if self.composer is not None else None
        results, rows = evaluate_model(chat, self.test_rows, self.params.evaluate.rank_candidates, self.prompts, target)
        results["safety_tuning"] = evaluate_safety(chat, self.rules, self.tuning_items, self.triage, self.prompts)[0]
        results["freetext"] = self._chatbot_on(chat, self.free_sets["freetext"])
        results["questions_dev"] = evaluate_questions(
            chat, self.prompts, self.rules, self.triage, self.questions_dev, self.grounding
        )
        results["product_score"] = product_score(results)
        return results, [{"model": name, **r} for r in rows]

    def held_out_short(self, name: str) -> tuple[dict, list[dict]]:
        """Safety v2 and questions v2 (short messages: about as many prompt tokens as free-text v2 alone)."""
        from medchat.eval.freetext import evaluate_questions
        from medchat.eval.safety_metrics import evaluate_safety

        chat = self.chat(name)
        safety, rows = evaluate_safety(chat, self.rules, self.safety_items, self.triage, self.prompts)
        questions = evaluate_questions(chat, self.prompts, self.rules, self.triage, self.questions, self.grounding)
        return {"safety": safety, "questions_v2": questions}, [{"model": name, "task": "safety", **r} for r in rows]

    def held_out_freetext(self, name: str) -> tuple[dict, list[dict]]:
        """Free-text v2: symptom descriptions in people's own words."""
        return {"freetext_v2": self._chatbot_on(self.chat(name), self.free_sets["freetext_v2"])}, []


JOBS: dict[str, Callable[[Suite, str], tuple[dict, list[dict]]]] = {
    "development": Suite.development,
    "held_out_short": Suite.held_out_short,
    "held_out_freetext": Suite.held_out_freetext,
}

_worker_suite: Suite | None = None  # one per worker process, loaded by its first job


def _run_in_worker(job: str, model: str, threads: int) -> tuple[dict, list[dict]]:
    import torch

    from medchat.model.loading import quiet_progress
    from medchat.params import load_params

    global _worker_suite
    if _worker_suite is None:
        torch.set_num_threads(threads)
        quiet_progress()
        _worker_suite = Suite.load(load_params())
    return JOBS[job](_worker_suite, model)


Results = list[tuple[dict, list[dict]]]


@contextmanager
def job_runner(suite: Suite, workers: int) -> Iterator[Callable[[list[tuple[str, str]]], Results]]:
    """A function that runs (job, model) pairs and returns their results in order. With more than one worker
    they run in that many spawned processes (which read the same inputs from the working directory), each
    with its share of the threads; the processes, and the models they loaded, last until the block ends."""
    if workers <= 1:
        yield lambda jobs: [JOBS[job](suite, model) for job, model in jobs]
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    threads = max(1, torch.get_num_threads() // workers)
    # spawn, not fork: a forked copy of a process whose torch thread pool already ran can deadlock
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield lambda jobs: [f.result() for f in [pool.submit(_run_in_worker, j, m, threads) for j, m in jobs]]
