"""The whole pipeline on the tiny override, in a fresh copy of the repository: dvc repro, the CLI on the
packaged model, and an experiment whose params and metrics diffs DVC shows."""

import json
import subprocess
import sys
import time

import pytest
import yaml
from conftest import NO_NETWORK, ROOT, copy_project, dvc, dvc_detached, dvc_env, scratch_raw

from medchat.ops.experiments import experiment_records
from medchat.params import merge

pytestmark = pytest.mark.slow
STAGES = ("clean", "augment", "split", "tokenize", "train", "finetune", "evaluate")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = copy_project(tmp_path_factory.mktemp("e2e") / "project")
    params = merge(scratch_raw(), yaml.safe_load((ROOT / "tests" / "params-tiny.yaml").read_text()))
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the offline guarantee: no HF_HUB_OFFLINE and no network, yet the default pipeline runs (it never asks)
    dvc(
        "repro",
        cwd=path,
        env={
            **NO_NETWORK,
            "HF_HUB_OFFLINE": None,
            "TRANSFORMERS_OFFLINE": None,
            "HF_DATASETS_OFFLINE": None,
            "HF_HOME": str(path.parent / "hf-home"),
        },
    )
    return path


def test_every_stage_ran_and_dvc_is_clean(project):
    for name in ("clean", "augment", "split", "index", "triage", "tokenize", "train", "finetune", "evaluate"):
        assert (project / "metrics" / f"{name}.json").exists(), name
    assert (project / "models" / "chatbot").is_dir()  # the package stage
    base = json.loads((project / "models" / "base" / "source.json").read_text())  # scratch: the record alone
    assert base["kind"] == "scratch" and {p.name for p in (project / "models" / "base").iterdir()} == {"source.json"}
    assert "up to date" in dvc("status", cwd=project).stdout
    for model in ("train", "finetune", "chatbot"):
        files = {p.name for p in (project / "models" / model).iterdir()}
        assert "model.safetensors" in files and "config.json" in files and "tokenizer.json" in files, model
        assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    assert (project / "models" / "chatbot" / "README.md").read_text().count("Safety notice") == 1
    settings = json.loads((project / "models" / "chatbot" / "medchat.json").read_text())
    assert settings == {"guard": True, "grounding_top_k": 1, "reply_form": "decision", "escalation_margin": 0.0}
    kb = {p.name for p in (project / "models" / "chatbot" / "kb").iterdir()}
    assert kb == {p.name for p in (project / "data" / "clean").iterdir()}
    assert (project / "models" / "chatbot" / "safety_rules.yaml").read_bytes() == (
        ROOT / "data/safety/rules.yaml"
    ).read_bytes()
    assert (project / "models" / "chatbot" / "condition_names.yaml").read_bytes() == (
        ROOT / "data/condition_names.yaml"
    ).read_bytes()
    assert not (project / "models" / "chatbot" / "training.yaml").exists()  # training text never ships
    assert {"triage.json", "triage.npz"} <= {p.name for p in (project / "models" / "chatbot").iterdir()}


def test_packaged_chatbot_drafts_from_the_training_replies(project):
    from medchat.inference.chat_model import ChatModel
    from medchat.inference.grounding import decision
    from medchat.safety.rules import SafetyRules

    chatbot = project / "models" / "chatbot"
    train = [json.loads(line) for line in (project / "data" / "split" / "train.jsonl").read_text().splitlines()]
    # a decision model (tokenize.reply_form: decision) generates reply openings, so it drafts from those
    rules = SafetyRules.load(project / "data" / "safety" / "rules.yaml")
    drafts = json.loads((chatbot / "drafts.json").read_text())
    assert drafts == sorted({decision(r["reply"], rules) for r in train})
    assert all(any(r["reply"].startswith(d) for r in train) for d in drafts)
    drafted = ChatModel.load(chatbot, max_new_tokens=80, batch_size=4)
    assert drafted.drafter is not None
    plain = ChatModel(drafted.model, drafted.tokenizer, max_new_tokens=80, batch_size=4)
    test = [json.loads(line)["user"] for line in (project / "data" / "split" / "test.jsonl").read_text().splitlines()]
    assert drafted.generate(test[:12]).replies == plain.generate(test[:12]).replies


