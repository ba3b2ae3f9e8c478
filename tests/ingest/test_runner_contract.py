"""Every registered ingest runner passes the same tests: the same decoded output as decoding in order here, broken
files reported with path and reason, a raising decoder failing only its file, bounded read-ahead, and nothing left
running after close (finished or abandoned mid-way)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from ingest.decode import DecodeSettings
from ingest.errors import IngestError
from ingest.pipeline import IngestOptions, Pipeline
from ingest.runner import InlineRunner, RunnerSpec, open_runner, register_runner, runner_factory, runner_names
from ingest.sources import scan_sources
from ingest.work import Decoded, FileTask, process
from tests.corpus import good_files, jpeg_bytes

WORKERS = 2
SETTINGS = DecodeSettings(timeout_s=30)


@pytest.fixture(scope="module")
def preprocessors(tiny_encoder):
    return {m: tiny_encoder.preprocessor(m) for m in ("image", "audio")}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[list[FileTask], Path]:
    """Images, audio (WAV and FLAC) and texts, plus a truncated JPEG; the scan's tasks in order."""
    root = tmp_path_factory.mktemp("mixed")
    good_files(root, n_images=3, n_audio=2, n_texts=2)
    broken = root / "images" / "cut.jpg"
    broken.write_bytes(jpeg_bytes(20, size=(200, 200))[:600])
    tasks = scan_sources([root]).files
    assert len(tasks) == 8
    return tasks, broken


def _children() -> set[int]:
    """Live (not zombie) processes whose parent is this one, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.add(int(entry))
    return found


def _same(got: Decoded, want: Decoded) -> None:
    assert got.task == want.task
    assert (got.sha256, got.modality, got.error, got.unchanged, got.note) == (
        want.sha256, want.modality, want.error, want.unchanged, want.note)
    assert len(got.reps) == len(want.reps)
    for a, b in zip(got.reps, want.reps):
        assert (a.kind, a.modality, a.offset, a.text) == (b.kind, b.modality, b.offset, b.text)
        assert (a.batch is None) == (b.batch is None)
        if a.batch is not None:
            assert a.batch.keys() == b.batch.keys()
            for key in a.batch:
                assert torch.equal(a.batch[key], b.batch[key]), key


def _raise_on_tone(task: FileTask, pre, settings) -> Decoded:
    """A decoder with a bug that only the first audio file triggers."""
    if task.path.endswith("tone_0.wav"):
        raise RuntimeError("decoder bug")
    return process(task, pre, settings)


def _logged(task: FileTask, pre, settings) -> Decoded:
    """Note in the task's log file (one line per started decode, from whichever process) then decode."""
    with open(task.metadata["log"], "a") as log:
        log.write(task.path + "\n")
    return process(task, pre, settings)


def _slow(task: FileTask, pre, settings) -> Decoded:
    time.sleep(0.2)
    return process(task, pre, settings)


def _texts(root: Path, n: int, log: Path | None = None) -> list[FileTask]:
    root.mkdir(parents=True, exist_ok=True)
    tasks = []
    for i in range(n):
        path = root / f"t{i:02d}.txt"
        path.write_text(f"note {i}", encoding="utf-8")
        st = path.stat()
        tasks.append(FileTask(str(path), str(path), st.st_size, st.st_mtime,
                              metadata={"log": str(log)} if log else None))
    return tasks


@pytest.fixture(params=[pytest.param(n, marks=pytest.mark.slow) if n == "ray" else n for n in runner_names()])
def name(request) -> str:
    if request.param == "ray":  # one local loopback cluster for the package (tests/ingest/conftest.py)
        request.getfixturevalue("ray_cluster")
    return request.param


def test_the_builtin_runners_are_registered():
    assert {"local", "inline", "ray"} <= set(runner_names())
    assert IngestOptions().runner == "local"


