"""Shared fixtures: the repository root, the real Kaggle files in ../shared, stage runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRATCH_PROFILE = ROOT / "profiles" / "scratch.yaml"
SHARED_DATA = ROOT.parent / "shared" / "data"
KAGGLE_VARIANTS = {
    "headerless": SHARED_DATA / "kaggle-disease-symptom",
    "headered": SHARED_DATA / "kaggle-disease-symptom-headered",
}


def kaggle_dir(variant: str) -> Path:
    path = KAGGLE_VARIANTS[variant]
    if not (path / "dataset.csv").exists():
        pytest.skip(f"real Kaggle files not found at {path} (the ../shared checkout beside the repo is absent)")
    return path


TINY_CORPUS = [
    "I have a fever and chills.",
    "It sounds most like Malaria.",
    "It sounds most like Heart attack.",
    "My chest hurts.",
    "It sounds most like GERD.",
    "It sounds most like Common Cold.",
] * 10


@pytest.fixture(scope="module")
def chat():
    """An untrained 2-layer GPT-2 with a BPE tokenizer of TINY_CORPUS, as a ChatModel (module-scoped)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from medchat.inference.chat_model import ChatModel
    from medchat.model.tokenization import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(TINY_CORPUS, vocab_size=300)
    torch.manual_seed(1)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=2,
        n_embd=32,
        n_head=2,
        n_positions=128,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return ChatModel(GPT2LMHeadModel(config).eval(), tokenizer, max_new_tokens=12, batch_size=4)


@pytest.fixture(params=sorted(KAGGLE_VARIANTS))
def kaggle(request) -> Path:
    """Each published Kaggle variant in turn (skipped when ../shared is absent)."""
    return kaggle_dir(request.param)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch project: our data/ folder and a params.yaml, where stage scripts can run."""
    shutil.copytree(
        ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("clean", "augmented", "split", "tokenized")
    )
    write_yaml(tmp_path / "params.yaml", scratch_raw())
    return tmp_path


def scratch_raw() -> dict:
    """params.yaml with the scratch profile merged over it: the fast profile every test that trains runs."""
    from medchat.params import merge

    return merge(yaml.safe_load((ROOT / "params.yaml").read_text()), yaml.safe_load(SCRATCH_PROFILE.read_text()))


def write_yaml(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def set_params(workdir: Path, override: dict) -> None:
    from medchat.params import merge

    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), override), sort_keys=False))


def run_stage(name: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{name}.py")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"stage {name} failed:\n{result.stdout}\n{result.stderr}")
    return result


PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", "pyproject.toml", "metrics/ablation.json")
PROJECT_DIRS = ("src", "stages", "data", ".dvc", "profiles")


def copy_project(dst: Path) -> Path:
    """A fresh copy of the project (no outputs, no dvc.lock) as its own git + DVC repository."""
    skip = shutil.ignore_patterns(
        "clean", "augmented", "split", "tokenized", "evaluate", "__pycache__", "*.egg-info", "tmp", "cache"
    )
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, dst / name, ignore=skip)
    for name in PROJECT_FILES:
        if (ROOT / name).exists():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, dst / name)
    write_yaml(dst / "params.yaml", scratch_raw())  # the fast profile
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    for key, value in (("user.name", "medchat tests"), ("user.email", "tests@medchat.invalid")):
        subprocess.run(["git", "config", key, value], cwd=dst, check=True)
    # a clone always has a commit; dvclive and `dvc exp` need one
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run(["git", "commit", "-qm", "project copy"], cwd=dst, check=True)
    return dst


def dvc_env() -> tuple[str, dict[str, str]]:
    """This interpreter's bin folder, and an environment with it first on PATH (stage commands run its python)."""
    bindir = str(Path(sys.executable).parent)
    return bindir, {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "HF_HUB_OFFLINE": "1",
        "DVC_NO_ANALYTICS": "1",
    }


# The network unreachable: every proxy points at a closed local port (the discard port, nothing listens).
NO_NETWORK = {
    name: "http://127.0.0.1:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
} | {"NO_PROXY": "", "no_proxy": ""}


def dvc(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess:
    """Run the dvc of this interpreter's environment, with its python first on PATH for stage commands.
    `env` adds variables (None removes one)."""
    bindir, base = dvc_env()
    env = {k: v for k, v in {**base, **(env or {})}.items() if v is not None}
    result = subprocess.run(
        [str(Path(bindir) / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def dvc_detached(*args: str, cwd: Path, log: Path) -> None:
    """Run a dvc command that leaves workers behind (`dvc queue start`): its output goes to a file, not to a
    pipe, because the workers inherit the command's output and a pipe would never reach end-of-file."""
    bindir, env = dvc_env()
    with open(log, "a") as handle:
        result = subprocess.run(
            [str(Path(bindir) / "dvc"), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            timeout=300,
        )
    if result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{log.read_text()}")


def repo_params():
    """The repository's params under the scratch profile, validated."""
    from medchat.params import parse_params

    return parse_params(scratch_raw())


def params_section(section: str, **overrides):
    """One section of the repository's params with some keys replaced (validated again, as at load)."""
    import dataclasses

    return dataclasses.replace(getattr(repo_params(), section), **overrides)


def parse_over_repo(override: dict):
    """parse_params of the scratch profile with some keys replaced (every key is required, so tests change a few).
    `override` maps a section to the keys it replaces, whole (a dict-valued key is not merged)."""
    from medchat.params import parse_params

    raw = scratch_raw()
    for section, values in override.items():
        both = isinstance(values, dict) and isinstance(raw.get(section), dict)
        raw[section] = {**raw[section], **values} if both else values
    return parse_params(raw)
