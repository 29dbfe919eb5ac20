"""dvc.yaml cannot lie: every stage depends on every file of the package its script imports.

A stage's import closure is found statically: every `medchat` import of its script and, recursively, of the
modules it reaches, including imports inside functions (they run when the stage does) but not those under
`if TYPE_CHECKING:` (they never run). A dep may name the file or a folder above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Dotted medchat modules imported by a file (`from medchat.x import y` may import module medchat.x.y)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for n in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "medchat"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "medchat":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
    return found


def _runs_code(path: Path) -> bool:
    """False for an __init__.py that is only a docstring: it cannot change what a stage does."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return path.name != "__init__.py" or not all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body
    )


def import_closure(script: Path) -> set[Path]:
    """Files of the package a script runs: its modules and the packages (__init__.py) that hold them,
    less docstring-only __init__.py files."""
    todo, seen = [script], set()
    files: set[Path] = set()
    while todo:
        path = todo.pop()
        for name in _imports(path):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ and c
                file = _module_file(".".join(parts[:depth]))
                if file is not None and file not in seen:
                    seen.add(file)
                    files.add(file)
                    todo.append(file)
    return {f for f in files if _runs_code(f)}


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _script(stage: dict) -> Path:
    return ROOT / next(word for word in stage["cmd"].split() if word.startswith("stages/"))


def uncovered(stage: dict) -> list[str]:
    """Package files the stage imports that none of its deps (a file or a folder above it) names."""
    deps = [ROOT / d for d in stage.get("deps", []) if "${" not in str(d)]
    return sorted(
        str(f.relative_to(ROOT))
        for f in import_closure(_script(stage))
        if not any(f == d or d in f.parents for d in deps)
    )


def unused(stage: dict) -> list[str]:
    """Package deps (files or folders) holding nothing the stage imports: they would rerun it for nothing."""
    closure = {str(f.relative_to(ROOT)) for f in import_closure(_script(stage))}
    package_deps = [d for d in stage.get("deps", []) if str(d).startswith("src/")]
    return [d for d in package_deps if not any(c == d or c.startswith(f"{d}/") for c in closure)]


@pytest.mark.parametrize("name", sorted(_stages()))
def test_every_stage_depends_on_the_package_files_it_imports(name):
    stage = _stages()[name]
    assert str(_script(stage).relative_to(ROOT)) in stage["deps"], "the stage script itself"
    assert uncovered(stage) == []
    assert unused(stage) == []


def test_a_missing_dep_is_found():
    """The check fails when dvc.yaml loses a dep: drop the guard from evaluate's deps, or the retrieval folder
    from tokenize's, and those files show up."""
    stage = _stages()["evaluate"]
    assert uncovered({**stage, "deps": [d for d in stage["deps"] if d != "src/medchat/safety/guard.py"]}) == [
        "src/medchat/safety/guard.py"
    ]
    stage = _stages()["tokenize"]
    missing = uncovered({**stage, "deps": [d for d in stage["deps"] if d != "src/medchat/retrieval"]})
    assert "src/medchat/retrieval/prompts.py" in missing and "src/medchat/retrieval/retrievers.py" in missing


def test_the_closure_follows_imports_inside_functions_and_skips_type_checking(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from medchat.safety.triage import Triage\n"
        "def main():\n    from medchat.data.names import DISEASES\n"
    )
    closure = {str(f.relative_to(ROOT)) for f in import_closure(script)}
    assert closure == {"src/medchat/__init__.py", "src/medchat/data/names.py"}  # data/__init__.py: a docstring
    assert not any("triage" in f for f in closure)


def test_subpackages_import_one_way():
    """No two subpackages import each other at run time (TYPE_CHECKING imports aside), so each can be
    read, tested and changed from the bottom up."""
    edges: dict[str, set[str]] = {}
    package = SRC / "medchat"
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).parts
        owner = parts[0] if len(parts) > 1 else path.stem
        for name in _imports(path):
            target = name.split(".")[1] if name.count(".") else None
            if target and target != owner and (package / target).is_dir():
                edges.setdefault(owner, set()).add(target)
    both_ways = sorted((a, b) for a, targets in edges.items() for b in targets if a < b and a in edges.get(b, set()))
    assert both_ways == []
