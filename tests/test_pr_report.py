"""The CML pull-request report on two real revisions of a temporary DVC repository, and the workflow's lint."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, dvc, dvc_env

SCORE = """import csv, json, yaml
scale = yaml.safe_load(open("params.yaml"))["score"]["scale"]
json.dump({"accuracy": 0.5 * scale}, open("metrics/score.json", "w"))
with open("plots/loss.csv", "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["step", "loss"])
    writer.writerows([step, round(scale / (step + 1), 4)] for step in range(5))
"""
DVC_YAML = """stages:
  score:
    cmd: python score.py
    deps: [score.py]
    params: [score.scale]
    outs:
      - plots/loss.csv:
          cache: false
    metrics:
      - metrics/score.json:
          cache: false
plots:
  - Loss:
      x: step
      y:
        plots/loss.csv: loss
"""


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def two_revisions(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    for key, value in (("user.name", "medchat tests"), ("user.email", "tests@medchat.invalid")):
        git("config", key, value, cwd=repo)
    dvc("init", "-q", cwd=repo)
    (repo / "metrics").mkdir()
    (repo / "plots").mkdir()
    (repo / "score.py").write_text(SCORE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    revisions = []
    for scale in (1, 2):
        (repo / "params.yaml").write_text(f"score:\n  scale: {scale}\n")
        dvc("repro", cwd=repo)
        git("add", "-A", cwd=repo)
        git("commit", "-qm", f"scale {scale}", cwd=repo)
        revisions.append(git("rev-parse", "HEAD", cwd=repo))
    return repo, revisions


def test_report_has_both_diffs_and_the_plots_as_png(two_revisions):
    pytest.importorskip("vl_convert", reason="the cml extra (pip install 'medchat[cml]') is not installed")
    repo, (base, _) = two_revisions
    _, env = dvc_env()
    result = subprocess.run(
        [sys.executable, "-m", "medchat.cli", "pr-report", "--base", base, "--out", "report.md"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = (repo / "report.md").read_text()
    metrics, params = report.split("## Metrics")[1].split("## Params")
    assert "metrics/score.json" in metrics and "accuracy" in metrics and "0.5" in metrics and "1.0" in metrics
    assert "score.scale" in params and "| 1 " in params and "| 2 " in params
    assert "![Loss](report_plots/loss.png)" in report
    png = (repo / "report_plots" / "loss.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000


def test_report_against_a_missing_revision_fails_with_one_line(two_revisions):
    repo, _ = two_revisions
    _, env = dvc_env()
    result = subprocess.run(
        [sys.executable, "-m", "medchat.cli", "pr-report", "--base", "no-such-branch"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and result.stderr.count("medchat: error:") == 1
    assert not (repo / "report.md").exists()


@pytest.mark.parametrize("tool, args", [("actionlint", []), ("zizmor", ["--offline"])])
def test_workflow_passes_the_linters(tool, args):
    found = shutil.which(tool, path=str(Path(sys.executable).parent)) or shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed (the lint extra: pip install 'medchat[lint]')")
    result = subprocess.run(
        [found, *args, str(ROOT / ".github" / "workflows" / "cml.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
