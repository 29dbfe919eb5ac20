"""Time `dvc repro`, stage by stage: the wall time from each "Running stage" line dvc prints to the next one
(or to the end), which includes dvc's own hashing and caching of that stage's outputs.

    python benchmarks/repro_time.py [--force] [dvc repro arguments...]

--force reruns every stage (dvc repro -f), so each one gets a time; without it only the stages that changed
run. dvc's output passes through. Results: metrics/repro_time.json (merged per device) and a table on stdout.
Outside CI: on the default params a whole pipeline (about 25 to 45 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("metrics/repro_time.json")
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def timed_repro(arguments: list[str]) -> tuple[dict[str, float], float, int]:
    """Per-stage seconds, total seconds and the exit status of `dvc repro <arguments>`."""
    started = time.perf_counter()
    stages: dict[str, float] = {}
    current, since = None, started
    process = subprocess.Popen(
        ["dvc", "repro", *arguments], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        found = STAGE_LINE.search(line)
        if found:
            now = time.perf_counter()
            if current is not None:
                stages[current] = round(now - since, 1)
            current, since = found.group(1), now
    status = process.wait()
    end = time.perf_counter()
    if current is not None:
        stages[current] = round(end - since, 1)
    return stages, round(end - started, 1), status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rerun every stage (dvc repro -f)")
    args, rest = parser.parse_known_args()
    stages, total, status = timed_repro((["-f"] if args.force else []) + rest)
    if status:
        print(f"repro_time: dvc repro failed (exit {status}); nothing recorded", file=sys.stderr)
        return status
    device = f"{platform.processor() or platform.machine()} x{os.cpu_count()} cores"
    merged = json.loads(OUT.read_text()) if OUT.exists() else {}
    merged["cpu"] = {"device": device, "forced": args.force, "stages_s": stages, "total_s": total}
    OUT.write_text(json.dumps(merged, indent=2) + "\n")
    print("| stage | seconds |\n|---|---:|")
    for name, seconds in stages.items():
        print(f"| {name} | {seconds:.0f} |")
    print(f"| total | {total:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
