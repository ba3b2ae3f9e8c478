"""The CLI starts without torch: --help, --version, argument errors, models and check run in a process where
importing torch (or transformers, or open_clip) fails; query files and a busy port are refused before a model loads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BLOCKED = ("torch", "transformers", "open_clip")


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory) -> dict[str, str]:
    """An environment whose PYTHONPATH puts first modules named torch, transformers and open_clip that raise ImportError."""
    stubs = tmp_path_factory.mktemp("no-torch")
    for name in BLOCKED:
        (stubs / f"{name}.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(stubs), str(ROOT)])}


def _xmodal(env: dict[str, str], *argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
            "from engine.cli import main\n"
            "code = main(sys.argv[1:])\n"
            f"heavy = [m for m in {BLOCKED!r} if m in sys.modules and sys.modules[m] is not None]\n"
            "assert not heavy, heavy\n"
            "raise SystemExit(code)\n")
    return subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("argv, code, says", [
    (["--help"], 0, "train-reranker"),
    (["--version"], 0, "xmodal "),
    (["-v"], 0, "COMMAND"),
    (["models"], 0, "tiny-random  (dim 64, ready)"),
    (["models", "--json", "-v"], 0, '"name": "clip-vit-b32"'),
    (["check", "--help"], 0, "--repair"),
    (["search", "--help"], 0, "(default: 10)"),
    (["ingest", "--help"], 0, "(default: 32)"),
    (["serve", "--help"], 0, "--port"),
    (["demo", "--help"], 0, "--k"),
    (["bench", "--help"], 0, "figures"),
    (["search", "--k", "1000000000", "a dog"], 2, "argument -k/--k: 1000000000 is out of range: from 1 to 1000"),
    (["search", "--depth", "300000000", "a dog"], 2, "argument --depth: 300000000 is out of range"),
    (["search", "--k", "ten", "a dog"], 2, "argument -k/--k: 'ten' is not a whole number"),
    (["ingest", "--workers", "-1", "x"], 2, "argument --workers: -1 is out of range: from 0 to 64"),
    (["ingest", "--batch-size", "0", "x"], 2, "argument --batch-size: 0 is out of range"),
    (["serve", "--port", "70000"], 2, "argument --port: 70000 is out of range"),
    (["serve", "--workers", "0"], 2, "argument --workers: 0 is out of range"),
    (["no-such-command"], 2, "invalid choice"),
])
def test_no_torch_needed(no_torch, argv, code, says):
    done = _xmodal(no_torch, *argv)
    assert done.returncode == code, done.stderr[-2000:]
    assert says in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_check_runs_without_torch(no_torch, tmp_path):
    done = _xmodal(no_torch, "check", "--store", str(tmp_path / "missing"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "missing").exists()


def test_missing_query_file_is_refused_before_any_model_loads(no_torch, tmp_path):
    for option in ("--image", "--audio"):
        done = _xmodal(no_torch, "search", option, str(tmp_path / "nope.jpg"), "--store", str(tmp_path))
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"xmodal: error: {option} {tmp_path / 'nope.jpg'}: no such file or directory" in done.stderr
    done = _xmodal(no_torch, "search", "--image", str(tmp_path), "--store", str(tmp_path))
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_unknown_target_is_refused_before_any_model_loads(no_torch, tmp_path):
    done = _xmodal(no_torch, "search", "a dog", "--targets", "image,smell", "--store", str(tmp_path))
    assert done.returncode == 2 and "--targets: unknown modality 'smell'" in done.stderr, done.stderr[-2000:]


def test_busy_port_is_its_own_exit_code_before_any_model_loads(no_torch, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _xmodal(no_torch, "serve", "--port", str(port), "--store", str(tmp_path))
    assert done.returncode == 8, done.stderr[-2000:]  # not 3, uvicorn's startup failure (read as missing weights)
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr and "--port" in done.stderr


def test_foreign_host_address_is_refused(no_torch, tmp_path):
    done = _xmodal(no_torch, "serve", "--host", "192.0.2.1", "--store", str(tmp_path))  # TEST-NET-1: never ours
    assert done.returncode == 8 and "not an address of this machine" in done.stderr, done.stderr[-2000:]


def test_cli_copies_of_library_defaults_agree():
    from engine.cli import ingest as cli_ingest
    from engine.cli import search as cli_search
    from engine.api.facade import DEFAULT_PRESET, default_store
    from engine.query import DEFAULT_FUSION, FUSIONS
    from ingest.pipeline import IngestOptions

    assert (cli_search.FUSIONS, cli_search.DEFAULT_FUSION) == (FUSIONS, DEFAULT_FUSION)
    assert (cli_ingest.BATCH_SIZE, cli_ingest.WORKERS) == (IngestOptions.batch_size, IngestOptions.workers)
    assert cli_ingest.DEFAULT_PRESET == DEFAULT_PRESET and default_store().name
    from engine.cli import build_parser

    search = build_parser("search").parse_args(["search", "q"])
    assert search.fusion == DEFAULT_FUSION and search.k == 10 and search.depth == 100


def test_lazy_package_faces_still_export():
    import engine
    import engine.models as models
    from engine import Engine, InvalidInput, QueryPart, XmodalError  # noqa: F401
    from engine.models import AudioClip, get_preset, weights  # noqa: F401

    assert set(engine.__all__) <= set(dir(engine)) and "load_encoder" in models.__all__
    assert issubclass(InvalidInput, XmodalError) and weights.__name__ == "engine.models.weights"
    with pytest.raises(AttributeError):
        engine.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        from engine.models import no_such_name  # noqa: F401
