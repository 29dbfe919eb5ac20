"""The packaged chatbot (models/chatbot): its folder format, written by the package stage, and the runtime
that the `medchat` CLI answers with.

A package holds the shipped model (safetensors, config, tokenizer), the safety rules the guard applies,
the triage classifier that widens them, the prompt builder the model was trained with (normaliser,
retriever, settings), the knowledge base replies are grounded in (kb/) and the conditions' everyday names
(condition_names.yaml), the reply texts decoding drafts from, a model card, and `medchat.json`: whether
replies are guarded by default, the grounding's top k (medchat.inference.grounding; 0: replies as
generated), the reply form (a decision model's openings are composed into whole replies from kb/) and
the escalation margin on the model's own emergency decision.
Everything in it is data: loading a package never runs its code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from medchat.data.condition_names import ConditionNames
from medchat.data.kb import load_tidy
from medchat.errors import InputError
from medchat.inference.chat_model import ChatModel
from medchat.inference.drafting import save_drafts
from medchat.inference.grounding import Composer, Grounding, escalation_bias
from medchat.retrieval.prompts import PROMPTS_FILE, PromptBuilder
from medchat.safety.guard import guard_all
from medchat.safety.rules import SafetyRules
from medchat.safety.triage import Triage, find

# {"guard": bool, "grounding_top_k": int, "reply_form": "full" | "decision", "escalation_margin": float}
PACKAGE_FILE = "medchat.json"
KB_DIR = "kb"  # the tidy knowledge base (data/clean)
RULES_FILE = "safety_rules.yaml"
NAMES_FILE = "condition_names.yaml"  # everyday names of the conditions (medchat.data.condition_names)
CARD_FILE = "README.md"


def write_package(
    out: Path,
    model_dir: str | Path,
    rules: str | Path,
    triage: Triage,
    index_dir: str | Path,
    drafts: list[str],
    card: str,
    guard: bool,
    kb_dir: str | Path,
    grounding_top_k: int,
    reply_form: str = "full",
    condition_names: str | Path | None = None,
    escalation_margin: float = 0.0,
) -> None:
    """Fill the (empty, staging) folder `out` with a package of the model in `model_dir`."""
    for item in Path(model_dir).iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
    (out / CARD_FILE).write_text(card, encoding="utf-8")
    shutil.copy2(rules, out / RULES_FILE)
    triage.save(out)
    for item in Path(index_dir).iterdir():  # the prompt builder: normaliser, retriever and its settings
        shutil.copy2(item, out / item.name)
    shutil.copytree(kb_dir, out / KB_DIR)
    if condition_names is not None:
        shutil.copy2(condition_names, out / NAMES_FILE)
    settings = {
        "guard": guard,
        "grounding_top_k": grounding_top_k,
        "reply_form": reply_form,
        "escalation_margin": escalation_margin,
    }
    (out / PACKAGE_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    save_drafts(out, drafts)


class Chatbot:
    """A trained model folder (a package, or models/train / models/finetune) with the safety guard around
    it: on as the package says (on for a bare model folder) unless `guard` overrides it. A folder without
    its own safety rules uses `fallback_rules`."""

    def __init__(
        self,
        folder: str | Path,
        guard: bool | None = None,
        fallback_rules: str | Path = "data/safety/rules.yaml",
        max_new_tokens: int = 160,
        batch_size: int = 64,
    ):
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError("model folder not found", file=str(folder), fix="run `dvc repro` or pass --model")
        self.chat = ChatModel.load(folder, max_new_tokens=max_new_tokens, batch_size=batch_size)
        package = folder / PACKAGE_FILE
        settings = json.loads(package.read_text()) if package.exists() else {}
        use_guard = settings.get("guard", True) if guard is None else guard
        self.prompts = PromptBuilder.load(folder) if (folder / PROMPTS_FILE).exists() else None
        top_k = settings.get("grounding_top_k", 0)
        grounded = bool(top_k) and self.prompts is not None and (folder / KB_DIR).is_dir()
        composed = settings.get("reply_form") == "decision"
        margin = float(settings.get("escalation_margin", 0.0))
        if composed and not (folder / KB_DIR).is_dir():
            raise InputError("a decision model's package lacks its knowledge base", file=str(folder / KB_DIR))
        rules_file = folder / RULES_FILE
        # the guard needs the rules, and so do grounding and composing (their replies carry its sentences)
        rules = (
            SafetyRules.load(rules_file if rules_file.exists() else fallback_rules)
            if use_guard or grounded or composed or margin
            else None
        )
        kb = load_tidy(folder / KB_DIR) if (composed or grounded) and rules is not None else None
        if composed and kb is not None and rules is not None:
            self.chat.composer = Composer(kb, rules)
        if margin and rules is not None:
            self.chat.opening_bias = escalation_bias(self.chat.tokenizer, rules, margin)
        self.rules = rules if use_guard else None
        self.triage = find(folder) if use_guard else None
        # without the file (an older package), questions are matched by the conditions' own names only
        names = ConditionNames.load(folder / NAMES_FILE) if (folder / NAMES_FILE).exists() else ConditionNames({})
        self.grounding = (
            Grounding(kb, rules, self.prompts, top_k, names)
            if grounded and kb is not None and rules is not None and self.prompts is not None
            else None
        )

    def replies(self, texts: list[str]) -> tuple[list[str], float]:
        """Grounded and guarded replies to user messages, in order, and the seconds generation took."""
        generation = self.chat.generate(self.prompts(texts) if self.prompts is not None else texts)
        replies = self.grounding(texts, generation.replies) if self.grounding is not None else generation.replies
        if self.rules is not None:
            replies = [g.reply for g in guard_all(self.rules, self.triage, texts, replies)]
        return replies, generation.seconds
