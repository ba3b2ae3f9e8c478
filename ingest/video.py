"""Video files decoded with PyAV (FFmpeg inside its wheel): frames sampled by time, the soundtrack streamed.

One pass over the video stream samples a frame per ``VideoSettings.frame_interval_s`` (wider for a long video, so
at most ``max_frames`` are kept) and skips a frame that repeats the last one kept (a static shot is one frame); a
second pass streams the soundtrack in blocks. Nothing holds the whole soundtrack or more frames than the cap.
Offsets are seconds from the start of the container, the timeline a browser's ``currentTime`` uses.

FFmpeg decodes a truncated WebM, Matroska or fast-start MP4 without an error: each pass compares where its stream
stopped with the duration the container announced and reports the file as truncated.
"""

from __future__ import annotations

import math
import os
import re
import time
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Collection, Iterator

import numpy as np

from core.media import AudioClip
from ingest.decode import DecodeSettings, window_blocks
from ingest.enrich_media import ENRICH_PIECE_SECONDS, ENRICH_RATE, audio_pieces, register_reader
from ingest.errors import DecodeError
from ingest.files import open_regular

if TYPE_CHECKING:  # PyAV and Pillow load when a video is decoded, not for a scan or --help
    import av.container
    import av.stream
    from PIL import Image

