"""``python -m bench.ocr``: text in images, RapidOCR (xmodal's ``ocr`` enricher) against Tesseract, on words rendered
onto real COCO photos.

Each generated image is a COCO photo (``../shared/data/coco-mini``) with one line drawn on it: a target word taken
from COCO captions (every target distinct, none inside another), in a third of the images followed by a second
word; in one of several TrueType fonts found on the machine, sizes 16-64 px, angles -30..30 degrees, three styles
(white with a black outline, black or white by the background, plain colour). Saved as JPEG (quality 90).
Per engine, one thread each: characters recognised (1 - CER of the OCR line closest to the rendered one, with and
without spaces, case ignored), target words found (as a token; inside the space-free text), text->image R@1 with
the word as query (keyword token match; space-free substring; the xmodal-mini text tower's cosine to the best
line; ties count 1/n), and ms per image. Then the user's path: the images ingested into an xmodal-mini store with
OCR off (timed), ``Engine.enrich(["ocr"])`` (timed), and ``Engine.search(word, targets=["image"])`` R@1, with the
share of those top hits that matched through an ``ocr`` representation.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageStat

from bench.report import machine_info, write_json
from engine.api import Engine
from engine.datasets import shared_data_dir
from engine.models import EnrichOptions, load_encoder, make_enrichers
from engine.query import MODES
from ingest import IngestOptions

FONT_NAMES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
              "DejaVuSans-Oblique.ttf", "LiberationSans-Regular.ttf", "LiberationSerif-Bold.ttf",
              "LiberationMono-Regular.ttf", "LiberationSansNarrow-Italic.ttf", "DejaVuSerif-Italic.ttf")
SIZES = (16, 24, 32, 48, 64)
ANGLES = (0, 0, 0, 5, -5, 15, -15, 30, -30)
STYLES = ("outline", "contrast", "colour")
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Rendered:
    """One generated image: its file, the rendered line, the target word (the query) and how it was drawn."""

    path: str
    line: str
    word: str
    font: str
    size: int
    angle: int
    style: str


def find_fonts() -> list[Path]:
    """TrueType fonts from ``FONT_NAMES`` found under matplotlib's data and the system font folders."""
    roots = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts")]
    try:
        import matplotlib

        roots.insert(0, Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    found: dict[str, Path] = {}
    for root in roots:
        if root.is_dir():
            for path in root.rglob("*.ttf"):
                if path.name in FONT_NAMES:
                    found.setdefault(path.name, path)
    return [found[n] for n in FONT_NAMES if n in found]


def caption_words(coco: Path) -> list[str]:
    """Distinct alphabetic words of 5-10 letters in the COCO captions, sorted."""
    words: set[str] = set()
    for name in ("captions_val2017.json", "captions_train2017.json"):
        path = coco / "annotations" / name
        if path.is_file():
            for a in json.loads(path.read_text())["annotations"]:
                words.update(w for w in re.findall(r"[a-z]+", a["caption"].lower()) if 5 <= len(w) <= 10)
    return sorted(words)


def pick_targets(words: list[str], n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """``n`` target words, none inside another, and the remaining words (for second words) that share none."""
    targets: list[str] = []
    for w in rng.permutation(words):
        if len(targets) == n:
            break
        if not any(w in t or t in w for t in targets):
            targets.append(str(w))
    if len(targets) < n:
        raise SystemExit(f"bench.ocr: only {len(targets)} usable caption words for {n} images")
    rest = [w for w in words if not any(w in t or t in w for t in targets)]
    return targets, rest


def draw_line(photo: Image.Image, text: str, font: ImageFont.FreeTypeFont, angle: int, style: str,
              rng: np.random.Generator) -> Image.Image:
    """``photo`` with ``text`` drawn on a rotated layer at a random place where it fits."""
    box = font.getbbox(text, stroke_width=2)
    layer = Image.new("RGBA", (box[2] - box[0] + 8, box[3] - box[1] + 8), (0, 0, 0, 0))
    at = (4 - box[0], 4 - box[1])
    if style == "outline":
        ImageDraw.Draw(layer).text(at, text, font=font, fill=(255, 255, 255, 255), stroke_width=2,
                                   stroke_fill=(0, 0, 0, 255))
    layer = layer.rotate(angle, expand=True, resample=Image.BICUBIC)
    w, h = layer.size
    x = int(rng.integers(0, max(1, photo.width - w)))
    y = int(rng.integers(0, max(1, photo.height - h)))
    if style != "outline":
        if style == "contrast":
            light = ImageStat.Stat(photo.crop((x, y, x + w, y + h)).convert("L")).mean[0] > 128
            colour = (0, 0, 0, 255) if light else (255, 255, 255, 255)
        else:
            colour = tuple(int(c) for c in rng.choice([(220, 30, 30), (250, 220, 40), (40, 80, 220), (30, 160, 60)]))
            colour = (*colour, 255)
        flat = Image.new("RGBA", (box[2] - box[0] + 8, box[3] - box[1] + 8), (0, 0, 0, 0))
        ImageDraw.Draw(flat).text(at, text, font=font, fill=colour)
        layer = flat.rotate(angle, expand=True, resample=Image.BICUBIC)
    out = photo.convert("RGB")
    out.paste(layer, (x, y), layer)
    return out


def generate(folder: Path, coco: Path, n: int, seed: int) -> list[Rendered]:
    """Write ``n`` images with known words into ``folder``; returns what each holds."""
    rng = np.random.default_rng(seed)
    fonts = find_fonts()
    if not fonts:
        raise SystemExit("bench.ocr: no TrueType fonts found (matplotlib's DejaVu or /usr/share/fonts)")
    photos = sorted((coco / "val2017").glob("*.jpg")) + sorted((coco / "train2017").glob("*.jpg"))
    targets, rest = pick_targets(caption_words(coco), n, rng)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, word in enumerate(targets):
        cased = (word, word.upper(), word.title())[i % 3]
        line = cased if rng.random() >= 1 / 3 else f"{cased} {rng.choice(rest)}"
        font_path = fonts[int(rng.integers(len(fonts)))]
        size, angle = int(rng.choice(SIZES)), int(rng.choice(ANGLES))
        style = STYLES[int(rng.integers(len(STYLES)))]
        with Image.open(photos[i % len(photos)]) as photo:
            image = draw_line(photo, line, ImageFont.truetype(str(font_path), size), angle, style, rng)
        path = folder / f"{i:04d}.jpg"
        image.save(path, quality=90)
        out.append(Rendered(str(path), line, word, font_path.name, size, angle, style))
    return out


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def squash(text: str) -> str:
    """Lowercase with whitespace removed."""
    return re.sub(r"\s+", "", text).lower()


def cer(truth: str, lines: list[str], compact: bool) -> float:
    """CER of the OCR line closest to ``truth`` (case ignored; spaces too when ``compact``); 1.0 with no lines."""
    norm = squash if compact else (lambda s: re.sub(r"\s+", " ", s).strip().lower())
    t = norm(truth)
    return min([levenshtein(t, norm(x)) / len(t) for x in lines] or [1.0])


def rapidocr_reader(threads: int) -> tuple[Callable[[str], list[str]], str]:
    """xmodal's ``ocr`` enricher as a reader of one image file; and its version."""
    enricher = make_enrichers(["ocr"], EnrichOptions(device="cpu", threads=threads))[0]

    def read(path: str) -> list[str]:
        with Image.open(path) as image:
            return [s.text for s in enricher.segments([(None, image.convert("RGB"))])]

    return read, enricher.version


def tesseract_reader(threads: int, psm: int) -> tuple[Callable[[str], list[str]], str]:
    """The ``tesseract`` command (English, page segmentation ``psm``) as a reader; and its version."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise FileNotFoundError("tesseract")
    env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.split("\n")[0]

    def read(path: str) -> list[str]:
        done = subprocess.run([exe, path, "stdout", "-l", "eng", "--psm", str(psm)], capture_output=True, text=True,
                              timeout=60, env=env)
        return [x.strip() for x in done.stdout.splitlines() if x.strip()]

    return read, f"{version} --psm {psm}"


def r_at_1(scores: np.ndarray, floor: float) -> float:
    """Mean R@1 of a (queries, images) score matrix whose answer is the diagonal; ties share the hit (1/n); images
    scored ``floor`` or less are not returned at all (a keyword that matches nothing finds nothing)."""
    best = scores.max(axis=1, keepdims=True)
    tied = (scores == best).sum(axis=1)
    hit = (np.diag(scores) == best[:, 0]) & (best[:, 0] > floor)
    return float(np.mean(np.where(hit, 1.0 / tied, 0.0)))


def score_engine(images: list[Rendered], texts: list[list[str]], encoder: Any) -> dict[str, Any]:
    """Characters, words found and R@1 (three ways) of one engine's texts."""
    words = [r.word for r in images]
    tokens = [set(_TOKEN.findall(" ".join(t).lower())) for t in texts]
    flat = [squash(" ".join(t)) for t in texts]
    keyword = np.array([[float(w in tk) for tk in tokens] for w in words])
    substring = np.array([[float(w in f) for f in flat] for w in words])
    lines = [(i, x) for i, t in enumerate(texts) for x in t]
    dense = np.full((len(words), len(images)), -2.0)
    if lines:
        q = encoder.encode("text", words)
        v = encoder.encode("text", [x for _, x in lines])
        sims = q @ v.T
        for col, (i, _) in enumerate(lines):
            dense[:, i] = np.maximum(dense[:, i], sims[:, col])
    return {
        "char_accuracy": round(1 - float(np.mean([min(1.0, cer(r.line, t, False)) for r, t in zip(images, texts)])), 4),
        "char_accuracy_no_spaces": round(
            1 - float(np.mean([min(1.0, cer(r.line, t, True)) for r, t in zip(images, texts)])), 4),
        "word_found_token": round(float(np.mean(np.diag(keyword))), 4),
        "word_found_no_spaces": round(float(np.mean(np.diag(substring))), 4),
        "r1_keyword_token": round(r_at_1(keyword, 0.0), 4),
        "r1_keyword_no_spaces": round(r_at_1(substring, 0.0), 4),
        "r1_text_tower": round(r_at_1(dense, -2.0), 4),
        "images_with_text": int(sum(bool(t) for t in texts)),
    }


def breakdown(images: list[Rendered], texts: list[list[str]]) -> dict[str, dict[str, float]]:
    """Share of target words found (space-free substring) per size, angle, style and font."""
    found = [r.word in squash(" ".join(t)) for r, t in zip(images, texts)]
    out: dict[str, dict[str, float]] = {}
    for key in ("size", "angle", "style", "font"):
        groups: dict[str, list[bool]] = {}
        for r, f in zip(images, found):
            groups.setdefault(str(getattr(r, key)), []).append(f)
        out[key] = {g: round(float(np.mean(v)), 3) for g, v in sorted(groups.items())}
    return out


def cpu_seconds() -> float:
    """CPU seconds used by this process and its finished children (tesseract runs as a child): on a busy machine
    the fairer cost than wall time."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_engine(name: str, read: Callable[[str], list[str]], images: list[Rendered]) -> tuple[list[list[str]], dict]:
    """Read every image; the texts and the timing (ms per image)."""
    texts, ms = [], []
    cpu_start = cpu_seconds()
    for r in images:
        start = time.perf_counter()
        texts.append(read(r.path))
        ms.append((time.perf_counter() - start) * 1000)
    cpu_ms = 1000 * (cpu_seconds() - cpu_start) / max(1, len(images))
    timing = {"ms_per_image_mean": round(float(np.mean(ms)), 1), "ms_p50": round(float(np.median(ms)), 1),
              "ms_p90": round(float(np.percentile(ms, 90)), 1), "images_per_s": round(1000 / float(np.mean(ms)), 2),
              "cpu_ms_per_image": round(cpu_ms, 1)}
    print(f"{name}: {timing['ms_per_image_mean']} ms/image wall (p50 {timing['ms_p50']}), {timing['cpu_ms_per_image']} "
          "ms CPU", flush=True)
    return texts, timing


def store_path(folder: Path, work: Path, images: list[Rendered], preset: str, threads: int) -> dict[str, Any]:
    """The user's path: ingest with OCR off, then enrich with OCR, then search each word for images."""
    engine = Engine.open(work / "store", preset)
    try:
        start, cpu = time.perf_counter(), cpu_seconds()
        summary = engine.ingest([folder], IngestOptions(workers=0), enrich=[])
        ingest_s, ingest_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        start, cpu = time.perf_counter(), cpu_seconds()
        engine.enrich(["ocr"], enrich_options=EnrichOptions(device="cpu", threads=threads))
        enrich_s, enrich_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        modes = MODES if "mode" in inspect.signature(engine.search).parameters else (None,)
        searched = {}
        for mode in modes:  # every search mode the engine offers (vector, keyword, hybrid), else its one way
            extra = {} if mode is None else {"mode": mode}
            hits = [engine.search(r.word, targets=["image"], k=1, rerank=False, **extra) for r in images]
            r1 = [bool(h) and Path(h[0].uri.removeprefix("file://")).name == Path(r.path).name
                  for h, r in zip(hits, images)]
            via_ocr = [bool(h) and h[0].match.kind == "ocr" for h in hits]
            searched[mode or "default"] = {"r1_search": round(float(np.mean(r1)), 4),
                                           "top1_matched_via_ocr": round(float(np.mean(via_ocr)), 4)}
    finally:
        engine.close()
    return {"items": summary.added, "ingest_s_ocr_off": round(ingest_s, 2), "ingest_cpu_s_ocr_off": round(ingest_cpu, 2),
            "enrich_s_ocr": round(enrich_s, 2), "enrich_cpu_s_ocr": round(enrich_cpu, 2),
            "ocr_ms_per_image_in_ingest": round(1000 * enrich_s / max(1, len(images)), 1),
            "ocr_cpu_ms_per_image_in_ingest": round(1000 * enrich_cpu / max(1, len(images)), 1),
            "search": searched}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Generate the images, read them with each engine, score, run the store path, print and write."""
    parser = argparse.ArgumentParser(prog="python -m bench.ocr", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="generated images (one distinct target word each)")
    parser.add_argument("--threads", type=int, default=1, help="threads per engine (onnxruntime; OMP for tesseract)")
    parser.add_argument("--preset", default="xmodal-mini", help="text tower for R@1 and the store path")
    parser.add_argument("--psm", type=int, default=11, help="tesseract page segmentation mode (11: sparse text)")
    parser.add_argument("--engines", default="rapidocr,tesseract", help="comma-separated engines to compare (empty: none)")
    parser.add_argument("--no-store", action="store_true", help="skip the ingest + enrich + search path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench.ocr needs ../shared/data (or XMODAL_SHARED_DATA)")
    work = Path(tempfile.mkdtemp(prefix="xmodal-bench-ocr-"))
    try:
        images = generate(work / "images", data / "coco-mini", args.images, args.seed)
        print(f"{len(images)} images in {len(find_fonts())} fonts, sizes {SIZES}, angles {sorted(set(ANGLES))}",
              flush=True)
        encoder = load_encoder(args.preset, device="cpu")
        readers = {"rapidocr": lambda: rapidocr_reader(args.threads),
                   "tesseract": lambda: tesseract_reader(args.threads, args.psm)}
        engines: dict[str, Any] = {}
        for name in [n for n in args.engines.split(",") if n]:  # none: the store path alone
            if name not in readers:
                parser.error(f"unknown engine {name!r}; known: {', '.join(readers)}")
            make = readers[name]
            try:
                read, version = make()
            except FileNotFoundError as exc:
                engines[name] = {"skipped": f"not installed: {exc}"}
                continue
            texts, timing = run_engine(name, read, images)
            engines[name] = {"version": version, **timing, **score_engine(images, texts, encoder),
                             "found_by": breakdown(images, texts),
                             "examples": [[r.line, t] for r, t in zip(images[:8], texts[:8])]}
            row = {k: v for k, v in engines[name].items() if k not in ("found_by", "examples", "version")}
            print(f"{name}: {row}", flush=True)
        store = None if args.no_store else store_path(work / "images", work, images, args.preset, args.threads)
        if store:
            print(f"store path (xmodal ingest, then enrich ocr, then search): {store}", flush=True)
        payload = {"bench": "ocr", "images": len(images), "threads": args.threads, "preset": args.preset,
                   "fonts": [p.name for p in find_fonts()], "engines": engines, "store": store,
                   "note": "one run on a shared, busy machine (2 cores, several agents): compare ratios in one run",
                   "machine": machine_info()}
        write_json(args.json_out, payload)
        return payload
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
