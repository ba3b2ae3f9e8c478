"""The edge of every ``python -m bench.NAME``: library errors become a message and an exit code, as in ``xmodal``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from engine import XmodalError

EXIT_INTERRUPTED = 130


def run_main(main: Callable[[list[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run a bench command's ``main``; the exit code: its own when it returns an int, else 0, or the error's."""
    try:
        result = main(None if argv is None else list(argv))
    except KeyboardInterrupt:
        print("xmodal: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except XmodalError as exc:
        print(f"xmodal: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    return result if type(result) is int else 0  # a bool (figures: "changed") is not an exit code
