"""clip-retrieval in its own venv: install it, make the shared random checkpoint, time ``clip inference``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._errors import PeerUnavailable

PACKAGES = ("clip-retrieval", "setuptools<81")  # without setuptools<81 every command dies on pkg_resources
DRIVER = Path(__file__).resolve().parent / "_clip_retrieval_driver.py"


def _why(exc: BaseException) -> str:
    """The last meaningful line of a failed subprocess, or the exception itself."""
    if isinstance(exc, subprocess.CalledProcessError):
        lines = [ln for ln in (exc.stderr or exc.stdout or "").splitlines() if ln.strip() and "WARNING" not in ln]
        return f"{' '.join(map(str, exc.cmd[:4]))} exited {exc.returncode}: {lines[-1] if lines else 'no output'}"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"{' '.join(map(str, exc.cmd[:4]))} timed out after {exc.timeout:.0f} s"
    return f"{type(exc).__name__}: {exc}"


def _call(cmd: list[str], timeout: float) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout).stdout


def ensure_venv(venv: Path, python: str = sys.executable, timeout: float = 3600) -> Path:
    """The venv's interpreter with clip-retrieval importable, installing it first when needed; else ``PeerUnavailable``."""
    py = venv / "bin" / "python"
    try:
        if py.is_file():
            try:
                _call([str(py), "-c", "import clip_retrieval.clip_inference.main"], 300)
                return py
            except subprocess.CalledProcessError:
                pass  # a half-built venv: install again into it
        else:
            _call([python, "-m", "venv", str(venv)], 300)
        _call([str(py), "-m", "pip", "install", "-q", *PACKAGES], timeout)
        _call([str(py), "-c", "import clip_retrieval.clip_inference.main"], 300)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PeerUnavailable(f"clip-retrieval could not be installed into {venv}: {_why(exc)}") from exc
    return py


def random_checkpoint(py: Path, path: Path) -> Path:
    """A seeded random ViT-B-32 state dict written by the peer's own open_clip (kept once made)."""
    if not path.is_file():
        try:
            _call([str(py), str(DRIVER), "checkpoint", str(path)], 600)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PeerUnavailable(f"clip-retrieval's open_clip could not build ViT-B-32: {_why(exc)}") from exc
    return path


def infer(py: Path, folder: Path, out: Path, checkpoint: Path, batch_size: int, workers: int) -> dict[str, Any]:
    """Time one ``clip inference`` run over ``folder`` into a fresh ``out``: seconds, embedded count, torch threads."""
    shutil.rmtree(out, ignore_errors=True)
    result = out.with_name(out.name + ".json")
    result.unlink(missing_ok=True)
    try:
        _call([str(py), str(DRIVER), "infer", str(folder), str(out), str(checkpoint), str(batch_size), str(workers),
               str(result)], 3600)
        return json.loads(result.read_text())
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise PeerUnavailable(f"clip-retrieval inference failed: {_why(exc)}") from exc
