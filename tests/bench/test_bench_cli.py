"""``xmodal bench``: parsing and dispatch, the README figures table, the rclip-style baseline, peer skips."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import _clip_retrieval, _rclip, figures, peers, speed
from bench._child import ChildResult
from bench._errors import BenchError, InvalidBenchArgs, MarkersNotFound, PeerUnavailable
from engine.cli import bench as cli_bench
from engine.cli import build_parser, main
from index import exact_search


def test_sizes_parse():
    assert speed.parse_sizes("100k,1M, 2500,1.5m") == [100_000, 1_000_000, 2500, 1_500_000]
    assert [speed.size_label(n) for n in (100_000, 1_000_000, 10_000_000, 2500)] == ["100k", "1M", "10M", "2500"]
    for bad in ("10x", "k", "-5", "10"):
        with pytest.raises(InvalidBenchArgs):
            speed.parse_size(bad)


def test_default_index_kinds_leave_hnsw_out_above_200k():
    assert "hnsw" in speed.kinds_for(100_000)
    assert speed.kinds_for(1_000_000) == ["flat", "ivf-flat", "ivf-pq"]
    assert speed.kinds_for(10_000_000) == ["ivf-pq"]


def _args(module, argv):
    """``argv`` parsed by ``module``'s own options, as ``python -m bench.NAME`` parses them."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def test_bench_subcommands_pass_their_arguments_through_untouched():
    for name in ("speed", "peers", "figures", "quality"):
        argv = ["--dataset", "esc10", "--help"] if name == "quality" else ["--json", "out.json", "--help"]
        args = build_parser().parse_args(["bench", name, *argv])
        assert (args.module, args.argv) == (f"bench.{name}", argv)  # leading options and --help reach the module
    args = _args(speed, build_parser().parse_args(["bench", "speed", "--sizes", "100k,1M", "--quick", "--kinds", "flat"]).argv)
    assert (args.sizes, args.quick, args.kinds, args.json_out) == ("100k,1M", True, "flat", None)
    args = _args(peers, build_parser().parse_args(["bench", "peers", "--parts", "rclip", "--queries", "7"]).argv)
    assert (args.parts, args.queries, args.sizes) == ("rclip", 7, "100k,1M")


class _Runs:
    """Stands in for ``subprocess.run`` in engine.cli.bench: records each child and answers with an exit code."""

    def __init__(self, codes=None):
        self.calls, self.codes = [], codes or {}

    def __call__(self, cmd, cwd=None, env=None, check=False):
        self.calls.append((cmd, cwd, env))
        return subprocess.CompletedProcess(cmd, self.codes.get(cmd[2], 0))


@pytest.mark.parametrize("name,argv", [("speed", ["--quick"]), ("peers", []), ("figures", ["--print"]),
                                       ("quality", ["--dataset", "fsdd", "--json", "out.json"])])
def test_each_subcommand_is_its_module_in_a_child(name, argv, monkeypatch):
    runs = _Runs({f"bench.{name}": 3})
    monkeypatch.setattr(cli_bench.subprocess, "run", runs)
    assert main(["bench", name, *argv]) == 3  # the child's exit code is xmodal's
    [(cmd, cwd, env)] = runs.calls
    assert cmd == [sys.executable, "-m", f"bench.{name}", *argv]
    assert cwd is None  # the caller's folder: relative paths mean what the user meant
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(cli_bench.ROOT)


def test_a_missing_bench_is_a_clear_error_without_a_child(monkeypatch, tmp_path, capsys):
    runs = _Runs()
    monkeypatch.setattr(cli_bench.subprocess, "run", runs)
    monkeypatch.setattr(cli_bench, "ROOT", tmp_path)
    assert main(["bench", "speed"]) == 1
    assert "xmodal: error: bench.speed is not available here" in capsys.readouterr().err and runs.calls == []


def test_the_cli_never_imports_bench():
    code = ("import sys; from engine.cli import main; assert main(['bench', 'all', '--list']) == 0; "
            "loaded = [m for m in sys.modules if m == 'bench' or m.startswith('bench.') or m == 'torch']; "
            "assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", code], cwd=cli_bench.ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "figures: " in done.stdout


def test_help_and_bad_input_come_from_the_module_in_a_child(capfd):
    assert main(["bench", "peers", "--help"]) == 0
    assert "usage: xmodal bench peers" in capfd.readouterr().out
    assert main(["bench", "speed", "--sizes", "lots"]) == 2
    assert main(["bench", "speed", "--stages", "encode,warp"]) == 2
    err = capfd.readouterr().err
    assert "xmodal: error: not a corpus size: 'lots'" in err and "warp" in err and "Traceback" not in err


