"""`medchat verify`: is every output this commit records in the DVC cache, intact, and is the remote there?

DVC trusts its cache: a cache file whose bytes no longer match its name (a disk error, an edit through a
hard link) is checked out as it is. This re-hashes every object that dvc.lock and the `.dvc` files name
(and each file inside a directory object) and says which are missing or corrupted and what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from medchat.errors import InputError

CACHE = Path(".dvc/cache/files/md5")


@dataclass(frozen=True)
class Problem:
    path: str  # the output it belongs to
    md5: str
    what: str  # "missing" or "corrupted"


def recorded_outputs(root: Path) -> dict[str, str]:
    """output path -> md5 (".dir" for folders) from dvc.lock and every .dvc file."""
    outputs: dict[str, str] = {}
    lock = root / "dvc.lock"
    if lock.exists():
        in_git = _uncached(root / "dvc.yaml")
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                if "md5" in out and out["path"] not in in_git:
                    outputs[out["path"]] = out["md5"]
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .dvc, .venv: never user data
        for tracked in (Path(folder) / f for f in files if f.endswith(".dvc")):
            outputs.update(_dvc_file_outputs(root, tracked))
    return outputs


def _uncached(dvc_yaml: Path) -> set[str]:
    """Outputs declared with `cache: false` (metrics, plots, the report): git keeps them, not the cache."""
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}) if dvc_yaml.exists() else {}
    return {
        path
        for stage in stages.values()
        for kind in ("outs", "metrics", "plots")
        for entry in stage.get(kind, [])
        if isinstance(entry, dict)
        for path, options in entry.items()
        if (options or {}).get("cache") is False
    }


def _dvc_file_outputs(root: Path, tracked: Path) -> dict[str, str]:
    """What a `dvc add` file records: its outputs' paths (relative to the repository) and md5s."""
    outs = (yaml.safe_load(tracked.read_text()) or {}).get("outs", [])
    return {str(tracked.parent.relative_to(root) / out["path"]): out["md5"] for out in outs if "md5" in out}


def _object(root: Path, md5: str) -> Path:
    return root / CACHE / md5[:2] / md5[2:]


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_cache(root: Path) -> tuple[int, list[Problem]]:
    """(objects checked, problems). Only outputs that are cached are checked (`cache: false` ones are in git)."""
    checked, problems = 0, []
    for path, md5 in sorted(recorded_outputs(root).items()):
        entries = [(path, md5)]
        if md5.endswith(".dir"):
            listing = _object(root, md5)
            checked += 1
            if not listing.exists():
                problems.append(Problem(path, md5, "missing"))
                continue
            if _md5(listing) != md5[:-4]:
                problems.append(Problem(path, md5, "corrupted"))
                continue
            entries = [(f"{path}/{e['relpath']}", e["md5"]) for e in json.loads(listing.read_text())]
        for name, file_md5 in entries:
            checked += 1
            cached = _object(root, file_md5)
            if not cached.exists():
                problems.append(Problem(name, file_md5, "missing"))
            elif _md5(cached) != file_md5:
                problems.append(Problem(name, file_md5, "corrupted"))
    return checked, problems


def check_remote(root: Path) -> str:
    """The default remote's URL if it can be reached; an InputError saying what to do otherwise."""
    result = subprocess.run(["dvc", "remote", "default"], cwd=root, capture_output=True, text=True)
    name = result.stdout.strip()
    if result.returncode != 0 or not name:
        raise InputError(
            "no default DVC remote", file=str(root / ".dvc" / "config"), fix="dvc remote add -d storage /path/or/url"
        )
    url = subprocess.run(["dvc", "remote", "list"], cwd=root, capture_output=True, text=True).stdout
    url = next((line.split()[1] for line in url.splitlines() if line.split()[:1] == [name]), "")
    if "://" not in url:  # a local folder: it must exist (push would create it, pull would find nothing)
        if not Path(url).is_dir():
            raise InputError(
                f"remote {name!r} is the folder {url}, which does not exist",
                file=str(root / ".dvc" / "config"),
                fix=f"dvc push once to create it, or dvc remote modify --local {name} url <existing folder>",
            )
        return url
    status = subprocess.run(["dvc", "status", "--cloud", "--quiet"], cwd=root, capture_output=True, text=True)
    if status.returncode not in (0, 1) or "ERROR" in status.stderr:
        last = (status.stderr.strip().splitlines() or ["unreachable"])[-1]
        raise InputError(
            f"remote {name!r} ({url}) cannot be reached: {last}",
            fix="check the URL, the network and the credentials of its dvc[...] extra",
        )
    return url


def main(root: Path, remote: bool) -> int:
    checked, problems = check_cache(root)
    for p in problems:
        print(f"medchat: {p.what}: {p.path} (cache file {CACHE / p.md5[:2] / p.md5[2:]})")
    if problems:
        corrupted = [p for p in problems if p.what == "corrupted"]
        raise InputError(
            f"{len(problems)} of {checked} cached objects are missing or corrupted",
            file=str(root / ".dvc" / "cache"),
            fix=("delete the corrupted cache files named above, then " if corrupted else "")
            + "dvc pull (or dvc repro) to restore them",
        )
    print(f"medchat: {checked} cached objects intact")
    if remote:
        print(f"medchat: remote reachable: {check_remote(root)}")
    return 0
