import numpy as np
import pytest

from ingest.decode import DecodeSettings, audio_windows, modality_of, sniff_modality
from ingest.work import FileTask, process
from tests.corpus import broken_files, good_files, jpeg_bytes, tricky_files, wav_bytes


@pytest.fixture(scope="module")
def preprocessors(tiny_encoder):
    return {m: tiny_encoder.preprocessor(m) for m in ("image", "audio")}


def _run(path, pre, settings=DecodeSettings()):
    st = path.stat()
    return process(FileTask(str(path), str(path), st.st_size, st.st_mtime), pre, settings)


def test_sniffing_beats_extensions():
    assert sniff_modality(jpeg_bytes(0)[:16]) == "image"
    assert sniff_modality(wav_bytes(0)[:16]) == "audio"
    assert sniff_modality(b"hello world") is None
    assert modality_of("x.png", wav_bytes(0)[:16]) == "audio"
    assert modality_of("x.txt", b"plain words") == "text"
    assert modality_of("x.xyz", b"plain words") is None


def test_good_files_decode(tmp_path, preprocessors):
    for path in good_files(tmp_path):
        out = _run(path, preprocessors)
        assert out.error is None, (path, out.error)
        assert len(out.sha256) == 64 and out.reps


@pytest.mark.parametrize("kind", [
    "cmyk", "sixteen_bit", "exif_rotated", "palette_alpha", "animated", "odd_name", "png_as_jpg", "stereo_ogg",
    "long_audio"])
def test_tricky_files_decode(tmp_path, preprocessors, kind):
    path = tricky_files(tmp_path)[kind]
    out = _run(path, preprocessors)
    assert out.error is None, out.error
    if kind == "long_audio":  # 25 s cut into 10 s windows, the 5 s tail kept
        assert [r.offset for r in out.reps] == [0.0, 10.0, 20.0]
        assert all(r.kind == "audio-segment" for r in out.reps)
    else:
        assert len(out.reps) == 1


def test_exif_rotation_and_bit_depth_applied(tmp_path):
    from ingest.decode import decode_image

    files = tricky_files(tmp_path)
    rotated = decode_image(files["exif_rotated"].read_bytes(), "r")
    assert rotated.size == (40, 80)  # orientation 6: stored 80x40, shown 40x80
    deep = np.asarray(decode_image(files["sixteen_bit"].read_bytes(), "d"))
    assert deep.min() == 0 and deep.max() == 255  # rescaled, not clipped to white
    pal = np.asarray(decode_image(files["palette_alpha"].read_bytes(), "p"))
    assert tuple(pal[0, 0]) == (255, 0, 0)


EXPECTED_REASONS = {
    "truncated_jpeg": "truncated", "zero_bytes": "empty", "text_as_png": "not a readable image",
    "bomb": "decompression-bomb", "corrupt_audio": "not readable audio", "empty_audio": "no samples",
    "truncated_flac": "not readable audio", "non_utf8": "not UTF-8", "blank_text": "empty",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_REASONS))
def test_broken_files_fail_with_reason(tmp_path, preprocessors, kind):
    path = broken_files(tmp_path)[kind]
    out = _run(path, preprocessors)
    assert out.error is not None and EXPECTED_REASONS[kind] in out.error, out.error
    assert not out.reps


def test_configurable_pixel_limit(tmp_path, preprocessors):
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(1, size=(300, 200)))
    assert _run(path, preprocessors).error is None
    out = _run(path, preprocessors, DecodeSettings(max_image_pixels=300 * 200 - 1))
    assert "decompression-bomb" in out.error


def test_unchanged_content_is_not_decoded(tmp_path, preprocessors):
    path = good_files(tmp_path, 1, 0, 0)[0]
    first = _run(path, preprocessors)
    st = path.stat()
    again = process(FileTask(str(path), str(path), st.st_size, st.st_mtime, known_sha256=first.sha256), preprocessors,
                    DecodeSettings())
    assert again.unchanged and not again.reps


def test_audio_windows_short_tail_dropped():
    from engine.models import AudioClip

    clip = AudioClip(np.zeros(8000 * 20 + 4000, dtype=np.float32), 8000)  # 20.5 s: the 0.5 s tail is dropped
    assert [off for off, _ in audio_windows(clip)] == [0.0, 10.0]
    short = AudioClip(np.zeros(400, dtype=np.float32), 8000)  # a lone short clip is kept
    assert len(audio_windows(short)) == 1