def test_all_lists_every_step_and_runs_nothing(monkeypatch, capsys):
    runs = _Runs()
    monkeypatch.setattr(cli_bench.subprocess, "run", runs)
    assert main(["bench", "all", "--list"]) == 0
    out = capsys.readouterr().out
    for module in ("bench.speed", "bench.peers", "bench.fusion", "bench.serve"):
        assert f" -m {module}" in out
    assert out.strip().endswith(f"figures: {sys.executable} -m bench.figures") and runs.calls == []


def test_all_runs_every_step_past_failures_then_the_figures(monkeypatch, capsys):
    runs = _Runs({"bench.peers": 1})
    monkeypatch.setattr(cli_bench.subprocess, "run", runs)
    assert main(["bench", "all"]) == 1
    modules = [cmd[2] for cmd, _, _ in runs.calls]
    assert modules == [argv[0] for _, argv in cli_bench.ALL_STEPS] + ["bench.figures"]
    assert {cwd for _, cwd, _ in runs.calls} == {cli_bench.ROOT}  # the steps' --json paths are the repository's
    assert "xmodal: error: failed: peers (their rows keep the previous JSON)" in capsys.readouterr().err


def _fake_results(tmp_path):
    machine = {"date": "2026-11-22T10:00:00+00:00", "commit": "abc1234"}
    speed_json = {"machine": machine, "encode": {"results": [
        {"modality": "image", "precision": "fp32", "batch_size": 32, "ratio_vs_bare": 0.97},
        {"modality": "image", "precision": "bf16", "batch_size": 32, "ratio_vs_bare": 0.8},
        {"modality": "image", "precision": "fp32", "batch_size": 1, "ratio_vs_bare": 0.1}]},
        "index": {"1M": {"results": [{"kind": "ivf-flat", "overhead_ratio": 1.02, "recall_at_10": 0.93}]}}}
    peers_json = {"machine": machine, "clip_retrieval": {"skipped": "pip failed | offline"}}
    fusion_json = {"machine": machine, "results": {"calibrated": {"by_kind": {"audio": {"p1": 0.8}}},
                                                   "probability": {"by_kind": {"audio": {"p1": 0.825}}}}}
    for name, payload in (("speed.json", speed_json), ("peers.json", peers_json), ("fusion-xmodal-mini.json", fusion_json)):
        (tmp_path / name).write_text(json.dumps(payload))
    return tmp_path


def test_figure_rows_goals_and_missing_files(tmp_path):
    rows = {r.what: r for r in figures.build_rows(_fake_results(tmp_path))}
    met = lambda what: (rows[what].figure, rows[what].goal, rows[what].met)  # noqa: E731
    assert met("encode, image fp32 batch 32: xmodal / bare open_clip throughput") == ("0.970", ">= 0.95", "yes")
    assert met("encode, image bf16 batch 32: xmodal / bare open_clip throughput") == ("0.800", ">= 0.95", "no")
    assert met("encode, text fp32 batch 32: xmodal / bare open_clip throughput") == ("not in results", ">= 0.95", "—")
    assert met("index 1M IVF-Flat: xmodal / raw faiss batched search time") == ("1.020", "<= 1.1", "yes")
    assert met("index 1M IVF-Flat: recall@10") == ("0.9300", ">= 0.95", "no")
    assert met("fusion (xmodal-mini, mixed store, any kind): probability P@1 of audio queries") == \
        ("0.8250", ">= calibrated's 0.8", "yes")
    skipped = rows["peer clip-retrieval `clip inference`: xmodal ingest / its images/s (ViT-B-32 fp32)"]
    assert skipped.figure == "skipped: pip failed | offline" and skipped.met == "—"
    assert rows["server: failed requests"].figure == "not measured"  # serve-mini.json is absent
    assert rows["index 1M IVF-Flat: recall@10"].when == "2026-11-22 / abc1234"
    assert rows["index 1M IVF-Flat: recall@10"].source == "`bench/results/speed.json`"
    table = figures.render(list(rows.values()))
    assert "skipped: pip failed \\| offline" in table  # a pipe in a message cannot break the table
    assert len(table.splitlines()) == 4 + len(figures.FIGURES)


def test_readme_rewrite_between_markers_is_idempotent(tmp_path):
    results = _fake_results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{figures.BEGIN}\nold table\n{figures.END}\nafter\n")
    assert figures.update_readme(readme, results) is True
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{figures.END}\nafter\n")
    assert "old table" not in text and "| encode, image fp32 batch 32" in text
    assert figures.update_readme(readme, results) is False
    assert readme.read_text() == text
    (results / "speed.json").unlink()
    assert figures.update_readme(readme, results) is True and "not measured" in readme.read_text()


