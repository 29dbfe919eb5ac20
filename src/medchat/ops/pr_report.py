"""The pull-request report CML posts: metrics and params diffs against a base revision, and the pipeline's
plots rendered to PNG offline.

    medchat pr-report --base origin/main --out report.md

The tables are DVC's own (`dvc metrics diff --md`, `dvc params diff --md`). The plots come from
`dvc plots diff --json`: Vega-Lite specs with the data of both revisions inlined, which vl-convert turns
into PNG files next to the report without a browser or the network. `cml comment create report.md` then
uploads the images it references.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from medchat.errors import InputError
from medchat.ops.dvc_commands import run_dvc


def dvc_output(*args: str) -> str:
    return run_dvc(*args, fix="run inside the DVC repository; is the base revision fetched?")


def plot_specs(plots_json: dict[str, Any]) -> dict[str, dict]:
    """`dvc plots diff --json` -> plot name -> Vega-Lite spec (data inlined; image-only plots are skipped)."""
    specs = {}
    for name, renders in (plots_json.get("data") or {}).items():
        for render in renders:
            if render.get("type") == "vega" and isinstance(render.get("content"), dict):
                specs[name] = render["content"]
                break
    return specs


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "plot"


def render_pngs(specs: dict[str, dict], folder: Path) -> dict[str, Path]:
    """Each spec as `<folder>/<slug>.png`; returns name -> path."""
    try:
        import vl_convert
    except ImportError:
        raise InputError("rendering plots needs vl-convert-python", fix="pip install 'medchat[cml]'") from None
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, spec in specs.items():
        path = folder / f"{slug(name)}.png"
        path.write_bytes(vl_convert.vegalite_to_png(spec, scale=1))
        paths[name] = path
    return paths


def build_report(base: str, metrics_md: str, params_md: str, images: dict[str, Path], report_dir: Path) -> str:
    """Markdown with both tables and the images linked relative to the report (as CML uploads them)."""
    lines = [
        f"# medchat pipeline: this pull request against `{base}`",
        "",
        "## Metrics",
        "",
        metrics_md.strip() or "No metric changed.",
        "",
        "## Params",
        "",
        params_md.strip() or "No param changed.",
        "",
    ]
    if images:
        lines += ["## Plots", "", f"Each plot shows this revision (`workspace`) and `{base}`.", ""]
        for name, path in images.items():
            lines += [f"### {name}", "", f"![{name}]({Path(os.path.relpath(path, report_dir)).as_posix()})", ""]
    return "\n".join(lines)


def main(base: str, out: str, plots_dir: str | None) -> int:
    out_path = Path(out)
    folder = Path(plots_dir) if plots_dir else out_path.parent / "report_plots"
    metrics_md = dvc_output("metrics", "diff", base, "--md")
    params_md = dvc_output("params", "diff", base, "--md")
    specs = plot_specs(json.loads(dvc_output("plots", "diff", base, "--json")))
    images = render_pngs(specs, folder)
    out_path.write_text(build_report(base, metrics_md, params_md, images, out_path.parent), encoding="utf-8")
    print(f"medchat: report with {len(images)} plots written to {out_path}")
    return 0
