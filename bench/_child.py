"""Run one benchmark module in a child process and read back its JSON and its own peak RSS."""

from __future__ import annotations

import json
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


# Runs the module as __main__ and, at exit, writes the process's own peak RSS (VmHWM). ru_maxrss from wait4 would not
# do: Linux carries the spawning parent's RSS across exec into it, so a big parent inflated every child's figure.
_WRAPPER = """
import atexit, runpy, sys
def _peak(path):
    status = open("/proc/self/status").read()
    with open(path, "w") as out:
        out.write(status.split("VmHWM:")[1].split()[0])
atexit.register(_peak, sys.argv[1])
module = sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def peak_rss_gib() -> float:
    """This process's own peak resident memory, GiB (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 2**20


def run_module(module: str, argv: list[str], json_path: Path) -> ChildResult:
    """``python -m module *argv --json json_path``; raises ``BenchError`` when it fails or writes nothing."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.unlink(missing_ok=True)
    peak_path = json_path.with_name(json_path.name + ".peak-kib")
    peak_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, str(peak_path), module, *argv, "--json", str(json_path)])
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"{module} {' '.join(argv)} exited with status {proc.returncode}")
    if not json_path.is_file():
        raise BenchError(f"{module} wrote no results to {json_path}")
    if not peak_path.is_file():
        raise BenchError(f"{module} ended without reporting its peak memory (left through os._exit?)")
    peak_kib = int(peak_path.read_text())
    peak_path.unlink(missing_ok=True)
    return ChildResult(json.loads(json_path.read_text()), round(peak_kib / 2**20, 3), round(wall, 1))
