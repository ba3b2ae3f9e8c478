"""``xmodal bench``: quality, speed, peers and the README's figures table, each a subcommand over ``bench/``."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

NAME = "bench"
HELP = "run benchmarks and regenerate the README's figures table"
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


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand and its own subcommands."""
    from bench import figures, peers, speed

    parser = subparsers.add_parser(
        NAME, help=HELP,
        description="Benchmarks that write JSON with machine info, commit and date under bench/results, and the "
        "figures table in README.md made from them. `xmodal bench all` reruns everything the README reports.",
    )
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH")
    # Leading options belong to bench.quality's own parser: a prefix char no argument starts with passes them through.
    quality = sub.add_parser("quality", help="retrieval quality (bench.quality); arguments go to it unchanged",
                             add_help=False, prefix_chars="\0")
    quality.add_argument("argv", nargs=argparse.REMAINDER, help="arguments of bench.quality (try --help)")
    quality.set_defaults(func=run_quality)
    speed_parser = sub.add_parser("speed", help="encode, ingest, index and query speed against bare open_clip and faiss",
                                  description=speed.__doc__.splitlines()[0])
    speed.add_arguments(speed_parser)
    speed_parser.set_defaults(func=lambda args: _done(speed.run(args)))
    peers_parser = sub.add_parser("peers", help="rclip-style brute force and clip-retrieval against xmodal",
                                  description=peers.__doc__.splitlines()[0])
    peers.add_arguments(peers_parser)
    peers_parser.set_defaults(func=lambda args: _done(peers.run(args)))
    figures_parser = sub.add_parser("figures", help="rewrite the README's figures table from bench/results/*.json",
                                    description=figures.__doc__.splitlines()[0])
    figures.add_arguments(figures_parser)
    figures_parser.set_defaults(func=lambda args: _done(figures.run(args)))
    all_parser = sub.add_parser("all", help="run every benchmark the README reports, then `figures`",
                                description="Run " + ", ".join(name for name, _ in ALL_STEPS) + " at their default "
                                "sizes (about 80 minutes on 2 cores), then regenerate the figures table.")
    all_parser.add_argument("--list", action="store_true", help="print the commands it would run, and run nothing")
    all_parser.set_defaults(func=run_all)
    parser.set_defaults(func=lambda args: _usage(parser))
    return parser


def _done(_: object) -> int:
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def run_quality(args: argparse.Namespace) -> int:
    """Hand the arguments to ``bench.quality.main``."""
    try:
        from bench import quality
    except ImportError as exc:
        print(f"xmodal: error: bench.quality is not available here ({exc})", file=sys.stderr)
        return 1
    quality.main(list(args.argv))
    return 0


def run_all(args: argparse.Namespace) -> int:
    """Run each step in its own process, carry on past failures, then regenerate the figures table."""
    from bench import figures

    commands = [(name, [sys.executable, "-m", *argv]) for name, argv in ALL_STEPS]
    if args.list:
        for name, cmd in commands:
            print(f"{name}: {' '.join(cmd)}")
        print("figures: xmodal bench figures")
        return 0
    failed = []
    for name, cmd in commands:
        print(f"=== {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(cmd, cwd=figures.ROOT, check=False).returncode
        print(f"=== {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    figures.run(argparse.Namespace(results=figures.RESULTS, readme=figures.README, print_only=False))
    if failed:
        print(f"xmodal: error: failed: {', '.join(failed)} (their rows keep the previous JSON)", file=sys.stderr)
        return 1
    return 0
