"""Generated videos with known content at known seconds: pictures held still or panned across, sounds placed on the
soundtrack. Tests and ``bench.video`` build them from real photos and recordings to check that a search lands on
the right moment; writing is PyAV's (FFmpeg inside its wheel), streamed, so a long video costs little memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from core.media import AudioClip

# Per container: video codec, audio codec, audio rate (Opus takes 48 kHz only), encoder options for speed.
CODECS = {
    ".mp4": ("libx264", "aac", None, {"preset": "ultrafast", "tune": "zerolatency"}),
    ".mov": ("libx264", "aac", None, {"preset": "ultrafast", "tune": "zerolatency"}),
    ".webm": ("libvpx", "libopus", 48_000, {"deadline": "realtime", "cpu-used": "8", "b": "400k"}),
    ".mkv": ("mpeg4", "flac", None, {"qscale": "4"}),
}


@dataclass(frozen=True)
class Shot:
    """A stretch of video: ``image`` (or a plain ``colour``) for ``seconds``, held still or, with ``moving``, panned
    across so that every second looks different."""

    seconds: float
    image: Image.Image | None = None
    colour: tuple[int, int, int] = (0, 0, 0)
    moving: bool = False


@dataclass(frozen=True)
class Sound:
    """A recording placed on the soundtrack at ``at`` seconds (mixed over whatever else plays there)."""

    at: float
    clip: AudioClip


def _fit(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to cover ``size`` and centre-cropped, as RGB pixels."""
    image = image.convert("RGB")
    scale = max(size[0] / image.width, size[1] / image.height)
    big = image.resize((max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale))))
    left, top = (big.width - size[0]) // 2, (big.height - size[1]) // 2
    return np.asarray(big.crop((left, top, left + size[0], top + size[1])))


def _shot_frames(shot: Shot, size: tuple[int, int], fps: int):
    """The frames of one shot, one array at a time."""
    count = max(1, round(shot.seconds * fps))
    if not shot.moving:
        still = _fit(shot.image, size) if shot.image is not None else np.full((size[1], size[0], 3), shot.colour, np.uint8)
        for _ in range(count):
            yield still
        return
    wide = (size[0] * 2, size[1] * 2)  # pan over a picture twice the frame's size, one way then back
    canvas = _fit(shot.image, wide) if shot.image is not None else _noise(wide, shot.colour)
    span = wide[0] - size[0]
    for i in range(count):
        phase = (i / max(1, count - 1)) * 2
        x = round(span * (phase if phase <= 1 else 2 - phase))
        y = round((wide[1] - size[1]) * (i % fps) / max(1, fps))
        yield np.ascontiguousarray(canvas[y : y + size[1], x : x + size[0]])


def _noise(size: tuple[int, int], colour: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(sum(colour))
    blocks = rng.integers(0, 256, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[: size[1], : size[0]]


def _mono(clip: AudioClip, rate: int) -> np.ndarray:
    samples = clip.samples if clip.samples.ndim == 1 else clip.samples.mean(axis=1)
    samples = np.asarray(samples, dtype=np.float32)
    if clip.sample_rate != rate:
        import soxr

        samples = np.asarray(soxr.resample(samples, clip.sample_rate, rate), dtype=np.float32)
    return samples


def write_video(path: str | Path, shots: Sequence[Shot], sounds: Sequence[Sound] = (), *, fps: int = 4,
                size: tuple[int, int] = (160, 120), rate: int = 16_000, audio: bool = True) -> float:
    """Write the shots in order, with the sounds on a mono soundtrack (silence elsewhere; none with ``audio=False``),
    to ``path``: .mp4/.mov (H.264, AAC), .webm (VP8, Opus) or .mkv (MPEG-4, FLAC). Returns the duration in seconds."""
    import av

    path = Path(path)
    vcodec, acodec, fixed_rate, options = CODECS[path.suffix.lower()]
    rate = fixed_rate or rate
    placed = [(round(s.at * rate), _mono(s.clip, rate)) for s in sounds]
    total_frames = sum(max(1, round(s.seconds * fps)) for s in shots)
    total_samples = round(total_frames / fps * rate)
    with av.open(str(path), "w") as container:
        video = container.add_stream(vcodec, rate=fps, options=dict(options))
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.codec_context.gop_size = 2 * fps  # a keyframe every 2 s: a player seeks quickly
        sound = container.add_stream(acodec, rate=rate, layout="mono") if audio else None
        written = index = 0
        for shot in shots:
            for pixels in _shot_frames(shot, size, fps):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = index
                container.mux(video.encode(frame))
                index += 1
                if sound is not None:  # interleave: the soundtrack up to this frame's end
                    written = _write_audio(container, sound, placed, written, round(index / fps * rate), rate)
        container.mux(video.encode(None))
        if sound is not None:
            _write_audio(container, sound, placed, written, total_samples, rate)
            container.mux(sound.encode(None))
    return total_frames / fps


def _write_audio(container, stream, placed: list[tuple[int, np.ndarray]], start: int, stop: int, rate: int) -> int:
    """Encode the soundtrack's samples ``start``..``stop`` (PyAV cuts them into the codec's frame size)."""
    import av

    if stop <= start:
        return start
    chunk = np.zeros(stop - start, np.float32)
    for at, samples in placed:
        lo, hi = max(start, at), min(stop, at + len(samples))
        if lo < hi:
            chunk[lo - start : hi - start] += samples[lo - at : hi - at]
    frame = av.AudioFrame.from_ndarray(np.clip(chunk, -1.0, 1.0)[None, :], format="flt", layout="mono")
    frame.sample_rate, frame.pts = rate, start
    container.mux(stream.encode(frame))
    return stop
