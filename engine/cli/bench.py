"""``xmodal bench``: quality, speed, peers and the README's figures table, each ``python -m bench.NAME`` in a child.

The engine never imports ``bench`` (it sits above every layer): each subcommand hands its arguments unchanged to its
module's own parser in a child process, so ``xmodal bench speed --help`` is bench.speed's help, and its exit code is
the child's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

NAME = "bench"
HELP = "run benchmarks and regenerate the README's figures table"
ROOT = Path(__file__).resolve().parents[2]  # the folder holding bench/ (the repository, or site-packages)
SUBCOMMANDS = {
    "quality": "retrieval quality per dataset and stage",
    "speed": "encode, ingest, index and query speed against bare open_clip and faiss",
    "peers": "rclip-style brute force and clip-retrieval against xmodal",
    "figures": "rewrite the README's figures table from bench/results/*.json",
}
# What ``xmodal bench all`` runs, in order, before regenerating the figures table: every benchmark whose JSON in
# bench/results feeds the README (at default sizes). Each runs in its own process.
ALL_STEPS: tuple[tuple[str, list[str]], ...] = (
    ("speed", ["bench.speed"]),
    ("peers", ["bench.peers"]),
    ("fusion", ["bench.fusion", "--json", "bench/results/fusion-xmodal-mini.json"]),
    ("serve", ["bench.serve", "--json", "bench/results/serve-mini.json"]),
    ("query", ["bench.query", "--json", "bench/results/query-xmodal-mini-1m.json"]),
    ("rerank", ["bench.rerank", "--json", "bench/results/rerank-xmodal-mini.json"]),
    *[(f"quality-{d}", ["bench.quality", "--preset", "xmodal-mini", "--dataset", d, "--threads", "1",
                        "--json", f"bench/results/quality-{d}-xmodal-mini.json",
                        "--md", f"bench/results/quality-{d}-xmodal-mini.md", "--plots", "bench/results/plots"])
      for d in ("scenes", "esc10", "fsdd")],
    # the longest (about 20 min on 2 cores): 10M vectors, IVF-PQ
    ("index-10m", ["bench.index", "--n", "10000000", "--kinds", "ivf-pq", "--json", "bench/results/index-10m.json"]),
)
FIGURES_STEP = ("figures", ["bench.figures"])


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand and its own subcommands (their options belong to the bench modules)."""
    parser = subparsers.add_parser(
        NAME, help=HELP,
        description="Benchmarks that write JSON with machine info, commit and date under bench/results, and the "
        "figures table in README.md made from them. `xmodal bench all` reruns everything the README reports. "
        "Each runs as `python -m bench.NAME`; `xmodal bench NAME --help` shows its options.",
    )
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH")
    for name, text in SUBCOMMANDS.items():
        # A prefix char no argument starts with: every option, --help too, passes through to the module untouched.
        child = sub.add_parser(name, help=f"{text} (bench.{name}; its --help lists its options)", add_help=False,
                               prefix_chars="\0")
        child.add_argument("argv", nargs=argparse.REMAINDER, help=f"arguments of bench.{name}")
        child.set_defaults(func=run_module, module=f"bench.{name}")
    all_parser = sub.add_parser("all", help="run every benchmark the README reports, then `figures`",
                                description="Run " + ", ".join(name for name, _ in ALL_STEPS) + " at their default "
                                "sizes (about 80 minutes on 2 cores), then regenerate the figures table.")
    all_parser.add_argument("--list", action="store_true", help="print the commands it would run, and run nothing")
    all_parser.set_defaults(func=run_all)
    parser.set_defaults(func=lambda args: _usage(parser))
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def command(module: str, argv: list[str]) -> list[str]:
    """The child's command line: this Python running ``module`` with ``argv``."""
    return [sys.executable, "-m", module, *argv]


def run_child(cmd: list[str], cwd: Path | None = None) -> int:
    """Run one ``python -m bench.NAME`` with bench importable; its exit code (128 + N when killed by signal N)."""
    module = cmd[2]
    if not (ROOT / Path(*module.split("."))).with_suffix(".py").is_file():
        print(f"xmodal: error: {module} is not available here (no {module.replace('.', '/')}.py under {ROOT})",
              file=sys.stderr)
        return 1
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    code = subprocess.run(cmd, cwd=cwd, env=env, check=False).returncode
    return code if code >= 0 else 128 - code


def run_module(args: argparse.Namespace) -> int:
    """Hand the arguments to ``python -m bench.NAME`` in the caller's folder."""
    return run_child(command(args.module, list(args.argv)))


def run_all(args: argparse.Namespace) -> int:
    """Run each step in its own process from the repository, carry on past failures, then regenerate the table."""
    steps = [(name, command(argv[0], argv[1:])) for name, argv in (*ALL_STEPS, FIGURES_STEP)]
    if args.list:
        for name, cmd in steps:
            print(f"{name}: {' '.join(cmd)}")
        return 0
    failed = []
    for name, cmd in steps:
        print(f"=== {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        code = run_child(cmd, cwd=ROOT)
        print(f"=== {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        note = " (their rows keep the previous JSON)" if "figures" not in failed else ""
        print(f"xmodal: error: failed: {', '.join(failed)}{note}", file=sys.stderr)
        return 1
    return 0
