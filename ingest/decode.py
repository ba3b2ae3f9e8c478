"""Decode one file's bytes into media: Pillow images, soundfile audio, UTF-8 text; each failure a ``DecodeError``."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import soundfile as sf
from PIL import Image, ImageOps, UnidentifiedImageError

from core.media import AudioClip
from core.modalities import extensions
from ingest.errors import DecodeError
from ingest.passages import PassageSettings

IMAGE_EXTENSIONS = extensions("image")  # the registry's tables (core.modalities), one for every layer
AUDIO_EXTENSIONS = extensions("audio")
TEXT_EXTENSIONS = extensions("text")
VIDEO_EXTENSIONS = extensions("video")
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | TEXT_EXTENSIONS | VIDEO_EXTENSIONS


_GIB = 1 << 30


@dataclass(frozen=True)
class VideoSettings:
    """How a video is sampled (ingest/video.py): one frame per ``frame_interval_s`` at most, near-identical
    consecutive frames skipped, at most ``max_frames`` per video (a longer video is sampled more sparsely)."""

    frame_interval_s: float = 1.0
    max_frames: int = 600  # per video; the interval grows to duration / max_frames, so memory stays bounded
    same_frame_mad: float = 3.0  # 32x32 grayscale mean absolute difference (0-255) under which a frame repeats
    frame_max_side: int = 512  # frames for the image tower are scaled down to this many pixels on their long side
    max_video_s: float = 4 * 3600.0
    max_bad_packets: int = 16  # undecodable packets tolerated before the file is refused as corrupt
    truncated_slack_s: float = 2.0  # a stream ending this much before its announced duration is reported truncated


@dataclass(frozen=True)
class DecodeSettings:
    """Limits and shapes for decoding: pixel cap, JPEG draft size, audio windowing, length and sample caps (read
    from the header before decoding), bytes read per modality, and the time one file's decode may take."""

    max_image_pixels: int = 89_478_485  # Pillow's default decompression-bomb threshold
    image_draft_size: int | None = 224  # decode JPEGs at a reduced DCT scale no smaller than this
    audio_window_s: float = 10.0
    audio_min_window_s: float = 1.0
    max_audio_s: float = 3600.0
    max_audio_samples: int = 360_000_000  # frames x channels: an hour of 48 kHz stereo, 4 min of 192 kHz x 8
    max_image_bytes: int = _GIB // 4
    max_audio_bytes: int = 2 * _GIB
    max_text_bytes: int = 64 << 20
    max_video_bytes: int = 64 * _GIB
    timeout_s: float = 60.0  # per image or audio window, in worker processes (past it, the worker is replaced)
    passages: PassageSettings = PassageSettings()  # how text files are cut into passages
    video: VideoSettings = VideoSettings()  # how video frames are sampled

    def max_bytes(self, modality: str) -> int:
        """The most bytes a file of ``modality`` may hold."""
        return {"image": self.max_image_bytes, "audio": self.max_audio_bytes,
                "video": self.max_video_bytes}.get(modality, self.max_text_bytes)


# (prefix, offset, modality, MIME type); RIFF and FORM containers are told apart by the bytes at offset 8.
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\xff\xd8\xff", 0, "image", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image", "image/png"),
    (b"GIF87a", 0, "image", "image/gif"),
    (b"GIF89a", 0, "image", "image/gif"),
    (b"BM", 0, "image", "image/bmp"),
    (b"II*\x00", 0, "image", "image/tiff"),
    (b"MM\x00*", 0, "image", "image/tiff"),
    (b"WEBP", 8, "image", "image/webp"),
    (b"WAVE", 8, "audio", "audio/wav"),
    (b"AIFF", 8, "audio", "audio/aiff"),
    (b"AIFC", 8, "audio", "audio/aiff"),
    (b"OggS", 0, "audio", "audio/ogg"),
    (b"fLaC", 0, "audio", "audio/flac"),
    (b"ID3", 0, "audio", "audio/mpeg"),
)
_CONTAINERS = {b"WEBP": b"RIFF", b"WAVE": b"RIFF", b"AIFF": b"FORM", b"AIFC": b"FORM"}
# ISO base media brands that are not video: audio-only MPEG-4 and HEIF/AVIF still images.
_NOT_VIDEO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")


def _sniff_video(head: bytes) -> tuple[str, str] | None:
    """MP4/MOV (an ``ftyp`` box first) or Matroska/WebM (the EBML magic); served as video/webm, which browsers
    play for Matroska too."""
    if head[4:8] == b"ftyp" and head[8:12] not in _NOT_VIDEO_BRANDS:
        return "video", "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "video/webm"
    return None


