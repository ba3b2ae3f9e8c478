"""The layer check (``python -m bench.layers``): the real tree imports only downwards, has no cycle among packages and
bench uses only package faces; and the check does fail on a tree that breaks each rule."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.layers import ROOT, cycles, graph, layer_of, main, private_uses, violations


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(scope="module")
def real():
    return graph(ROOT)


def test_the_real_tree_imports_only_downwards(real):
    assert len(real.modules) > 100 and real.edges()  # the whole tree was read
    assert violations(real) == []


def test_the_real_package_graph_has_no_cycle(real):
    assert cycles(real) == []


def test_bench_uses_only_package_faces(real):
    assert private_uses(real) == []


def test_layers_of_modules():
    assert layer_of("engine.models.towers.small") == "engine.models"
    assert layer_of("engine.cli") == "engine.cli"
    assert (layer_of("engine"), layer_of("engine.__main__")) == ("engine", "engine")
    assert (layer_of("index.catalog"), layer_of("core"), layer_of("bench.layers")) == ("index", "core", "bench")


def test_an_upward_import_inside_a_function_is_found_with_its_path_and_line(tmp_path, capsys):
    root = _tree(tmp_path, {
        "core/__init__.py": "",
        "index/__init__.py": "from core import x\n",
        "index/store.py": "import numpy\n\n\ndef open_it():\n    from engine.models import Encoder\n    return Encoder\n",
        "engine/__init__.py": "",
        "engine/models/__init__.py": "import index\n",
    })
    g = graph(root)
    assert violations(g) == ["index/store.py:5  index (rank 1) imports engine.models (rank 3)"]
    assert cycles(g) == [["engine.models", "index"]]
    assert main(["--root", str(root), "--json", str(tmp_path / "out" / "layers.json")]) == 1
    out = capsys.readouterr().out
    assert "  index -> engine.models  (1 imports)" in out and "index/store.py:5  index (rank 1)" in out
    saved = json.loads((tmp_path / "out" / "layers.json").read_text())
    assert saved["upward"] == violations(g) and saved["cycles"] == [["engine.models", "index"]]


def test_type_checking_relative_and_lazy_face_imports_count(tmp_path):
    root = _tree(tmp_path, {
        "core/__init__.py": "",
        "core/lazy.py": "def lazy_face(package, exports):\n    return None, None\n",
        # a lazy face's map names modules as strings
        "core/face.py": "from core.lazy import lazy_face\n\n_EXPORTS = {'Engine': 'engine.api.facade'}\n"
                        "__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)\n",
        "index/__init__.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from ingest.work import Job\n",
        "engine/__init__.py": "",
        "engine/query/__init__.py": "from .search import run\n",
        "engine/query/search.py": "from ..train import fit\n\n\ndef run():\n    return fit\n",
        "engine/train/__init__.py": "def fit():\n    pass\n",
    })
    assert sorted(violations(graph(root))) == [
        "core/face.py:3  core (rank 0) imports engine.api (rank 6)",
        "engine/query/search.py:1  engine.query (rank 5) imports engine.train (rank 6)",
        "index/__init__.py:4  index (rank 1) imports ingest (rank 2)",
    ]


def test_a_cycle_between_packages_of_one_rank_is_found_without_an_upward_import(tmp_path):
    root = _tree(tmp_path, {
        "engine/__init__.py": "",
        "engine/query/__init__.py": "",
        "engine/query/a.py": "def f():\n    import engine.datasets.b\n",
        "engine/datasets/__init__.py": "",
        "engine/datasets/b.py": "from engine.query import a\n",
    })
    g = graph(root)
    assert violations(g) == [] and cycles(g) == [["engine.datasets", "engine.query"]]
    assert main(["--root", str(root)]) == 1


def test_bench_private_names_and_modules_are_found(tmp_path):
    root = _tree(tmp_path, {
        "engine/__init__.py": "",
        "engine/api/__init__.py": "",
        "engine/api/facade.py": "class Engine:\n    pass\n",
        "engine/datasets/__init__.py": "",
        "engine/datasets/_scene.py": "",
        "bench/__init__.py": "",
        "bench/_util.py": "",
        "bench/ok.py": "from bench import _util\nfrom engine.api import Engine\nfrom engine import datasets\n",
        "bench/bad.py": "from engine.api.facade import Engine\nfrom engine.datasets import _scene\nimport engine.api.facade\n",
    })
    assert private_uses(graph(root)) == [
        "bench/bad.py:1  imports engine.api.facade, a module, not a package face",
        "bench/bad.py:2  imports _scene from engine.datasets: not public",
        "bench/bad.py:3  imports engine.api.facade, a module, not a package face",
    ]


def test_the_command_prints_the_graph_and_exits_0_on_the_real_tree():
    done = subprocess.run([sys.executable, "-m", "bench.layers"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  engine.models -> core  (" in done.stdout
    assert "upward imports: none" in done.stdout and "cycles among packages: none" in done.stdout


@pytest.mark.slow
def test_every_name_every_package_face_exports_resolves(real):
    """A lazy face maps names to modules as strings: a module renamed under it would break only on first use."""
    for face in sorted(p for p in real.packages if layer_of(p) != "bench"):
        module = importlib.import_module(face)
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{face}.{name}"
