"""Run one benchmark module in a child process and read back its JSON and its own peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._errors import BenchError


@dataclass(frozen=True)
class ChildResult:
    """What a child benchmark wrote, its peak resident memory and its wall time."""

    payload: dict[str, Any]
    peak_rss_gib: float
    wall_seconds: float


def run_module(module: str, argv: list[str], json_path: Path) -> ChildResult:
    """``python -m module *argv --json json_path``; raises ``BenchError`` when it fails or writes nothing."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", module, *argv, "--json", str(json_path)])
    # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the maximum over every child so far.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if code != 0:
        raise BenchError(f"{module} {' '.join(argv)} exited with status {code}")
    if not json_path.is_file():
        raise BenchError(f"{module} wrote no results to {json_path}")
    return ChildResult(json.loads(json_path.read_text()), round(usage.ru_maxrss / 2**20, 3), round(wall, 1))