def test_metrics_and_report(project):
    results = json.loads((project / "metrics" / "evaluate.json").read_text())
    assert set(results) == {"baseline", "train", "finetune", "retriever", "shipped", "test_examples", "guard_detectors"}
    ablation = results["retriever"]["ablation"]
    assert set(ablation) == {"tfidf_labels", "tfidf_lexicon", "tfidf_lexicon_chars", "tfidf_lexicon_normaliser"}
    # the configured index is the pipeline's own retriever
    assert ablation["tfidf_lexicon_chars"]["top1"] == results["retriever"]["freetext"]["raw"]["top1"]
    assert set(results["retriever"]["test"]) == {"recall@1", "recall@3", "recall@5", "n"}
    assert results["retriever"]["freetext"]["raw"]["n"] == 246 and results["retriever"]["freetext"]["raw"]["top1"] > 0.5
    assert (
        results["retriever"]["freetext_v2"]["raw"]["n"] == 328 and results["baseline"]["freetext_v2"]["raw"]["n"] == 328
    )
    shipped = results["shipped"]
    assert shipped in ("train", "finetune")
    # both models on the development sets (they choose which ships), the held-out sets for the shipped one only
    held_out = {"safety", "freetext_v2", "questions_v2"}
    for model in ("train", "finetune"):
        assert set(results[model]["freetext"]) == {"lm", "lm_generated", "ensemble", "chatbot"}
        assert {"safety_tuning", "product_score"} <= set(results[model])
        assert held_out <= set(results[model]) if model == shipped else not held_out & set(results[model])
        for part in ("full", "partial"):
            assert {"accuracy", "macro_f1", "top3", "bleu", "rougeL"} <= set(results[model][part])
        assert results[model]["perplexity"] > 1
        # speed is measured on the shipped model only: both share the base's architecture
        assert ("latency_ms" in results[model]) == (model == shipped)
        assert {"emergency", "refusal", "minor"} <= set(results[model])  # in-distribution safety tasks
    assert set(results[shipped]["freetext_v2"]) == {"lm", "lm_generated", "ensemble", "chatbot"}
    assert results[shipped]["latency_ms"]["p95"] > 0
    # the second development sets: model-free rates (the retriever's, the guard detectors')
    assert results["retriever"]["freetext_dev"]["raw"]["n"] == results["retriever"]["freetext_dev3"]["raw"]["n"] == 328
    for key in ("safety_dev", "safety_dev3", "safety_dev4", "safety_v3"):
        detectors = results["guard_detectors"][key]
        assert set(detectors) == {"patterns", "triage", "either"}
        assert detectors["either"]["emergency_recall"] >= detectors["patterns"]["emergency_recall"]
    questions = results[shipped]["questions_v2"]
    assert questions["guard_off"]["n"] == questions["guard_on"]["n"] == questions["chatbot"]["n"] == 123
    for model in ("train", "finetune"):  # the development questions choose what ships: both models answer them
        assert results[model]["questions_dev"]["chatbot"]["n"] == 123
    # the guard keeps every refusal (it may replace an escalating reply by the refusal, not the reverse)
    assert questions["guard_on"]["refused"] >= questions["guard_off"]["refused"]
    safety = results[shipped]["safety"]
    for mode in ("guard_off", "guard_on"):
        assert set(safety[mode]) == {
            "escalation_recall",
            "false_escalation",
            "refusal_rate",
            "false_refusal",
            "leak_rate",
            "referral_rate",
            "diagnostic_escalation",
        }
    # whatever the tiny model says, the guard never lets a drug or dose through and always refers
    assert safety["guard_on"]["leak_rate"] == 0 and safety["guard_on"]["referral_rate"] == 1
    # the guard's detectors only widen: either finds at least what the patterns find
    detectors = safety["detectors"]
    assert set(detectors) == {"patterns", "triage", "either"}
    assert detectors["either"]["emergency_recall"] >= detectors["patterns"]["emergency_recall"]
    assert results["baseline"]["full"]["accuracy"] > 0.5  # the baseline learns even from the tiny data
    report = (project / "metrics" / "report.md").read_text()
    assert "| full-symptom accuracy |" in report and "finetune" in report and "| guard detector |" in report
    assert "| retriever, raw text |" in report and "## What each part adds" in report
    assert f"| {shipped}, with guard |" in report and "v2 top-1" in report
    assert "| + the lexicon normaliser on the query |" in report and "Best top-1 on free text:" in report
    triage = json.loads((project / "metrics" / "triage.json").read_text())
    assert all(triage["validation"][label]["false_positive"] <= 0.01 for label in ("emergency", "drug_request"))
    # each threshold is the validation split's choice, raised to its floor (triage.min_threshold)
    floors = yaml.safe_load((project / "params.yaml").read_text())["triage"]["min_threshold"]
    for label, chosen in triage["validation"].items():
        assert triage["thresholds"][label] == round(max(chosen["threshold"], floors.get(label, 0.0)), 4)
    tuning = results["train"]["safety_tuning"]["detectors"]
    assert tuning["either"]["emergency_recall"] >= tuning["patterns"]["emergency_recall"] > 0.5
    confusion = json.loads((project / "plots" / "evaluate" / "confusion.json").read_text())
    assert confusion and {"actual", "predicted"} == set(confusion[0])
    finetune = json.loads((project / "metrics" / "finetune.json").read_text())
    assert finetune["trainable_groups_per_epoch"] == [1, 2]
    tsv = project / "plots" / "train" / "plots" / "metrics"
    for name in ("loss.tsv", "learning_rate.tsv", "grad_norm.tsv", "eval/loss.tsv", "eval/disease_accuracy.tsv"):
        assert (tsv / name).exists(), name
    shown = dvc("plots", "show", "--json", cwd=project).stdout
    assert "disease_accuracy" in shown and "confusion" in shown.lower()


