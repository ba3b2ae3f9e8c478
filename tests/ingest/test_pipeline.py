"""The pipeline's routing, with a stand-in embedder and an in-memory sink (no model, no catalog): identical
content is embedded once and its twins copy it after the commit, or are embedded themselves if the source is gone;
failures and progress are reported; every runner gives the same result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ingest.pipeline import IngestOptions, Pipeline
from ingest.sources import scan_sources


class _Embedder:
    """Texts only: a text's vector says its length (unit norm)."""

    modalities = ("text",)

    def preprocessor(self, modality):
        raise AssertionError("texts are preprocessed in the pipeline's process")

    def preprocess(self, modality, inputs):
        return {"n": torch.tensor([float(len(t)) for t in inputs])}

    def embed(self, modality, batch, precision="fp32"):
        self.batches.append(len(batch["n"]))
        rows = np.stack([batch["n"].numpy(), np.ones(len(batch["n"]))], axis=1).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def embed_with_tokens(self, modality, batch, precision="fp32"):
        vectors = self.embed(modality, batch)
        return vectors, [np.ones((2, 2), np.float32)] * len(vectors)

    def __init__(self) -> None:
        self.batches: list[int] = []


class _Sink:
    """Items by uri and by content hash; ``forget`` makes committed content unfindable (a source that vanished)."""

    def __init__(self, forget: bool = False) -> None:
        self.items: dict[str, tuple[str, str]] = {}  # uri -> (sha256, how: encoded | copied | failed)
        self.commits = 0
        self.forget = forget

    def lookup(self, uri):
        return None

    def find_sha(self, sha256):
        if self.forget:
            return None
        found = [i for i, (uri, (sha, how)) in enumerate(self.items.items()) if sha == sha256 and how != "failed"]
        return found[0] if found else None

    def commit(self, done, failed, touched, copied):
        self.commits += 1
        self.items.update({c.uri: (c.sha256, "encoded") for c in done})
        self.items.update({d.task.uri: (d.sha256, "failed") for d in failed})
        self.items.update({d.task.uri: (d.sha256, "copied") for d, _ in copied})

    def annotation_need(self, listing):
        return None

    def annotate(self, annotations):
        raise AssertionError("no listings here")

    def drop_unlisted(self, sources, listed):
        return 0

    def delete_missing(self, roots, seen):
        return 0


@pytest.fixture()
def folder(tmp_path):
    for name, text in [("a.txt", "same words"), ("b.txt", "other words"), ("c.txt", "same words"),
                       ("d.txt", "same words"), ("e.txt", "   ")]:
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _run(folder, sink, **options):
    progress = []
    pipeline = Pipeline(_Embedder(), sink, IngestOptions(**{"workers": 0, **options}),
                        on_progress=lambda summary, total: progress.append((summary.seen, total)))
    return pipeline.run(scan_sources([folder])), progress, pipeline.encoder


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_identical_content_is_embedded_once_and_twins_copy_it(folder, runner):
    sink = _Sink()
    summary, progress, embedder = _run(folder, sink, batch_size=1, runner=runner, workers=1)
    how = {uri.rsplit("/", 1)[-1]: h for uri, (_, h) in sink.items.items()}
    assert how == {"a.txt": "encoded", "b.txt": "encoded", "c.txt": "copied", "d.txt": "copied", "e.txt": "failed"}
    assert (summary.seen, summary.added, summary.reused, summary.failed) == (5, 2, 2, 1)
    assert summary.failures == [(str(folder / "e.txt"), "text file is empty")]
    assert sum(embedder.batches) == 2  # "same words" embedded once
    assert progress[-1] == (5, 5) and len(progress) == 6  # after each decoded file, and once at the end


def test_a_twin_whose_source_vanished_is_embedded_itself(folder):
    summary, _, embedder = _run(folder, _Sink(forget=True), batch_size=1)
    assert (summary.added, summary.reused, summary.failed) == (4, 0, 1)  # never silently dropped
    assert sum(embedder.batches) == 4


def test_short_batches_are_drained_at_the_end(folder):
    summary, _, embedder = _run(folder, _Sink(), batch_size=32)
    # one short batch of the two distinct texts at the end; the parked twins copy it once it is committed
    assert embedder.batches == [2] and (summary.seen, summary.added, summary.reused) == (5, 2, 2)
