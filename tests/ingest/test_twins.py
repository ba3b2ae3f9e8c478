"""Twin handling alone: content in flight parks its twins until committed, then releases them once."""

from __future__ import annotations

from ingest.twins import Twins
from ingest.work import Decoded, FileTask


def _file(uri: str, sha: str) -> Decoded:
    return Decoded(FileTask(uri, uri, 1, 0.0), sha256=sha, modality="image")


def test_twins_park_behind_content_in_flight_and_are_released_on_commit():
    twins = Twins()
    first, second, third, other = _file("a.jpg", "s1"), _file("b.jpg", "s1"), _file("c.jpg", "s1"), _file("d.jpg", "s2")
    assert not twins.in_flight("s1")
    twins.claim(first)
    assert twins.in_flight("s1") and not twins.in_flight("s2")
    twins.park(second)
    twins.park(third)
    twins.claim(other)
    assert twins.parked() == 2
    assert twins.release(["s2"]) == [] and not twins.in_flight("s2")
    assert twins.release(["s1"]) == [second, third]  # in parking order
    assert not twins.in_flight("s1") and twins.parked() == 0
    assert twins.release(["s1"]) == []  # released once


def test_content_committed_is_no_longer_in_flight_without_twins():
    twins = Twins()
    twins.claim(_file("a.jpg", "s1"))
    assert twins.release(iter(["s1"])) == [] and not twins.in_flight("s1")