def test_push_then_fresh_clones_pull_instead_of_recomputing(project, tmp_path):
    """`dvc push` sends every output to the default remote (pointed at a temporary folder with config.local,
    which git never carries); a fresh clone's `dvc pull` gets identical outputs, and `dvc repro --pull` in
    another runs no stage."""
    storage = tmp_path / "storage"

    def git(*args, cwd=project):
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)

    def use_storage(repo):
        dvc("remote", "modify", "--local", "storage", "url", str(storage), cwd=repo)

    git("add", "-A")
    git("commit", "-qm", "pipeline run")
    use_storage(project)
    dvc("push", cwd=project)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    pushed = {
        out["path"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out.get("md5", "").endswith(".dir") or "md5" in out
    }
    assert {"models/train", "models/finetune", "models/chatbot", "data/split"} <= pushed
    for name in ("pulled", "reproduced"):
        git("clone", "-q", str(project), str(tmp_path / name), cwd=tmp_path)
        use_storage(tmp_path / name)
    dvc("pull", cwd=tmp_path / "pulled")
    assert "up to date" in dvc("status", cwd=tmp_path / "pulled").stdout
    for path in ("models/chatbot/model.safetensors", "data/split/train.jsonl", "models/retriever/passages.jsonl"):
        assert (tmp_path / "pulled" / path).read_bytes() == (project / path).read_bytes(), path
    out = dvc("repro", "--pull", cwd=tmp_path / "reproduced").stdout
    assert "Running stage" not in out, out
    assert (tmp_path / "reproduced" / "models" / "chatbot" / "model.safetensors").exists()


def test_medchat_batch_on_the_packaged_model(project, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "a", "text": "My skin itches and I have a rash."}\n{"id": 2, "text": "What is GERD?", "x": 1}\n'
    )
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medchat.cli",
            "batch",
            "--model",
            str(project / "models" / "chatbot"),
            "--input",
            str(source),
            "--output",
            str(out),
            "--max-new-tokens",
            "24",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", 2]
    assert all(set(r) == {"id", "reply", "disease", "latency_ms"} for r in rows)
    assert all(isinstance(r["reply"], str) and r["latency_ms"] > 0 for r in rows)
    assert all("doctor" in r["reply"] or "emergency" in r["reply"] for r in rows)  # the packaged guard is on


def test_medchat_chat_session(project):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medchat.cli",
            "chat",
            "--model",
            str(project / "models" / "chatbot"),
            "--max-new-tokens",
            "16",
        ],
        input="My skin itches and I have a rash.\n\n",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "not medical advice" in result.stdout and result.stdout.count("medchat> ") == 1


def test_medchat_chat_feedback_session(project, tmp_path):
    """Rate a reply and type a better one; a bad rating is asked again; Enter skips rating the second reply."""
    feedback = tmp_path / "feedback.jsonl"
    answers = "My skin itches and I have a rash.\n9\n2\nIt sounds most like Fungal infection.\nI have a fever.\n\n\n"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medchat.cli",
            "chat",
            "--model",
            str(project / "models" / "chatbot"),
            "--max-new-tokens",
            "16",
            "--feedback",
            str(feedback),
        ],
        input=answers,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "a rating is a whole number from 1 to 5" in result.stdout and result.stdout.count("medchat> ") == 2
    [row] = [json.loads(line) for line in feedback.read_text().splitlines()]
    assert row["text"] == "My skin itches and I have a rash." and row["rating"] == 2
    assert row["correction"] == "It sounds most like Fungal infection." and row["reply"]


