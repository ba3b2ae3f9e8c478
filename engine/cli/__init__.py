"""The ``xmodal`` command: one subcommand per module, library errors mapped to exit codes here only.

Startup stays light: command modules import torch, FAISS and the models inside ``run``, and only the
command being run registers its options (the others are listed by name and help), so ``--help``,
``--version``, argument errors, ``models`` and ``check`` never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType
from typing import Any, Sequence

from engine.cli.args import HelpFormatter
from core.errors import XmodalError

# Each module in engine.cli named here defines ``register(subparsers) -> ArgumentParser`` that sets
# ``func`` on its parser via ``set_defaults``; ``func(args) -> int`` runs the command. A module that also
# defines ``NAME`` and ``HELP`` is listed by those alone when another command runs.
COMMANDS = ["models", "train", "train_reranker", "ingest", "search", "check", "demo", "serve", "bench", "shards"]

EXIT_INTERRUPTED = 130


class _Version(argparse.Action):
    """``--version``: looks the installed version up only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("xmodal")
        except PackageNotFoundError:
            found = "unknown (not installed)"
        print(f"xmodal {found}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every subcommand in full, or with ``command`` only that one (the rest by name)."""
    parser = argparse.ArgumentParser(
        prog="xmodal", formatter_class=HelpFormatter,
        description="Any-to-any search over your own images, sounds and texts.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and decisions")
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _modules():
        name = getattr(module, "NAME", None)
        if command is not None and name is not None and name != command:
            sub.add_parser(name, help=module.HELP, add_help=False)
            continue
        _finish(module.register(sub))
    return parser


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"engine.cli.{name}") for name in COMMANDS]


def _finish(parser: argparse.ArgumentParser) -> None:
    """Every command shows defaults in its help and takes ``-v`` after its name too."""
    parser.formatter_class = HelpFormatter
    if "-v" not in parser._option_string_actions:
        # SUPPRESS: left out, the subcommand must not reset a top-level -v to False
        parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                            help="log progress and decisions")


def _command_of(argv: Sequence[str]) -> str:
    """The subcommand named on the command line ('' when none): top-level options take no values."""
    return next((a for a in argv if not a.startswith("-")), "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_libraries(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("xmodal: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not isinstance(exc, XmodalError):
            raise
        print(f"xmodal: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))


def _quiet_libraries(verbose: bool) -> None:
    """Without -v, third-party progress bars and notes (transformers' "Loading weights") stay off stderr."""
    if verbose:
        return
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (main called in-process): tell it directly
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
