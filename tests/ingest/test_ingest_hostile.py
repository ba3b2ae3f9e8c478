"""Hostile files at ingest: odd names, FIFOs, devices, huge sparse files, audio bombs, hung and dying decoders."""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.api.facade import Engine
from ingest.decode import DecodeSettings, audio_windows, decode_audio, iter_audio_windows
from ingest.errors import DecodeError
from ingest.files import path_uri, uri_path
from ingest.pipeline import IngestOptions
from ingest.pool import DecodePool
from ingest.work import Decoded, FileTask, process
from tests.corpus import jpeg_bytes, wav_bytes

REPO = Path(__file__).resolve().parents[2]
CHILD_MEMORY = 6 << 30  # address-space cap for subprocess ingests: torch maps ~2-3 GiB of it just by loading


def _task(path: Path | str) -> FileTask:
    st = os.stat(path)
    name = os.fsdecode(path)
    return FileTask(name, path_uri(name), st.st_size, st.st_mtime)


def _flac_bomb(path: Path, minutes: int = 59, channels: int = 8, rate: int = 192_000) -> None:
    """A 2 KB FLAC whose STREAMINFO says ``minutes`` of ``channels`` x ``rate`` Hz (the samples are one second)."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros((rate, channels), dtype=np.float32), rate, format="FLAC", subtype="PCM_24")
    data = bytearray(buf.getvalue())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first; its total-samples field ends at byte 26
    bits = int.from_bytes(data[18:26], "big")
    data[18:26] = ((bits >> 36 << 36) | (minutes * 60 * rate)).to_bytes(8, "big")
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def preprocessors(tiny_encoder):
    return {m: tiny_encoder.preprocessor(m) for m in ("image", "audio")}


# -- item 4: names that are not UTF-8 -----------------------------------------------------------------------------
def test_non_utf8_name_is_stored_losslessly_and_the_folder_goes_on(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    odd = os.path.join(os.fsencode(root), b"caf\xe9.jpg")
    with open(odd, "wb") as fh:
        fh.write(jpeg_bytes(1))
    for i in range(2):
        (root / f"plain_{i}.jpg").write_bytes(jpeg_bytes(10 + i))
    odd_name = os.fsdecode(odd)
    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        first = engine.ingest([root], IngestOptions(workers=0))
        assert (first.added, first.failed) == (3, 0)
        items = {i.uri: i for i in engine.store.catalog.items(status="ok")}
        assert path_uri(odd_name) in items and path_uri(odd_name).startswith("file://")
        assert path_uri(odd_name).endswith("/caf%E9.jpg")  # readable, and maps back to the very bytes
        assert os.fsencode(uri_path(path_uri(odd_name))) == odd
        again = engine.ingest([root], IngestOptions(workers=1))
        assert (again.unchanged, again.added, again.failed) == (3, 0, 0)
        os.remove(odd)
        gone = engine.ingest([root], IngestOptions(workers=0))
        assert gone.deleted == 1 and path_uri(odd_name) not in {i.uri for i in engine.store.catalog.items(status="ok")}


# -- item 5: FIFOs and files swapped for one -----------------------------------------------------------------------
def test_file_swapped_for_a_fifo_after_the_scan_fails_at_once(tmp_path, preprocessors):
    path = tmp_path / "swap.jpg"
    path.write_bytes(jpeg_bytes(3))
    task = _task(path)
    path.unlink()
    os.mkfifo(path)
    out: list[Decoded] = []
    thread = threading.Thread(target=lambda: out.append(process(task, preprocessors, DecodeSettings())), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "opening a FIFO blocked"
    assert out[0].error == "not a regular file: a FIFO (named pipe)"


def test_hung_decode_times_out_and_the_rest_is_decoded(tmp_path, preprocessors):
    paths = [tmp_path / f"{i}.jpg" for i in range(4)]
    for i, p in enumerate(paths):
        p.write_bytes(jpeg_bytes(i, size=(77, 40) if i == 1 else (64, 64)))

    def image(images):  # a decoder that never returns on one file
        if images[0].size == (77, 40):
            time.sleep(3600)
        return preprocessors["image"](images)

    start = time.monotonic()
    with DecodePool(2, {"image": image}, DecodeSettings(timeout_s=1.5)) as pool:
        before = set(pool.pids())
        results = list(pool.map([_task(p) for p in paths], prefetch=8))
        after = set(pool.pids())
    assert time.monotonic() - start < 20
    assert [r.task.path for r in results] == [str(p) for p in paths]  # task order kept
    assert results[1].error == "decode timed out (no progress for 1.5 s)"
    assert all(r.error is None and r.reps for i, r in enumerate(results) if i != 1)
    assert len(before - after) == 1  # the hung worker was replaced


def test_the_time_limit_counts_from_the_last_audio_window(tmp_path, preprocessors):
    long = tmp_path / "long.wav"
    long.write_bytes(wav_bytes(0, seconds=40.0))

    def audio(clips):  # each 10 s window takes 0.7 s: 2.8 s in all, over the 1.5 s limit, yet always progressing
        time.sleep(0.7)
        return preprocessors["audio"](clips)

    with DecodePool(1, {"audio": audio}, DecodeSettings(timeout_s=1.5)) as pool:
        (result,) = pool.map([_task(long)], prefetch=1)
    assert result.error is None and [r.offset for r in result.reps] == [0.0, 10.0, 20.0, 30.0]


def _die_on_second(task: FileTask, pre, settings) -> Decoded:
    if task.path.endswith("1.jpg"):
        os.kill(os.getpid(), signal.SIGKILL)
    return process(task, pre, settings)


def test_a_worker_that_dies_fails_only_its_file(tmp_path, preprocessors):
    paths = [tmp_path / f"{i}.jpg" for i in range(3)]
    for i, p in enumerate(paths):
        p.write_bytes(jpeg_bytes(i))
    with DecodePool(1, preprocessors, DecodeSettings(timeout_s=30), handler=_die_on_second) as pool:
        results = list(pool.map([_task(p) for p in paths], prefetch=4))
    assert results[1].error == "the decode worker died (signal 9) on this file"
    assert results[0].reps and results[2].reps


# -- item 6: huge inputs -------------------------------------------------------------------------------------------
def test_sparse_file_over_the_byte_limit_is_never_read(tmp_path, preprocessors):
    huge = tmp_path / "huge.wav"
    with open(huge, "wb") as fh:
        fh.write(wav_bytes(0, seconds=0.5))
        fh.truncate(100 << 30)  # 100 GiB, sparse
    start = time.monotonic()
    out = process(_task(huge), preprocessors, DecodeSettings())
    assert time.monotonic() - start < 5
    assert out.error == "file is 100.0 GiB, over the limit of 2.0 GiB for audio files"


def test_audio_bomb_is_refused_from_its_header(tmp_path, preprocessors):
    bomb = tmp_path / "bomb.flac"
    _flac_bomb(bomb)
    assert bomb.stat().st_size < 10_000
    out = process(_task(bomb), preprocessors, DecodeSettings())
    assert out.error == ("audio decodes to 5437440000 samples (8 channels x 192000 Hz x 3540 s), "
                         "over the limit of 360000000")


def test_audio_is_streamed_in_mono_blocks_and_matches_a_whole_decode(tmp_path):
    rng = np.random.default_rng(0)
    signal_8ch = (rng.standard_normal((8000 * 25, 8)) * 0.1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, signal_8ch, 8000, format="WAV", subtype="FLOAT")
    data = buf.getvalue()
    whole = decode_audio(data, "x")
    np.testing.assert_allclose(whole.samples, signal_8ch.mean(axis=1), atol=1e-6)
    streamed = list(iter_audio_windows(data, "x"))
    expected = audio_windows(whole)
    assert [o for o, _ in streamed] == [o for o, _ in expected] == [0.0, 10.0, 20.0]
    for (_, a), (_, b) in zip(streamed, expected):
        np.testing.assert_array_equal(a.samples, b.samples)
    with pytest.raises(DecodeError, match="over the limit of 1000000"):
        decode_audio(data, "x", DecodeSettings(max_audio_samples=1_000_000))


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


@pytest.mark.slow  # a capped child process ingests the hostile folder
def test_hostile_folder_ingests_everything_else_in_a_capped_subprocess(tmp_path):
    """FIFO, /dev/zero behind a symlink, a 100 GiB sparse image, an audio bomb: each a failed file with its reason,
    the good files committed, under a hard timeout and an address-space cap."""
    media = tmp_path / "media"
    media.mkdir()
    for i in range(3):
        (media / f"good_{i}.jpg").write_bytes(jpeg_bytes(i))
    (media / "good.wav").write_bytes(wav_bytes(1, seconds=1.0))
    os.mkfifo(media / "pipe.jpg")
    os.symlink("/dev/zero", media / "zero.jpg")
    with open(media / "sparse.jpg", "wb") as fh:
        fh.write(jpeg_bytes(9))
        fh.truncate(100 << 30)
    _flac_bomb(media / "bomb.flac")
    (media / "notes.pdf").write_bytes(b"%PDF-1.4")
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "engine", "ingest", str(media), "--store", str(store), "--preset", "tiny-random",
           "--workers", "1", "--follow-symlinks", "--json", "--no-progress"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240, preexec_fn=_limited)
    assert done.returncode == 7, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    reasons = {Path(f["uri"]).name: f["reason"] for f in summary["failures"]}
    assert reasons == {
        "pipe.jpg": "not a regular file: a FIFO (named pipe)",
        "zero.jpg": "not a regular file: a character device",
        "sparse.jpg": "file is 100.0 GiB, over the limit of 256.0 MiB for image files",
        "bomb.flac": "audio decodes to 5437440000 samples (8 channels x 192000 Hz x 3540 s), over the limit of 360000000",
    }
    assert summary["added"] == 4 and summary["skipped"] == {"unsupported type (.pdf)": 1}
    with Engine.open(store, "tiny-random") as engine:
        ok = {Path(i.uri).name for i in engine.store.catalog.items(status="ok")}
    assert ok == {"good_0.jpg", "good_1.jpg", "good_2.jpg", "good.wav"}


# -- issue 14 item 14: files a walk passes over are counted ------------------------------------------------------
def test_unsupported_files_are_counted_by_reason(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    (root / "a.jpg").write_bytes(jpeg_bytes(0))
    (root / "doc.pdf").write_bytes(b"%PDF")
    (root / "clip.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST")
    (root / "other.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST")
    (root / "README").write_text("hello")
    (root / "skip.jpg").write_bytes(jpeg_bytes(1))
    from ingest.sources import ScanOptions

    with Engine.open(tmp_path / "store", "tiny-random") as engine:
        summary = engine.ingest([root], IngestOptions(workers=0), ScanOptions(exclude=("skip.*",)))
    assert summary.added == 1
    assert summary.skipped == {"matched by --exclude": 1, "no file extension": 1, "unsupported type (.avi)": 2,
                               "unsupported type (.pdf)": 1}
