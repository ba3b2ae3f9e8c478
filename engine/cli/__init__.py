"""The ``xmodal`` command: one subcommand per module, library errors mapped to exit codes here only."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from engine.errors import XmodalError
from index.errors import IndexStoreError
from ingest.errors import IngestError

# Each module in engine.cli named here defines ``register(subparsers) -> ArgumentParser`` that sets
# ``func`` on its parser via ``set_defaults``; ``func(args) -> int`` runs the command.
COMMANDS = ["models", "train", "rerank_train", "ingest", "search", "check", "demo", "serve", "bench"]

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="xmodal",
        description="Any-to-any search over your own images, sounds and texts.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and decisions")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"engine.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (XmodalError, IndexStoreError, IngestError) as exc:
        print(f"xmodal: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("xmodal: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