def test_readme_without_markers(tmp_path, capfd):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(MarkersNotFound):
        figures.update_readme(readme, tmp_path)
    assert main(["bench", "figures", "--readme", str(readme), "--results", str(tmp_path)]) == 1  # in a child
    err = capfd.readouterr().err
    assert "xmodal: error: " in err and "figures:begin" in err and "Traceback" not in err
    assert readme.read_text() == "# no markers\n"


def test_rclip_brute_force_is_exact_top_k(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 64), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(3000, dtype=np.int64) * 7 + 5
    db = tmp_path / "rclip.db"
    assert _rclip.write_vectors(db, [(ids[:1000], vectors[:1000]), (ids[1000:], vectors[1000:])]) == 3000
    assert _rclip.count_vectors(db) == 3000 and _rclip.count_vectors(tmp_path / "none.db") == 0
    loaded_ids, features = _rclip.load_features(db)
    np.testing.assert_array_equal(loaded_ids, ids)
    np.testing.assert_array_equal(features, vectors)
    queries = rng.standard_normal((20, 64), dtype=np.float32)
    _, truth = exact_search(queries, vectors, 10, ids=ids)
    found = np.stack([_rclip.brute_force_top_k(features, loaded_ids, q, 10) for q in queries])
    np.testing.assert_array_equal(found, truth)


def test_peer_venv_that_cannot_be_created_is_skipped(tmp_path, capsys):
    with pytest.raises(PeerUnavailable, match="could not be installed"):
        _clip_retrieval.ensure_venv(tmp_path / "venv", python=str(tmp_path / "no-python"))
    args = _args(peers, ["--parts", "clip-retrieval", "--peer-venv", str(tmp_path / "venv"),
                         "--workdir", str(tmp_path), "--json", str(tmp_path / "peers.json")])
    result = peers.clip_retrieval_vs_xmodal(args, python="/bin/false")
    assert result["skipped"].startswith("clip-retrieval could not be installed into")
    assert "/bin/false -m venv" in result["skipped"]
    assert "clip-retrieval: skipped: clip-retrieval could not be installed" in capsys.readouterr().out
    assert not (tmp_path / "images").exists()  # nothing was built for a peer that cannot run


def test_a_failed_speed_stage_is_recorded_and_the_others_still_run(monkeypatch, tmp_path):
    calls = []

    def fake_run_module(module, argv, json_path):
        calls.append(module)
        if module == "bench.ingest":
            raise BenchError("bench.ingest --n 300 exited with status 1")
        return ChildResult({"bench": "encode", "machine": {"commit": "x"}, "results": []}, 1.5, 2.0)

    monkeypatch.setattr(speed, "run_module", fake_run_module)
    out = tmp_path / "speed.json"
    args = _args(speed, ["--stages", "ingest,encode", "--json", str(out)])
    with pytest.raises(BenchError, match="bench.ingest --n 300 exited"):
        speed.run(args)
    saved = json.loads(out.read_text())
    assert calls == ["bench.ingest", "bench.encode"]
    assert saved["ingest"] == {"error": "bench.ingest --n 300 exited with status 1"}
    assert saved["encode"] == {"bench": "encode", "results": [], "peak_rss_gib": 1.5, "wall_seconds": 2.0}
    assert saved["machine"]["commit"] is not None and "loadavg_end" in saved


def test_failed_stages_show_as_failed(tmp_path):
    machine = {"date": "2026-11-22T10:00:00+00:00", "commit": "abc1234"}
    (tmp_path / "speed.json").write_text(json.dumps({"machine": machine, "query": {"1M": {"error": "bench.query exited 1"}},
                                                     "index": {"1M": {"results": [{"kind": "ivf-flat", "error": ["MemoryError"]}]}}}))
    rows = {r.what: r for r in figures.build_rows(tmp_path)}
    assert rows["query over 1M, end to end: p99, ms"].figure == "failed: bench.query exited 1"
    assert rows["index 1M IVF-Flat: recall@10"].figure == "failed: MemoryError"
    assert rows["index 1M IVF-Flat: recall@10"].met == "—"


def test_a_child_reports_its_own_peak_memory_not_its_parents(tmp_path, monkeypatch):
    # ru_maxrss survives exec: a child spawned by a big parent used to report the parent's size as its own peak
    from bench import _child

    module = tmp_path / "tiny_child.py"
    module.write_text("import json, sys\njson.dump({'ok': 1}, open(sys.argv[sys.argv.index('--json') + 1], 'w'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ballast = bytearray(1 << 30)  # 1 GiB, touched so it is resident
    for at in range(0, len(ballast), 4096):
        ballast[at] = 1
    result = _child.run_module("tiny_child", [], tmp_path / "out.json")
    assert result.payload == {"ok": 1}
    assert 0 < result.peak_rss_gib < 0.5, result.peak_rss_gib
    del ballast
