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
    from types import SimpleNamespace

    calls = []

    class Enricher:
        def heard(self, samples):  # 16 kHz samples; one kept segment and one the speech gate dropped
            calls.append(len(samples))
            return [SimpleNamespace(text=f"{len(samples)} samples", kept=True, score=0.9),
                    SimpleNamespace(text="Thank you.", kept=False, score=0.01)]

    cache = CachedTranscripts(Enricher())
    a = AudioClip(np.ones(1000, dtype=np.float32), 8000)
    assert cache.text(a) == cache.text(AudioClip(np.ones(1000, dtype=np.float32), 8000)) == "2000 samples"
    assert cache.text(AudioClip(np.ones(1000, dtype=np.float32), 16000)) == "1000 samples"
    assert cache.dropped(a) == [("Thank you.", 0.01)]
    assert calls == [2000, 1000]
