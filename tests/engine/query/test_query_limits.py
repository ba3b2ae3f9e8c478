"""Query media are bounded: a long or many-channel audio query is refused from its header, fast, as InvalidInput."""

import time

import numpy as np
import pytest
import soundfile as sf

from core.errors import InvalidInput
from engine.query.inputs import MAX_QUERY_AUDIO_S, QueryPart, _value


def _flac(path, seconds: float, channels: int, rate: int) -> None:
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, format="FLAC") as f:
        block = np.zeros((rate, channels), dtype=np.float32)
        for _ in range(int(seconds)):
            f.write(block)


def test_a_many_channel_audio_query_is_refused_from_its_header(tmp_path):
    path = tmp_path / "query.flac"
    _flac(path, 20, channels=8, rate=192_000)  # small on disk (silence compresses), 30.7 M samples decoded
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="over the limit"):
        _value(QueryPart("audio", path.read_bytes()))
    assert time.perf_counter() - started < 2.0


def test_a_query_longer_than_the_limit_is_refused_and_a_short_one_decodes(tmp_path):
    long, short = tmp_path / "long.flac", tmp_path / "short.flac"
    _flac(long, MAX_QUERY_AUDIO_S + 5, channels=1, rate=8_000)
    _flac(short, 3, channels=2, rate=44_100)
    with pytest.raises(InvalidInput, match="over the limit"):
        _value(QueryPart("audio", str(long)))
    clip = _value(QueryPart("audio", str(short)))
    assert clip.sample_rate == 44_100 and clip.samples.shape == (3 * 44_100,)