def test_same_decoded_output_for_the_same_folder(name, folder, preprocessors):
    tasks, broken = folder
    want = [process(t, preprocessors, SETTINGS) for t in tasks]
    with open_runner(name, RunnerSpec(WORKERS, preprocessors, SETTINGS)) as runner:
        got = list(runner.map(tasks, prefetch=3))
    assert [d.task.path for d in got] == [t.path for t in tasks]  # one result per task, in task order
    for g, w in zip(got, want):
        _same(g, w)
    assert {d.modality for d in got if not d.error} == {"image", "audio", "text"}
    (failed,) = [d for d in got if d.error]
    assert failed.task.path == str(broken) and failed.error.startswith("corrupt or truncated image")


def test_a_raising_decode_fails_only_its_file(name, folder, preprocessors):
    tasks, broken = folder
    with open_runner(name, RunnerSpec(WORKERS, preprocessors, SETTINGS, _raise_on_tone)) as runner:
        got = list(runner.map(tasks, prefetch=3))
    errors = {Path(d.task.path).name: d.error for d in got if d.error}
    assert errors == {"tone_0.wav": "decode failed: RuntimeError: decoder bug", broken.name: errors[broken.name]}
    assert all(d.reps for d in got if not d.error) and len(got) == len(tasks)


def test_read_ahead_is_bounded(name, tmp_path, preprocessors):
    log = tmp_path / "started.log"
    log.touch()
    tasks = _texts(tmp_path / "texts", 30, log)
    prefetch = 3
    with open_runner(name, RunnerSpec(WORKERS, preprocessors, SETTINGS, _logged)) as runner:
        results = runner.map(tasks, prefetch)
        first = next(results)
        time.sleep(1.0)  # a runner that reads ahead without bound would decode everything meanwhile
        started = len(log.read_text().splitlines())
        rest = list(results)
    assert 1 <= started <= 1 + prefetch + WORKERS, f"{started} of 30 decodes started while one result was read"
    assert [d.task.path for d in [first, *rest]] == [t.path for t in tasks]
    assert len(log.read_text().splitlines()) == 30  # and each file decoded once


def test_close_leaves_no_child_process(name, tmp_path, preprocessors):
    before = _children()
    tasks = _texts(tmp_path / "texts", 12)
    with open_runner(name, RunnerSpec(WORKERS, preprocessors, SETTINGS, _slow)) as runner:
        results = runner.map(tasks, prefetch=4)
        next(results), next(results)  # abandoned mid-way, decodes still in flight
        during = _children() - before
    deadline = time.monotonic() + 5
    while (_children() - before) and time.monotonic() < deadline:  # close joined them; /proc may lag a moment
        time.sleep(0.05)
    assert not _children() - before, f"left running after close: {_children() - before} (started {during})"
    with open_runner(name, RunnerSpec(WORKERS, preprocessors, SETTINGS)) as runner:
        assert len(list(runner.map(tasks, prefetch=4))) == len(tasks)  # a finished run as well
    assert not _children() - before


def test_an_unknown_runner_is_refused_by_name_before_any_file_is_read(tiny_encoder):
    with pytest.raises(IngestError, match=r"unknown ingest runner 'spark'; known: .*inline.*local.*ray"):
        runner_factory("spark")
    with pytest.raises(IngestError, match="unknown ingest runner"):
        Pipeline(tiny_encoder, sink=None, options=IngestOptions(runner="spark"))  # type: ignore[arg-type]


def test_local_with_no_workers_decodes_in_process(preprocessors):
    assert isinstance(open_runner("local", RunnerSpec(0, preprocessors)), InlineRunner)


def test_a_runner_registered_by_module_path_is_imported_when_chosen(monkeypatch, preprocessors):
    import ingest.runner

    monkeypatch.setitem(ingest.runner.RUNNERS, "by-path", "ingest.runner:InlineRunner")
    assert "by-path" in runner_names()
    runner = open_runner("by-path", RunnerSpec(1, preprocessors))
    assert isinstance(runner, InlineRunner)
    register_runner("by-path", InlineRunner)  # monkeypatch restores the registry afterwards
    assert runner_factory("by-path") is InlineRunner



def test_the_runner_registry_loads_without_torch():
    import subprocess
    import sys

    code = "import sys, ingest.runner; print(ingest.runner.runner_names(), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "('inline', 'local', 'ray') False"  # a CLI can list the runners without loading a model
