"""bench.transcripts' own arithmetic: average precision over a returned ranking, and one transcription per clip."""

from __future__ import annotations

import numpy as np
import pytest

from bench.transcripts import CachedTranscripts, average_precision
from engine.models import AudioClip


def test_average_precision_counts_unreturned_relevant_items_as_zero():
    assert average_precision([True, False, True], 2) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False, True], 3) == pytest.approx(0.5 / 3)
    assert average_precision([], 2) == 0.0 and average_precision([True], 0) == 0.0


def test_cached_transcripts_transcribe_each_distinct_clip_once():
    calls = []

    class Enricher:
        def text(self, clip):
            calls.append(clip.sample_rate)
            return f"{len(clip.samples)} samples"

    cache = CachedTranscripts(Enricher())
    a = AudioClip(np.ones(10, dtype=np.float32), 8000)
    assert cache.text(a) == cache.text(AudioClip(np.ones(10, dtype=np.float32), 8000)) == "10 samples"
    assert cache.text(AudioClip(np.ones(10, dtype=np.float32), 16000)) == "10 samples"
    assert calls == [8000, 16000]
