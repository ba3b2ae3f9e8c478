"""Commits alone: what waits goes to the sink in one call, is counted in the summary, and is cleared; nothing is
counted when the sink's transaction fails."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.commits import Commits
from ingest.sink_protocol import Completed
from ingest.summary import IngestSummary
from ingest.work import Decoded, FileTask, RepPayload


class _Sink:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def commit(self, done, failed, touched, copied) -> None:
        if self.fail:
            raise OSError("disk full")
        self.calls.append((list(done), list(failed), list(touched), list(copied)))


def _task(uri: str) -> FileTask:
    return FileTask(uri, uri, 1, 0.0)


def _waiting(commits: Commits) -> None:
    reps = [RepPayload("image", "image"), RepPayload("caption", "text", text="a cat")]
    commits.done.append(Completed("a.jpg", "s1", "image", reps, np.zeros((2, 3), np.float32), task=_task("a.jpg")))
    commits.failed.append(Decoded(_task("bad.jpg"), error="corrupt or truncated image"))
    commits.touched.append(Decoded(_task("same.jpg"), sha256="s2", unchanged=True))
    commits.copied.append((Decoded(_task("twin.jpg"), sha256="s3"), 7))


def test_flush_commits_everything_in_one_call_and_counts_it():
    sink, summary = _Sink(), IngestSummary()
    commits = Commits(sink, summary)  # type: ignore[arg-type]
    assert commits.flush() == [] and sink.calls == []  # nothing waiting: no transaction
    _waiting(commits)
    assert commits.unencoded() == 3 and not commits.empty()
    done = commits.flush()
    assert [c.uri for c in done] == ["a.jpg"]
    ((d, f, t, c),) = sink.calls
    assert ([x.uri for x in d], [x.task.uri for x in f], [x.task.uri for x in t], [(x.task.uri, i) for x, i in c]) == (
        ["a.jpg"], ["bad.jpg"], ["same.jpg"], [("twin.jpg", 7)])
    assert (summary.added, summary.representations, summary.failed, summary.touched, summary.reused) == (1, 2, 1, 1, 1)
    assert summary.failures == [("bad.jpg", "corrupt or truncated image")]
    assert commits.empty() and commits.unencoded() == 0


def test_a_failed_transaction_counts_nothing_and_keeps_the_work():
    summary = IngestSummary()
    commits = Commits(_Sink(fail=True), summary)  # type: ignore[arg-type]
    _waiting(commits)
    with pytest.raises(OSError):
        commits.flush()
    assert summary == IngestSummary() and commits.unencoded() == 3
