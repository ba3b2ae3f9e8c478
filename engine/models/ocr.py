"""Text in images: the ``ocr`` enricher, one segment per text line RapidOCR (PP-OCRv4 ONNX, pinned by sha256) reads.

The models ship inside the ``rapidocr-onnxruntime`` wheel, so this runs offline. Its recognition model is the
Chinese+English one, which often drops the spaces between English words of one line ("HOTEL ATLANTIC" comes back
as "HOTELATLANTIC"): ``compact`` gives the space-free lowercase form that keyword matching can compare against.
Work per image is bounded: images are downscaled to ``OcrSettings.max_side`` and padded to at most
``max_aspect`` before OCR, because the detector upscales the short side to 736 pixels (a 40 x 1280 strip would
otherwise become 736 x 23552).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.errors import DeviceUnavailable, InvalidInput, InvalidModelSource, WeightsUnavailable, XmodalError

PACKAGE = "rapidocr-onnxruntime"
PINNED_VERSION = "1.4.4"
# sha256 of the ONNX models inside rapidocr-onnxruntime 1.4.4's wheel (its models/ folder), checked at load.
MODEL_SHA256 = {
    "ch_PP-OCRv4_det_infer.onnx": "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    "ch_PP-OCRv4_rec_infer.onnx": "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
}
_SPACES = re.compile(r"\s+")


class OcrFailed(XmodalError):
    """The OCR engine raised on one image (its own error types wrapped, so only that item's enrichment fails)."""


@dataclass(frozen=True)
class OcrSettings:
    """Bounds and thresholds of one OCR pass; all but ``threads`` change what is read, so they enter ``version``."""

    max_side: int = 1280  # longest side fed to OCR; larger images are downscaled first
    max_aspect: float = 4.0  # longer/shorter side; narrower strips are padded up to it
    min_score: float = 0.5  # recognition confidence below which a line is dropped (RapidOCR's default)
    max_lines: int = 256  # lines kept per image, top to bottom
    max_line_chars: int = 512
    threads: int = 1  # onnxruntime intra-op threads per model

    def fingerprint(self) -> str:
        """The settings that shape the output, as a short string."""
        return f"side{self.max_side},aspect{self.max_aspect:g},score{self.min_score:g},lines{self.max_lines}"


def compact(text: str) -> str:
    """The space-free lowercase form of ``text`` (what survives RapidOCR dropping spaces between words)."""
    return _SPACES.sub("", text).lower()


def clean_line(text: str, max_chars: int) -> str:
    """One recognised line with runs of whitespace made single spaces, trimmed and cut to ``max_chars``."""
    return _SPACES.sub(" ", text).strip()[:max_chars]


def prepare(image: Image.Image, settings: OcrSettings) -> np.ndarray:
    """The image as the BGR uint8 array OCR reads: RGB, downscaled to ``max_side``, padded to ``max_aspect``."""
    if not isinstance(image, Image.Image):
        raise InvalidInput(f"ocr reads PIL images, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise InvalidInput(f"ocr got an empty image ({image.width}x{image.height})")
    rgb = image.convert("RGB")
    longest = max(rgb.size)
    if longest > settings.max_side:
        scale = settings.max_side / longest
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.BILINEAR)
    pixels = np.asarray(rgb)[:, :, ::-1]
    h, w = pixels.shape[:2]
    short = int(np.ceil(max(h, w) / settings.max_aspect))
    if min(h, w) < short:  # pad the short side with the mean colour, centred, so the detector's upscale stays bounded
        fill = pixels.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        pad_h, pad_w = max(0, short - h), max(0, short - w)
        out = np.empty((h + pad_h, w + pad_w, 3), dtype=np.uint8)
        out[:] = fill
        out[pad_h // 2:pad_h // 2 + h, pad_w // 2:pad_w // 2 + w] = pixels
        pixels = out
    return np.ascontiguousarray(pixels)


def package_dir() -> Path:
    """Where the installed rapidocr_onnxruntime package lives; ``WeightsUnavailable`` with how to install it."""
    try:
        import rapidocr_onnxruntime
    except ImportError as exc:
        raise WeightsUnavailable(PACKAGE, list(MODEL_SHA256), f"pip install {PACKAGE}=={PINNED_VERSION} "
                                 "(its PP-OCR models ship inside the wheel)") from exc
    return Path(rapidocr_onnxruntime.__file__).resolve().parent


def verify_models(root: Path) -> dict[str, str]:
    """Check every bundled model file against its pinned sha256; returns name -> sha256."""
    from engine.models.weights import verify_sha256

    for name, expected in MODEL_SHA256.items():
        path = root / "models" / name
        if not path.is_file():
            raise WeightsUnavailable(PACKAGE, [str(path)], f"reinstall {PACKAGE}=={PINNED_VERSION}")
        verify_sha256(PACKAGE, path, expected)
    return dict(MODEL_SHA256)


def engine_version() -> str:
    """The installed rapidocr-onnxruntime version (the pin is ``PINNED_VERSION``; the models' sha256 are checked)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


class RapidOcr:
    """RapidOCR with explicit threads and bounded input: ``lines(image)`` -> [(text, score)] top to bottom."""

    def __init__(self, settings: OcrSettings = OcrSettings(), device: str = "cpu") -> None:
        root = package_dir()
        self.shas = verify_models(root)
        self.settings = settings
        use_cuda = _cuda_wanted(device)
        from rapidocr_onnxruntime import RapidOCR

        threads = max(1, min(int(settings.threads), os.cpu_count() or 1))  # RapidOCR ignores counts past the CPUs
        # det_max_candidates bounds the boxes recognised, so a cluttered image costs at most max_lines crops
        self._ocr = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1, text_score=settings.min_score,
                             det_max_candidates=settings.max_lines,
                             det_use_cuda=use_cuda, cls_use_cuda=use_cuda, rec_use_cuda=use_cuda)

    def lines(self, image: Image.Image) -> list[tuple[str, float]]:
        """The recognised lines of one image with their confidence, cleaned, empty ones dropped, at most max_lines."""
        pixels = prepare(image, self.settings)
        try:
            result, _ = self._ocr(pixels)
        except Exception as exc:  # OpenCV, shapely, onnxruntime errors: the image fails, not the enrichment pass
            raise OcrFailed(f"ocr failed: {type(exc).__name__}: {exc}") from exc
        out = []
        for entry in result or ():
            text = clean_line(str(entry[1]), self.settings.max_line_chars)
            if text and float(entry[2]) >= self.settings.min_score:
                out.append((text, float(entry[2])))
        return out[: self.settings.max_lines]


def _cuda_wanted(device: str) -> bool:
    """Whether to ask onnxruntime for CUDA: ``cpu`` no; ``auto`` or ``cuda*`` when its CUDA provider exists, else CPU
    with a logged warning (the device usually comes from the torch encoder, and onnxruntime may be the CPU build);
    anything else ``DeviceUnavailable``."""
    name = (device or "cpu").lower()
    if name == "cpu":
        return False
    if name != "auto" and not name.startswith("cuda"):
        raise DeviceUnavailable(f"device {device!r} is not one ocr can use (cpu, cuda, auto)")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return True
    if name != "auto":
        logging.getLogger(__name__).warning("ocr runs on the CPU: onnxruntime here has no CUDA provider")
    return False


@dataclass
class OcrEnricher:
    """The ``ocr`` enricher: images (and video frames) -> one ``Segment`` per text line read.

    A still image (offset None) gives segments with no times; a line read on consecutive video frames becomes
    one segment from the first frame's offset to the last one's."""

    engine: RapidOcr
    name: str = "ocr"
    kind: str = "ocr"
    reads: str = "image"
    version: str = field(default="")

    def __post_init__(self) -> None:
        if not self.version:
            shas = ",".join(f"{n.split('_infer')[0]}={s[:12]}" for n, s in sorted(self.engine.shas.items()))
            self.version = f"{PACKAGE}=={engine_version()};{shas};{self.engine.settings.fingerprint()}"

    def segments(self, media: Iterable[tuple[float | None, Any]]) -> list:
        """OCR every image of ``media`` ((offset or None, PIL image) pairs); the lines as segments, in order."""
        from ingest.enrich import Segment

        done: list[Segment] = []
        open_lines: dict[str, tuple[float, float]] = {}  # line text -> (first, last) offset on consecutive frames
        for offset, image in media:
            texts = [text for text, _ in self.engine.lines(image)]
            if offset is None:
                done.extend(Segment(text) for text in texts)
                continue
            for text in [t for t in open_lines if t not in texts]:
                first, last = open_lines.pop(text)
                done.append(Segment(text, first, last))
            for text in texts:
                first, _ = open_lines.get(text, (float(offset), float(offset)))
                open_lines[text] = (first, float(offset))
        done.extend(Segment(text, first, last) for text, (first, last) in open_lines.items())
        return sorted(done, key=lambda s: -1.0 if s.start is None else s.start)  # stable: lines keep their order


def make_enricher(options: Any) -> OcrEnricher:
    """The ``ocr`` enricher for ``options`` (an ``EnrichOptions``: device, threads, model; model must be None or
    ``rapidocr``: the bundled PP-OCRv4 models are the one engine)."""
    model = getattr(options, "model", None)
    if model not in (None, "", "rapidocr"):
        raise InvalidModelSource(f"ocr has one engine, the bundled RapidOCR models; got model {model!r}")
    settings = OcrSettings(threads=int(getattr(options, "threads", 1) or 1))
    return OcrEnricher(RapidOcr(settings, device=str(getattr(options, "device", "cpu") or "cpu")))
