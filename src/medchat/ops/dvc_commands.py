"""Running the dvc command line from medchat's own commands: its output, or one InputError line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from medchat.errors import InputError


def run_dvc(*args: str, cwd: str | Path | None = None, fix: str = "run inside the DVC repository") -> str:
    """stdout of `dvc <args>`; on failure an InputError with dvc's last error line and `fix`."""
    result = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        raise InputError(f"dvc {' '.join(args)} failed: {last}", fix=fix)
    return result.stdout
