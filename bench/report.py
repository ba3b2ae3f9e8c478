"""Benchmark bookkeeping shared by every bench command: machine info, timing, JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable


def machine_info() -> dict[str, Any]:
    """Where and when a figure was measured: host, CPU, threads, library versions, commit, date."""
    import numpy
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "numpy": numpy.__version__,
    }


def throughput(
    run_batch: Callable[[int], None], n_batches_min: int, min_seconds: float, batch_size: int, warmup: bool = True
) -> float:
    """Items per second of ``run_batch(i)`` (after an optional warm-up call) over at least the given batches and seconds."""
    if warmup:
        run_batch(0)
    done, start = 0, time.perf_counter()
    while done < n_batches_min or time.perf_counter() - start < min_seconds:
        run_batch(done + 1)
        done += 1
    return done * batch_size / (time.perf_counter() - start)


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON (parents created) when a path is given."""
    if path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2, default=str))