def sniff_media(head: bytes) -> tuple[str, str] | None:
    """(modality, MIME type) that a file's first bytes announce, or None for anything but known images, audio and
    video."""
    for magic, offset, modality, mime in _SIGNATURES:
        if offset and not head.startswith(_CONTAINERS[magic]):
            continue
        if head[offset : offset + len(magic)] == magic:
            return modality, mime
    if video := _sniff_video(head):
        return video
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio frame sync
        return "audio", "audio/mpeg"
    return None


def sniff_modality(head: bytes) -> str | None:
    """The modality a file's first bytes announce, if they carry a known signature."""
    found = sniff_media(head)
    return found[0] if found else None


def modality_of(path: str | Path, head: bytes) -> str | None:
    """Content signature first (so a wrong extension does not mislead), then the extension."""
    ext = Path(path).suffix.lower()
    if ext in TEXT_EXTENSIONS and text_bom(head):  # a UTF-16 LE BOM (FF FE) looks like an MPEG frame sync
        return "text"
    sniffed = sniff_modality(head)
    if sniffed:
        return sniffed
    if ext in TEXT_EXTENSIONS:
        return "text"
    if ext in IMAGE_EXTENSIONS or ext in AUDIO_EXTENSIONS:
        return "image" if ext in IMAGE_EXTENSIONS else "audio"
    return "video" if ext in VIDEO_EXTENSIONS else None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit and float: rescale to 8 bits
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, path: str | Path, settings: DecodeSettings = DecodeSettings()) -> Image.Image:
    """An RGB image: EXIF-rotated, first frame of animations, alpha on white, bombs refused."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > settings.max_image_pixels:
                raise DecodeError(path, f"image is {width}x{height} pixels, over the limit of "
                                        f"{settings.max_image_pixels} (decompression-bomb guard)")
            if getattr(image, "is_animated", False):
                image.seek(0)
            if settings.image_draft_size and image.format == "JPEG":
                image.draft("RGB", (settings.image_draft_size, settings.image_draft_size))
            image = ImageOps.exif_transpose(image)
            image.load()
            return _to_rgb(image)
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(path, f"decompression-bomb guard: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise DecodeError(path, "not a readable image (unknown or corrupt format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(path, f"corrupt or truncated image: {exc}") from exc


_UNKNOWN_FRAMES = 1 << 62  # libsndfile reports SF_COUNT_MAX when a stream's length is unknown


def check_audio_header(frames: int, rate: int, channels: int, path: str | Path, settings: DecodeSettings) -> None:
    """Refuse, before decoding, audio whose header announces more than the length or sample limits."""
    if rate <= 0 or channels <= 0:
        raise DecodeError(path, f"audio header is invalid ({rate} Hz, {channels} channels)")
    if frames >= _UNKNOWN_FRAMES:
        return  # unknown length: the limits are enforced while reading
    seconds = frames / rate
    if seconds > settings.max_audio_s:
        raise DecodeError(path, f"audio is {seconds:.0f} s long, over the limit of {settings.max_audio_s:.0f} s")
    if frames * channels > settings.max_audio_samples:
        raise DecodeError(path, f"audio decodes to {frames * channels} samples ({channels} channels x {rate} Hz x "
                                f"{seconds:.0f} s), over the limit of {settings.max_audio_samples}")


def iter_audio_blocks(source: bytes | BinaryIO, path: str | Path, settings: DecodeSettings = DecodeSettings(),
                      block_s: float | None = None) -> Iterator[AudioClip]:
    """Mono float32 blocks of ``block_s`` seconds (default: one window), each downmixed as it is read, so memory
    never holds the whole multichannel signal; header and running sample counts are checked against the limits."""
    fileobj = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        snd = sf.SoundFile(fileobj)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise DecodeError(path, "not readable audio: " + str(exc).split(": ", 1)[-1]) from exc
    with snd:
        rate, channels = int(snd.samplerate), int(snd.channels)
        check_audio_header(int(snd.frames), rate, channels, path, settings)
        most = min(int(settings.max_audio_s * rate), settings.max_audio_samples // channels)
        size = max(1, int((block_s or settings.audio_window_s) * rate))
        read = 0
        while True:
            try:
                block = snd.read(min(size, most + 1 - read), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
                raise DecodeError(path, "audio is corrupt: " + str(exc).split(": ", 1)[-1]) from exc
            if block.shape[0] == 0:
                break
            read += block.shape[0]
            if read > most:
                raise DecodeError(path, f"audio holds more than its header says, past the limit of "
                                        f"{settings.max_audio_s:.0f} s or {settings.max_audio_samples} samples")
            mono = block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0]
            if not np.all(np.isfinite(mono)):
                raise DecodeError(path, "audio contains NaN or inf samples")
            yield AudioClip(np.ascontiguousarray(mono), rate)
    if read == 0:
        raise DecodeError(path, "audio has no samples")


def decode_audio(data: bytes | BinaryIO, path: str | Path, settings: DecodeSettings = DecodeSettings()) -> AudioClip:
    """Mono float32 audio at its native rate; empty, over-limit or non-finite audio is an error."""
    blocks = list(iter_audio_blocks(data, path, settings))
    return AudioClip(np.concatenate([b.samples for b in blocks]), blocks[0].sample_rate)


def iter_audio_windows(source: bytes | BinaryIO, path: str | Path,
                       settings: DecodeSettings = DecodeSettings()) -> Iterator[tuple[float, AudioClip]]:
    """``audio_windows`` of a file read block by block: one window of mono samples in memory at a time."""
    yield from window_blocks(iter_audio_blocks(source, path, settings), settings)


def window_blocks(blocks: Iterable[AudioClip], settings: DecodeSettings = DecodeSettings()
                  ) -> Iterator[tuple[float, AudioClip]]:
    """Mono blocks of one rate (a file's, a soundtrack's) cut into ``audio_window_s`` windows as they stream in;
    a short tail is kept only if long enough (or if it is all there is)."""
    pending: list[np.ndarray] = []
    start = held = 0
    rate = 0
    for block in blocks:
        rate, size = block.sample_rate, int(settings.audio_window_s * block.sample_rate)
        pending.append(block.samples)
        held += len(block.samples)
        while held >= size:
            joined = np.concatenate(pending)
            yield start / rate, AudioClip(joined[:size].copy(), rate)
            start += size
            pending, held = [joined[size:]], held - size
    if held and (start == 0 or held >= int(settings.audio_min_window_s * rate)):
        yield start / rate, AudioClip(np.concatenate(pending), rate)


def audio_windows(clip: AudioClip, settings: DecodeSettings = DecodeSettings()) -> list[tuple[float, AudioClip]]:
    """Cut a clip into fixed windows ``(offset_seconds, clip)``; a short tail is kept only if long enough."""
    size = int(settings.audio_window_s * clip.sample_rate)
    minimum = int(settings.audio_min_window_s * clip.sample_rate)
    windows = []
    for start in range(0, len(clip.samples), size):
        part = clip.samples[start : start + size]
        if start > 0 and len(part) < minimum:
            break
        windows.append((start / clip.sample_rate, AudioClip(part, clip.sample_rate)))
    return windows


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xef\xbb\xbf", "utf-8"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f]")  # C0 controls that text does not hold (tab, newlines, ESC do)
_MAX_BAD = 0.05  # at most this share of characters may be invalid UTF-8 (then replaced) before a file is refused


def text_bom(head: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``head`` announces, if any."""
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), None)


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 told by its NUL bytes: ASCII-range text has them at every other byte, on one side only."""
    head = data[:4096]
    if len(head) < 4:
        return None
    even, odd = head[0::2].count(0) / len(head[0::2]), head[1::2].count(0) / len(head[1::2])
    if odd > 0.3 and even < 0.05:
        return "utf-16-le"
    if even > 0.3 and odd < 0.05:
        return "utf-16-be"
    return None


def _legacy_or_damaged(data: bytes, path: str | Path) -> str:
    """Bytes that are not valid UTF-8: Windows-1252 if no valid UTF-8 sequence appears and few bytes are high;
    UTF-8 with a few invalid bytes replaced (U+FFFD); anything else is refused with its reason."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    wide = len(text) - len(text.encode("ascii", errors="ignore")) - bad  # valid non-ASCII characters
    high = len(data) - len(data.translate(None, bytes(range(0x80, 0x100))))
    if wide == 0 and high <= 0.3 * len(data):
        return data.decode("cp1252", errors="replace")  # Latin-1 / Windows-1252, the common legacy case
    if wide > 0 and bad <= _MAX_BAD * len(text):
        return text
    raise DecodeError(path, f"not UTF-8 text ({bad} invalid byte sequences in {len(data)} bytes, "
                            f"{100 * high / len(data):.0f}% of bytes above 0x7F); convert it to UTF-8")


def decode_text(data: bytes, path: str | Path) -> str:
    """Text from UTF-8 (BOM dropped), UTF-16/32 with a BOM, BOM-less UTF-16 or Windows-1252; binary content,
    mostly-invalid bytes or blank content are errors. A few invalid UTF-8 bytes become U+FFFD."""
    encoding = text_bom(data[:4])
    if encoding:
        text = data.decode(encoding + "-sig" if encoding == "utf-8" else encoding.rsplit("-", 1)[0], errors="replace")
    elif encoding := _utf16_without_bom(data):
        text = data.decode(encoding, errors="replace")
    elif b"\x00" in data:
        raise DecodeError(path, f"not text: binary content (NUL byte at offset {data.index(0)})")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _legacy_or_damaged(data, path)
    controls = sum(1 for _ in _CONTROLS.finditer(text, 0, 1 << 20))
    if controls > 0.01 * min(len(text), 1 << 20):
        raise DecodeError(path, f"not text: binary content ({controls} control characters in the first MiB)")
    if not text.strip():
        raise DecodeError(path, "text file is empty")
    return text