Beat = Callable[[], None]
FRAME, SOUND = "frame", "audio-segment"  # representation kinds of a video item
_THUMB = 32  # side of the grayscale thumbnail two frames are compared by
_MAX_SEEK_FRAMES = 5000  # frames decoded from a keyframe to the moment a thumbnail shows
_HMS = re.compile(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


@contextmanager
def _opened(source: str | BinaryIO, path: str) -> Iterator["av.container.InputContainer"]:
    import av

    if not isinstance(source, str):
        source.seek(0)
    try:
        container = av.open(source, mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise DecodeError(path, f"not a readable video: {_reason(exc)}") from exc
    try:
        yield container
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split("; last error log:")[0].strip() or type(exc).__name__


def _origin(container: "av.container.InputContainer") -> float:
    """The container's start time: offsets count from it (a browser's currentTime 0)."""
    return container.start_time / 1e6 if container.start_time not in (None, 0) else 0.0


def _stream_end(container: "av.container.InputContainer", stream: "av.stream.Stream", origin: float) -> float | None:
    """Where ``stream`` should end, in seconds from the origin: its own duration (MP4 headers, Matroska's DURATION
    tag) or else the container's; None when nothing says."""
    start = float(stream.start_time * stream.time_base) - origin if stream.start_time is not None else 0.0
    if stream.duration:
        return start + float(stream.duration * stream.time_base)
    tag = next((v for k, v in stream.metadata.items() if k.upper() == "DURATION"), None)
    found = _HMS.fullmatch(tag.strip()) if isinstance(tag, str) else None
    if found:
        h, m, s = found.groups()
        return int(h) * 3600 + int(m) * 60 + float(s)
    return container.duration / 1e6 if container.duration else None


def _check_length(end: float | None, path: str, settings: DecodeSettings) -> None:
    if end is not None and end > settings.video.max_video_s:
        raise DecodeError(path, f"video is {end:.0f} s long, over the limit of {settings.video.max_video_s:.0f} s")


def _check_complete(what: str, stopped: float | None, end: float | None, slack: float, path: str) -> None:
    """A stream that stops well before its announced end is a truncated file (FFmpeg itself raises nothing)."""
    if stopped is None:
        raise DecodeError(path, f"video has no decodable {what}")
    if end is not None and stopped < end - slack:
        raise DecodeError(path, f"video is truncated: its {what} end at {stopped:.1f} s of the {end:.1f} s "
                                f"its header announces")


def _packets(container: "av.container.InputContainer", stream: "av.stream.Stream", path: str,
             settings: DecodeSettings, beat: Beat | None) -> Iterator[Any]:
    """Decoded frames of one stream, demuxed in one pass; a few bad packets are skipped, more fail the file, and one
    packet decoding longer than the time limit fails it too. ``beat`` is called per packet (worker progress)."""
    import av

    bad = 0
    for packet in container.demux(stream):
        began = time.monotonic()
        try:
            frames = packet.decode()
        except (av.FFmpegError, ValueError) as exc:
            bad += 1
            if bad > settings.video.max_bad_packets:
                raise DecodeError(path, f"video is corrupt: {bad} packets could not be decoded ({_reason(exc)})") from exc
            continue
        if time.monotonic() - began > settings.timeout_s:
            raise DecodeError(path, f"one video packet took over {settings.timeout_s:g} s to decode")
        if beat is not None:
            beat()
        yield from frames


def _small_gray(frame: Any) -> np.ndarray:
    return frame.reformat(width=_THUMB, height=_THUMB, format="gray").to_ndarray().astype(np.int16)


def _picture(frame: Any, max_side: int | None) -> "Image.Image":
    """The frame as an RGB image, scaled down (by FFmpeg, before conversion) to ``max_side`` on its long side."""
    width, height = frame.width, frame.height
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    return frame.reformat(width=width, height=height, format="rgb24").to_image()


def frame_interval(duration: float | None, settings: DecodeSettings) -> float:
    """Seconds between sampled frames: the setting, widened so a video of ``duration`` yields at most the cap."""
    video = settings.video
    return max(video.frame_interval_s, (duration or 0.0) / max(1, video.max_frames))


def iter_frames(source: str | BinaryIO, path: str, settings: DecodeSettings = DecodeSettings(),
                beat: Beat | None = None, max_side: int | None = -1) -> Iterator[tuple[float, "Image.Image"]]:
    """``(offset_seconds, RGB image)`` of the sampled frames, near-identical consecutive ones skipped; nothing for a
    file without a video stream. ``max_side``: -1 for the setting's size, None for full resolution."""
    video = settings.video
    side = video.frame_max_side if max_side == -1 else max_side
    with _opened(source, path) as container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.thread_count = 1  # decode workers are the parallelism
        origin = _origin(container)
        end = _stream_end(container, stream, origin)
        _check_length(end, path, settings)
        interval = frame_interval(end, settings)
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        slack = max(video.truncated_slack_s, 2.0 / rate if rate > 0 else 0.0)
        due, last, kept, stopped = 0.0, None, 0, None
        for frame in _packets(container, stream, path, settings, beat):
            if frame.time is None:
                continue
            at = max(0.0, float(frame.time) - origin)
            stopped = at if stopped is None else max(stopped, at)
            if at > video.max_video_s:
                raise DecodeError(path, f"video runs past the limit of {video.max_video_s:.0f} s")
            if at + 1e-6 < due or kept >= video.max_frames:
                continue
            due = (math.floor(at / interval + 1e-6) + 1) * interval
            small = _small_gray(frame)
            if last is not None and float(np.abs(small - last).mean()) < video.same_frame_mad:
                continue
            last, kept = small, kept + 1
            yield at, _picture(frame, side)
        _check_complete("frames", stopped, end, slack, path)


def iter_soundtrack(source: str | BinaryIO, path: str, settings: DecodeSettings = DecodeSettings(),
                    rate: int | None = None, block_s: float = 10.0,
                    beat: Beat | None = None) -> Iterator[AudioClip]:
    """The first audio stream as mono float32 blocks of ``block_s`` seconds at ``rate`` Hz (None: the stream's
    own), streamed; a late start is padded with silence so sample offsets are container offsets."""
    import av

    with _opened(source, path) as container:
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        origin = _origin(container)
        end = _stream_end(container, stream, origin)
        _check_length(end, path, settings)
        out_rate = int(rate or stream.rate or 0)
        if out_rate <= 0:
            raise DecodeError(path, "video's audio stream has no sample rate")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=out_rate)
        size, most = max(1, int(block_s * out_rate)), int(settings.video.max_video_s * out_rate)
        held: list[np.ndarray] = []
        count = total = 0
        stopped: float | None = None
        for frame in _packets(container, stream, path, settings, beat):
            if stopped is None and frame.time is not None:  # the first samples' place on the timeline
                lead = min(max(0.0, float(frame.time) - origin), settings.audio_window_s)
                held.append(np.zeros(int(lead * out_rate), np.float32))
                count += len(held[-1])
            for out in resampler.resample(frame):
                held.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
                count += len(held[-1])
            stopped = (total + count) / out_rate
            if total + count > most:
                raise DecodeError(path, f"video's audio runs past the limit of {settings.video.max_video_s:.0f} s")
            while count >= size:
                joined = np.concatenate(held)
                yield _finite(AudioClip(joined[:size].copy(), out_rate), path)
                held, count, total = [joined[size:]], count - size, total + size
        for out in resampler.resample(None):
            held.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            count += len(held[-1])
        if count:
            yield _finite(AudioClip(np.concatenate(held), out_rate), path)
        _check_complete("audio samples", stopped, end, settings.video.truncated_slack_s, path)


def _finite(clip: AudioClip, path: str) -> AudioClip:
    if not np.all(np.isfinite(clip.samples)):
        raise DecodeError(path, "video's audio contains NaN or inf samples")
    return clip


def frame_at(source: str | BinaryIO, path: str, seconds: float, settings: DecodeSettings = DecodeSettings(),
             max_side: int | None = None) -> "Image.Image":
    """The frame shown at ``seconds`` (a result's moment, for its thumbnail): a seek to the keyframe before it, then
    at most ``_MAX_SEEK_FRAMES`` frames decoded forward; the last frame when ``seconds`` is past the end."""
    import av

    with _opened(source, path) as container:
        if not container.streams.video:
            raise DecodeError(path, "video has no video stream")
        stream = container.streams.video[0]
        stream.thread_count = 1
        origin = _origin(container)
        target = origin + min(max(0.0, seconds), settings.video.max_video_s)
        if target > origin:
            with suppress(av.FFmpegError):  # a file that cannot seek is read from its start (still bounded)
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
        shown, decoded = None, 0
        for frame in _packets(container, stream, path, settings, None):
            if frame.time is None:
                continue
            if shown is not None and float(frame.time) > target + 1e-3:
                break
            shown, decoded = frame, decoded + 1
            if decoded >= _MAX_SEEK_FRAMES:
                break
        if shown is None:
            raise DecodeError(path, f"video has no frame at {seconds:.1f} s")
        return _picture(shown, max_side)


def video_media(source: str | BinaryIO, path: str, settings: DecodeSettings, towers: Collection[str],
                beat: Beat | None = None) -> Iterator[tuple[str, str, float, Any]]:
    """A video item's media for ingest, ``(kind, modality, offset, media)``: sampled frames for the image tower,
    then soundtrack windows for the audio tower (those of ``towers`` the model has)."""
    if "image" in towers:
        for at, image in iter_frames(source, path, settings, beat):
            yield FRAME, "image", at, image
    if "audio" in towers:
        for at, clip in window_blocks(iter_soundtrack(source, path, settings, beat=beat), settings):
            yield SOUND, "audio", at, clip


def read_frames(path: str, settings: DecodeSettings) -> Iterator[tuple[float | None, Any]]:
    """Enrichment reader ("video", "image"): the sampled frames at full resolution (text in them stays legible)."""
    with _regular(path) as handle:
        yield from iter_frames(handle, path, settings, max_side=None)


def read_soundtrack(path: str, settings: DecodeSettings) -> Iterator[tuple[float | None, Any]]:
    """Enrichment reader ("video", "audio"): the soundtrack as 16 kHz mono pieces of at most 600 s."""
    with _regular(path) as handle:
        yield from audio_pieces(iter_soundtrack(handle, path, settings, rate=ENRICH_RATE, block_s=30.0),
                                ENRICH_PIECE_SECONDS)


@contextmanager
def _regular(path: str) -> Iterator[BinaryIO]:
    """The file at ``path`` opened only if it is a regular file (a FIFO put in its place is never waited on)."""
    fd, _ = open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            yield handle
    finally:
        os.close(fd)


register_reader("video", "image", read_frames)
register_reader("video", "audio", read_soundtrack)
