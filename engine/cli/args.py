"""Argument types with ranges, and the help formatter every command uses; imports nothing heavy."""

from __future__ import annotations

import argparse
import math
from typing import Callable

# What one command line may ask for: past these a search allocates gigabytes or a pool forks hundreds of processes.
MAX_K = 1000
MAX_DEPTH = 10_000
MAX_RERANK_DEPTH = 1000
MAX_WORKERS = 64
MAX_BATCH_SIZE = 4096
MAX_THREADS = 256


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` that accepts whole numbers from ``low`` to ``high`` (no upper bound when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range: {_span(low, high)}")
        return value

    parse.__name__ = "int"
    return parse


def float_range(low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse ``type`` that accepts finite numbers from ``low`` to ``high`` (no upper bound when None)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is out of range: {_span(low, high)}")
        return value

    parse.__name__ = "float"
    return parse


def _span(low: float, high: float | None) -> str:
    return f"from {low} to {high}" if high is not None else f"{low} or more"


class HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default where its help does not already say it (and the default says something)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or "%(default)" in text or action.default in (None, False, [], "", argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text
