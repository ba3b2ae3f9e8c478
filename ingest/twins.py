"""Twin handling: files whose content is already being encoded in this run wait for it, then copy its vectors."""

from __future__ import annotations

from typing import Iterable

from ingest.work import Decoded


class Twins:
    """The content hashes being encoded in this run (from which uri), and the twins parked behind each one.

    A twin is not encoded a second time: it is parked until its content is committed, then copies the stored
    vectors. Content committed is no longer in flight, so a later twin finds it in the catalog instead.
    """

    def __init__(self) -> None:
        self._in_flight: dict[str, str] = {}
        self._parked: dict[str, list[Decoded]] = {}

    def in_flight(self, sha256: str) -> bool:
        """Whether content with this hash is being encoded in this run."""
        return sha256 in self._in_flight

    def claim(self, decoded: Decoded) -> None:
        """Note that ``decoded``'s content is now being encoded (its twins will park behind it)."""
        self._in_flight[decoded.sha256] = decoded.task.uri

    def park(self, decoded: Decoded) -> None:
        """Hold a file whose content is in flight until that content is committed."""
        self._parked.setdefault(decoded.sha256, []).append(decoded)

    def release(self, committed: Iterable[str]) -> list[Decoded]:
        """The twins parked behind the content hashes just committed (in parking order); those hashes leave flight."""
        hashes = list(committed)
        twins = [twin for sha in hashes for twin in self._parked.pop(sha, [])]
        for sha in hashes:
            self._in_flight.pop(sha, None)
        return twins

    def parked(self) -> int:
        """How many files wait for their twin's commit."""
        return sum(len(v) for v in self._parked.values())
