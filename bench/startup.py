"""``python -m bench.startup``: how long ``xmodal --help`` and a one-shot ``xmodal search`` take from process start.

A small store (the demo's ESC-10 clips and a text note) is built with each checkout's own code, then the commands
run as fresh processes, alternating between this checkout and ``--baseline TREE`` (e.g. a ``git worktree`` of an
older commit) round by round, so both see the same machine load. Medians and every run go to JSON.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_json

HERE = Path(__file__).resolve().parents[1]
COMMANDS = {"--help": ["--help"], "search": ["search", "a dog barking", "--k", "3"]}


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "XMODAL_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def _xmodal(tree: Path, argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *argv], cwd=cwd, env=_env(tree), capture_output=True,
                          text=True, timeout=timeout)


def small_folder(folder: Path) -> Path:
    """The demo's sound clips and one text note: a store small enough that start-up dominates a search."""
    folder.mkdir(parents=True, exist_ok=True)
    for clip in sorted((HERE / "data" / "demo" / "sounds").glob("*.ogg")):
        shutil.copy(clip, folder / clip.name)
    (folder / "note.txt").write_text("Storm warning: heavy rain and thunder tonight.\n")
    return folder


def time_commands(trees: dict[str, Path], stores: dict[str, Path], rounds: int, cwd: Path) -> dict[str, dict]:
    """Wall seconds of each command per tree, alternating trees inside every round."""
    runs: dict[str, dict[str, list[float]]] = {name: {c: [] for c in COMMANDS} for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            for command, argv in COMMANDS.items():
                argv = [*argv, "--store", str(stores[name])] if command == "search" else argv
                started = time.perf_counter()
                done = _xmodal(tree, argv, cwd)
                runs[name][command].append(round(time.perf_counter() - started, 3))
                if done.returncode != 0:
                    raise RuntimeError(f"{name} {command} exited {done.returncode}: {done.stderr[-1000:]}")
    return {name: {c: {"median_s": statistics.median(x), "runs": x} for c, x in by.items()} for name, by in runs.items()}


def main(argv: list[str] | None = None) -> int:
    """Build the stores, time the commands, print and write the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, metavar="TREE", help="another checkout to alternate with")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each command per tree (default 5)")
    parser.add_argument("--preset", default="xmodal-mini", help="preset of the stores (default xmodal-mini)")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    trees = {**({"baseline": args.baseline.resolve()} if args.baseline else {}), "this": HERE}
    with tempfile.TemporaryDirectory(prefix="xmodal-startup-") as tmp:
        work = Path(tmp)
        media = small_folder(work / "media")
        stores = {name: work / f"store-{name}" for name in trees}
        for name, tree in trees.items():
            done = _xmodal(tree, ["ingest", str(media), "--store", str(stores[name]), "--preset", args.preset,
                                  "--workers", "0"], work, timeout=1800)
            if done.returncode != 0:
                raise RuntimeError(f"ingest with {tree} exited {done.returncode}: {done.stderr[-1000:]}")
        figures = time_commands(trees, stores, args.rounds, work)
    for name, by in figures.items():
        print(f"{name:9s} " + "  ".join(f"{c}: median {f['median_s']:.2f} s" for c, f in by.items()))
    report = {"bench": "startup", "preset": args.preset, "rounds": args.rounds,
              "trees": {n: str(t) for n, t in trees.items()}, "figures": figures, "loadavg": os.getloadavg()}
    write_json(args.json_out, report)
    return 0


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
