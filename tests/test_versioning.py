"""Versioned data: a Kaggle download imported as a DVC-tracked folder, two data versions restored by
`git checkout` + `dvc checkout`, and bad downloads refused with nothing written."""

import json
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml
from conftest import ROOT, copy_project, dvc, dvc_env, kaggle_dir

from medchat.data.dataset_import import import_dataset
from medchat.errors import InputError

POLICY = ROOT / "data" / "safety" / "rules.yaml"


def zip_folder(folder, path, prefix="archive/nested/"):
    with zipfile.ZipFile(path, "w") as archive:
        for item in folder.iterdir():
            archive.write(item, prefix + item.name)
    return path


@pytest.mark.parametrize("variant", ["headerless", "headered"])
def test_kaggle_zip_and_folder_import_validated(tmp_path, variant):
    source = kaggle_dir(variant)
    counts = import_dataset(
        zip_folder(source, tmp_path / "download.zip"), tmp_path / "data" / "kaggle", POLICY, dvc_add=False
    )
    assert counts["diseases"] == 41 and counts["symptoms"] == 131 and counts["rows_in"] == 4920
    assert sorted(p.name for p in (tmp_path / "data" / "kaggle").iterdir()) == sorted(
        p.name for p in source.iterdir() if p.name not in ("Training.csv", "Testing.csv")
    )
    assert import_dataset(source, tmp_path / "data" / "v2", POLICY, dvc_add=False) == counts  # the unzipped folder
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["kaggle", "v2"]  # no scratch left behind


def test_bad_downloads_write_nothing(tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(ROOT / "data" / "raw", partial)
    (partial / "symptom_precaution.csv").unlink()
    broken = tmp_path / "broken"
    shutil.copytree(ROOT / "data" / "raw", broken)
    (broken / "dataset.csv").write_text("Disease,Symptom_1\nNot a disease,itching\n")
    (tmp_path / "notzip.zip").write_text("hello")
    cases = [
        (partial, "symptom_precaution.csv missing"),
        (broken, "dataset.csv"),
        (tmp_path / "notzip.zip", "neither a folder nor a zip"),
        (tmp_path / "nope", "not found"),
    ]
    for source, message in cases:
        with pytest.raises(InputError, match=message):
            import_dataset(source, tmp_path / "data" / "kaggle", POLICY, dvc_add=False)
        assert not (tmp_path / "data").exists() or list((tmp_path / "data").iterdir()) == []
    (tmp_path / "data" / "kaggle").mkdir(parents=True)
    with pytest.raises(InputError, match="already exists"):
        import_dataset(ROOT / "data" / "raw", tmp_path / "data" / "kaggle", POLICY, dvc_add=False)


def test_two_data_versions_come_back_with_git_and_dvc_checkout(tmp_path):
    project = copy_project(tmp_path / "project")
    _, env = dvc_env()

    def medchat(*args):
        result = subprocess.run(
            [sys.executable, "-m", "medchat.cli", *args], cwd=project, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def git(*args):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)

    out = medchat("import-data", str(ROOT / "data" / "raw"), "--to", "data/kaggle")
    assert "git add data/kaggle.dvc" in out and (project / "data" / "kaggle.dvc").exists()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["clean"]["raw_dir"] = "data/kaggle"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc("repro", "clean", cwd=project)
    git("add", "-A")
    git("commit", "-qm", "data v1")
    first = {p.name: p.read_bytes() for p in (project / "data" / "clean").iterdir()}

    # a second version of the data: one description reworded
    descriptions = project / "data" / "kaggle" / "symptom_Description.csv"
    descriptions.unlink()  # dvc add links files from the cache: write a new file, never edit in place
    text = (ROOT / "data" / "raw" / "symptom_Description.csv").read_text()
    descriptions.write_text(text.replace('Fungal infection,"', 'Fungal infection,"A reworded description. ', 1))
    status = dvc("status", "clean", cwd=project).stdout
    assert "modified:" in status and "data/kaggle" in status  # the clean stage sees the new data
    dvc("add", "data/kaggle", cwd=project)
    dvc("repro", "clean", cwd=project)
    git("add", "-A")
    git("commit", "-qm", "data v2")
    second = {p.name: p.read_bytes() for p in (project / "data" / "clean").iterdir()}
    assert second != first

    git("checkout", "-q", "HEAD~1")
    dvc("checkout", "data/kaggle.dvc", "clean", cwd=project)  # the rest of this pipeline never ran here
    assert {p.name: p.read_bytes() for p in (project / "data" / "clean").iterdir()} == first
    assert "A reworded description" not in descriptions.read_text()
    assert "up to date" in dvc("status", "clean", cwd=project).stdout


def test_verify_finds_corrupted_and_missing_cache_and_an_absent_remote(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc("init", "-q", cwd=repo)
    (repo / "data").mkdir()
    (repo / "data" / "one.txt").write_text("one\n")
    (repo / "folder").mkdir()
    for name in ("a.txt", "b.txt"):
        (repo / "folder" / name).write_text(f"{name}\n")
    dvc("add", "data/one.txt", "folder", cwd=repo)
    dvc("remote", "add", "-d", "storage", str(tmp_path / "storage"), cwd=repo)
    _, env = dvc_env()

    def verify(*args):
        return subprocess.run(
            [sys.executable, "-m", "medchat.cli", "verify", *args], cwd=repo, env=env, capture_output=True, text=True
        )

    ok = verify()
    assert ok.returncode == 0 and "4 cached objects intact" in ok.stdout  # a file, a listing, two files in it
    absent = verify("--remote")
    assert absent.returncode == 1 and "does not exist" in absent.stderr and "dvc push once" in absent.stderr
    dvc("push", cwd=repo)
    assert "remote reachable" in verify("--remote").stdout

    md5 = yaml.safe_load((repo / "folder.dvc").read_text())["outs"][0]["md5"]
    listing = json.loads((repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).read_text())
    victim = repo / ".dvc" / "cache" / "files" / "md5" / listing[0]["md5"][:2] / listing[0]["md5"][2:]
    victim.chmod(0o644)
    victim.write_text("flipped bits\n")
    one = yaml.safe_load((repo / "data" / "one.txt.dvc").read_text())["outs"][0]["md5"]
    (repo / ".dvc" / "cache" / "files" / "md5" / one[:2] / one[2:]).unlink()
    bad = verify()
    assert bad.returncode == 1
    assert f"corrupted: folder/{listing[0]['relpath']}" in bad.stdout and "missing: data/one.txt" in bad.stdout
    assert bad.stderr.count("\n") == 1 and "2 of 4 cached objects are missing or corrupted" in bad.stderr
    assert "delete the corrupted cache files named above, then dvc pull" in bad.stderr


def test_verify_checks_cached_outputs_only():
    from medchat.ops.cache_check import recorded_outputs

    outputs = recorded_outputs(ROOT)  # this repository's committed dvc.lock
    assert {"models/train", "models/chatbot", "data/split"} <= set(outputs)
    assert not {"metrics/evaluate.json", "metrics/report.md", "plots/train"} & set(outputs)  # cache: false, in git