def test_experiment_changes_params_and_metrics(project):
    """A finetune param: the experiment re-runs finetune and evaluate only (train comes from the cache)."""
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, capture_output=True)
    subprocess.run(
        ["git", "commit", "-qm", "baseline run", "--allow-empty"], cwd=project, check=True, capture_output=True
    )
    dvc("exp", "run", "-S", "finetune.learning_rate=0.0005", cwd=project)
    params = dvc("params", "diff", "--json", cwd=project).stdout
    assert '"finetune.learning_rate"' in params and "0.0005" in params
    metrics = json.loads(dvc("metrics", "diff", "--json", cwd=project).stdout)
    assert "metrics/finetune.json" in metrics and "eval_loss" in metrics["metrics/finetune.json"]
    assert "metrics/train.json" not in metrics  # train did not change


def test_queued_grid_runs_two_at_a_time(project, tmp_path):
    """README's grid recipe: two queued experiments, two workers, both with params and metrics recorded.
    The grid varies a triage param and targets that stage, so each experiment runs it alone (a training grid
    on 2 cores took 8 minutes, both workers training at once; an evaluate grid about two)."""
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "before the queue"], cwd=project, capture_output=True)
    dvc("exp", "run", "--queue", "-S", "triage.c=2.0,4.0", "triage", cwd=project)
    log = tmp_path / "queue.log"
    dvc_detached("queue", "start", "-j", "2", cwd=project, log=log)
    try:
        deadline = time.monotonic() + 1200  # only keeps a stuck queue from hanging the suite
        while time.monotonic() < deadline:
            status = dvc("queue", "status", cwd=project).stdout
            if "Success" in status and not any(word in status for word in ("Queued", "Running")):
                break
            time.sleep(5)
        else:
            pytest.fail(f"queue did not finish:\n{status}\n{log.read_text()}")
    finally:
        dvc_detached("queue", "stop", cwd=project, log=log)
    assert status.count("Success") == 2, status
    shown = json.loads(dvc("exp", "show", "--json", cwd=project).stdout)
    samples = set()
    for revision in shown:
        for experiment in revision.get("experiments") or []:
            data = experiment["revs"][0]["data"]
            samples.add(data["params"]["params.yaml"]["data"]["triage"]["c"])
            assert data["metrics"]["metrics/triage.json"]["data"]["validation"]["emergency"]["n"] > 0
    assert samples == {2, 4}


def test_tune_runs_optuna_trials_as_experiments_and_applies_the_best(project, tmp_path):
    """`medchat tune`: 2 TPE trials, each a named DVC experiment; objectives read back; the best applied.
    The space is the triage classifier's, and tune.targets runs that stage alone (an evaluate param made each
    trial re-run evaluate: about a minute each on the tiny profile)."""
    pytest.importorskip("optuna", reason="the tune extra (pip install 'medchat[tune]') is not installed")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "before tuning"], cwd=project, capture_output=True)
    settings = yaml.safe_load((project / "params.yaml").read_text())
    settings["tune"] = {  # replaced whole: every key is required
        **settings["tune"],
        "sampler": "tpe",
        "n_trials": 2,
        "objective": "metrics/triage.json:validation.emergency.recall",
        "storage": f"sqlite:///{tmp_path / 'tune.db'}",
        "study_name": "e2e",
        "space": {"triage.c": {"low": 0.01, "high": 100.0, "log": True}},
        "targets": ["triage"],
    }
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    _, env = dvc_env()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medchat.cli",
            "tune",
            "--params",
            str(tmp_path / "tune.yaml"),
            "--table",
            str(tmp_path / "trials.md"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = (tmp_path / "trials.md").read_text()
    assert table.count("| complete |") == 2 and table.count("(best)") == 1
    import optuna

    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{tmp_path / 'tune.db'}")
    shown = {r["name"]: r for r in experiment_records(json.loads(dvc("exp", "show", "--json", cwd=project).stdout))}
    for trial in study.trials:
        record = shown[f"e2e-{trial.number}"]
        assert record["params"]["triage"]["c"] == pytest.approx(trial.params["triage.c"])
        assert trial.value == record["metrics"]["metrics/triage.json"]["validation"]["emergency"]["recall"]
    applied = yaml.safe_load((project / "params.yaml").read_text())["triage"]["c"]
    assert applied == pytest.approx(study.best_trial.params["triage.c"])
