"""The README's Layout section lists every module and stage script, and nothing that is gone."""

from __future__ import annotations

import re

from conftest import ROOT

README = ROOT / "README.md"


def test_readme_layout_lists_every_module_and_stage():
    text = README.read_text(encoding="utf-8")
    layout = text[text.index("## Layout") : text.index("\n## ", text.index("## Layout") + 1)]
    listed = set(re.findall(r"^- `((?:src/medchat|stages)/[\w/]+\.py)`: \S", layout, re.M))
    on_disk = {str(p.relative_to(ROOT)) for folder in ("src/medchat", "stages") for p in (ROOT / folder).rglob("*.py")}
    assert sorted(on_disk - listed) == [], "modules the README does not list"
    assert sorted(listed - on_disk) == [], "README lists modules that do not exist"


def test_readme_stays_short_and_its_links_resolve():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (ROOT / target).exists(), target


def test_ci_runs_the_readme_test_command():
    assert "make test" in README.read_text(encoding="utf-8")
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
