"""Batching alone: per-modality batches cut the moment they fill, files complete once every representation is
embedded, vectors kept in representation order, tensors freed."""

from __future__ import annotations

import numpy as np
import torch

from ingest.batching import Batches
from ingest.work import Decoded, FileTask, RepPayload


def _file(name: str, *modalities: str) -> Decoded:
    reps = [RepPayload("audio-segment" if m == "audio" else m, m, offset=float(i), text="t" if m == "text" else None,
                       batch=None if m == "text" else {"x": torch.full((1, 2), float(i))})
            for i, m in enumerate(modalities)]
    return Decoded(FileTask(name, name, 1, 0.0), sha256=name, modality=modalities[0], reps=reps)


def _vectors(n: int, start: float) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)[:, None].repeat(3, axis=1)


def test_a_batch_is_cut_the_moment_it_fills_even_mid_file():
    batches = Batches(2)
    long = _file("long.wav", "audio", "audio", "audio")
    added = batches.add(long)
    first = next(added)  # yielded before the third window is queued
    assert first.modality == "audio" and [r.offset for r in first.reps] == [0.0, 1.0]
    assert batches.waiting() == []
    assert list(added) == [] and batches.waiting() == ["audio"]
    rest = batches.take("audio")
    assert [r.offset for r in rest.reps] == [2.0]
    assert batches.take("audio") is None and batches.waiting() == []


def test_a_file_completes_when_its_last_representation_is_embedded():
    batches = Batches(4)
    photo = _file("photo.jpg", "image", "text")  # an image and its caption: two modalities, two batches
    note = _file("note.txt", "text")
    assert list(batches.add(photo)) == [] and list(batches.add(note)) == []
    assert batches.waiting() == ["image", "text"]
    image = batches.take("image")
    assert batches.fill(image, _vectors(1, 10), [None]) == []  # the caption is not embedded yet
    assert photo.reps[0].batch is None  # tensors freed once embedded
    text = batches.take("text")
    done = batches.fill(text, _vectors(2, 20), [None, None])
    assert [c.uri for c in done] == ["photo.jpg", "note.txt"]
    np.testing.assert_array_equal(done[0].vectors[:, 0], [10, 20])  # rows in representation order
    np.testing.assert_array_equal(done[1].vectors[:, 0], [21])
    assert done[0].task is photo.task and done[0].modality == "image" and done[0].tokens is None


def test_token_features_are_kept_only_when_asked():
    for keep in (False, True):
        batches = Batches(1, tokens=keep)
        (batch,) = list(batches.add(_file("n.txt", "text")))
        (done,) = batches.fill(batch, _vectors(1, 0), [np.ones((4, 3), dtype=np.float32)])
        assert (done.tokens is not None) == keep
