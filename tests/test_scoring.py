import pytest

from medchat.data.names import parse_diseases
from medchat.eval.baseline import Baseline
from medchat.eval.report import metrics_table
from medchat.eval.scoring import classification, lcs_length, percentile, rouge_l, text_overlap


def test_parse_diseases_in_order_without_substring_matches():
    reply = "It sounds most like Osteoarthritis. Arthritis and hepatitis A are less likely; not Hepatitis B."
    assert parse_diseases(reply) == ["Osteoarthritis", "Arthritis", "Hepatitis A", "Hepatitis B"]
    assert parse_diseases("Common   cold, Dimorphic hemmorhoids(piles)") == [
        "Common Cold",
        "Dimorphic hemorrhoids (piles)",
    ]


def test_classification_counts_missing_predictions_as_wrong():
    out = classification(
        ["Malaria", "GERD", "Malaria"],
        ["Malaria", None, "GERD"],
        [["Malaria"], ["Acne", "Allergy", "GERD"], ["GERD", "Acne", "AIDS"]],
    )
    assert out == {
        "n": 3,
        "accuracy": pytest.approx(0.3333),
        "macro_f1": pytest.approx(0.3333),
        "top3": pytest.approx(0.6667),
    }
    assert classification([], []) == {}


def test_text_overlap_perfect_and_poor():
    refs = ["It sounds most like Malaria. Rest and drink water."]
    assert text_overlap(refs, refs) == {"bleu": 100.0, "rougeL": 1.0}
    poor = text_overlap(refs, ["Completely unrelated words here."])
    assert poor["bleu"] < 10 and poor["rougeL"] < 0.2


def test_rouge_l_equals_rouge_score_on_kb_replies():
    """Our bit-parallel ROUGE-L is pinned to the reference package on realistic replies, their edits
    (drops, swaps, repeats: the cases that break a wrong LCS) and edge cases, long ones included."""
    import random

    from conftest import ROOT
    from rouge_score import rouge_scorer

    from medchat.data.kb import read_kb
    from medchat.data.medication import MedicationLexicon

    kb, _ = read_kb(ROOT / "data" / "raw", MedicationLexicon.from_rules(ROOT / "data" / "safety" / "rules.yaml"))
    texts = [
        f"It sounds most like {d}. {kb.descriptions[d]} Precautions: {', '.join(kb.safe_precautions(d))}."
        for d in kb.diseases
    ]
    rng = random.Random(0)
    pairs = [("", "anything"), ("words", ""), ("!!!", "???"), ("a a a b", "a b a b a"), ("Dose: 5mg", "dose 5 MG")]
    for text in texts:
        words = text.split()
        edited = [w for w in words if rng.random() > 0.2]
        rng.shuffle(edited[: len(edited) // 3])
        pairs += [(text, " ".join(edited)), (text, " ".join(words * 3)), (text, rng.choice(texts))]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for reference, hypothesis in pairs:
        assert rouge_l(reference, hypothesis) == pytest.approx(
            scorer.score(reference, hypothesis)["rougeL"].fmeasure, abs=1e-12
        ), (reference, hypothesis)
    assert max(len(t.split()) for t in texts) > 64  # beyond one machine word of bits


def test_lcs_length_small_cases():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], ["a"]) == lcs_length(["a"], []) == 0
    assert lcs_length(["x"] * 200, ["x"] * 150) == 150


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 100) == 100
    assert percentile([7.0], 95) == 7.0 and percentile([], 95) == 0.0


def test_baseline_learns_words_to_diseases():
    users = [
        "my skin itches and has a rash",
        "itchy rash on my arms",
        "burning chest after food",
        "heartburn after meals",
    ] * 3
    labels = ["Fungal infection", "Fungal infection", "GERD", "GERD"] * 3
    baseline = Baseline.fit(users, labels, c=10.0, seed=0)
    assert [r[0] for r in baseline.rank(["a rash that itches", "heartburn after food"], k=2)] == [
        "Fungal infection",
        "GERD",
    ]


def test_metrics_table_skips_missing_rows():
    table = metrics_table(
        {"baseline": {"full": {"accuracy": 0.9}}, "train": {"full": {"accuracy": 0.95, "bleu": 40.1}}}
    )
    assert "| full-symptom accuracy | 0.9 | 0.95 |" in table
    assert "| diagnose BLEU (full) | – | 40.1 |" in table
    assert "perplexity" not in table


def test_the_product_score_ships_what_users_get_not_templated_accuracy():
    from medchat.eval.quality import product_score, shipped_model

    safe = {"escalation_recall": 1.0, "refusal_rate": 1.0, "referral_rate": 1.0, "false_escalation": 0.0}
    reads = {  # templated accuracy high, but it names the wrong condition on free text and answers no question
        "full": {"accuracy": 0.99},
        "describe": {"names_disease": 1.0},  # the templated questions count for nothing
        "freetext": {"chatbot": {"top1": 0.2}},
        "questions_dev": {"guard_on": {"answered": 0.9}, "chatbot": {"answered": 0.0}},
        "safety_tuning": {"guard_on": {**safe, "leak_rate": 0.0}},
    }
    helps = {
        "full": {"accuracy": 0.9},
        "describe": {"names_disease": 0.5},
        "freetext": {"chatbot": {"top1": 0.8}},
        "questions_dev": {"guard_on": {"answered": 0.5}, "chatbot": {"answered": 0.95}},
        "safety_tuning": {"guard_on": {**safe, "leak_rate": 0.0}},
    }
    assert product_score(reads) == round((0.2 + 0.0 + 1.0) / 3, 4)
    assert product_score(helps) == round((0.8 + 0.95 + 1.0) / 3, 4)
    assert shipped_model({"train": reads, "finetune": helps}, "product") == "finetune"
    assert shipped_model({"train": helps, "finetune": reads}, "product") == "train"
    assert shipped_model({"train": helps, "finetune": reads}, "finetune") == "finetune"
    leaky = {**helps, "safety_tuning": {"guard_on": {**safe, "leak_rate": 1.0}}}
    assert product_score(leaky) < product_score(helps)
