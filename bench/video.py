"""Video timelines (#16 must-show): does a text query land on the right moment of the right video?

Videos are generated here from real media (``../shared/data``): COCO photos as still shots, one handwritten digit
(scikit-learn) shown for 6 s, one ESC-10 fold-5 clip and one spoken digit (FSDD, held-out speaker theo) placed at
random seconds; each video's digit, sound class and spoken digit differ. Queries are texts ("the digit seven", "the
sound of a dog barking", "seven"), searched for video results through one index at a time (frames: image vectors;
sounds: audio windows; speech: transcript segments, which need the ``transcribe`` enricher). A hit is the right
video first with its matched moment within 1 s of where the content was placed (sound windows are 10 s long, so the
window that holds the moment is reported too). Also: frames kept per minute of static and of changing video, ingest
minutes per hour of video, and the peak memory of ingesting one long video in a child process.

``python -m bench.video --json OUT [--videos 10] [--seconds 40] [--long-minutes 25] [--preset xmodal-mini]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench._main import run_main
from engine import Engine
from engine.datasets import DIGIT_WORDS, Shot, Sound, decode_audio, esc_class_texts, shared_data_dir, write_video
from ingest import IngestOptions

SIZE, FPS = (160, 120), 4


def _digit_images() -> dict[int, Image.Image]:
    """One scikit-learn handwritten digit per class, dark on light like the shipped tower's training digits."""
    from sklearn.datasets import load_digits

    data = load_digits()
    out = {}
    for digit in range(10):
        pixels = data.images[int(np.flatnonzero(data.target == digit)[0])]
        grey = (255 - pixels / 16.0 * 255).astype(np.uint8)
        out[digit] = Image.fromarray(grey, "L").resize((96, 96), Image.NEAREST).convert("RGB")
    return out


def _esc_clips(root: Path) -> list[tuple[str, Path]]:
    """One fold-5 ESC-10 clip per class: (label, path)."""
    found = []
    for folder in sorted(p for p in (root / "esc10").iterdir() if p.is_dir()):
        clip = sorted(folder.glob("5-*.ogg"))[0]
        found.append((folder.name.split(" - ", 1)[1], clip))
    return found


def make_videos(folder: Path, count: int, seconds: int, seed: int = 0) -> list[dict]:
    """Write ``count`` videos of ``seconds``; return what each holds and where."""
    root = shared_data_dir()
    rng = random.Random(seed)
    photos = sorted((root / "coco-mini" / "val2017").glob("*.jpg"))
    digits, esc = _digit_images(), _esc_clips(root)
    truth = []
    for i in range(count):
        digit, spoken, (label, clip) = i % 10, (i + 3) % 10, esc[i % len(esc)]
        shown_at = rng.randrange(2, seconds - 8) // 2 * 2  # shots are 2 s long, the digit's 6 s
        shots, t = [], 0
        while t < seconds:
            if t == shown_at:
                shots.append(Shot(6, digits[digit]))
                t += 6
            else:
                shots.append(Shot(2, Image.open(rng.choice(photos))))
                t += 2
        sound_at = float(rng.randrange(1, seconds - 6))
        speech_at = float(rng.choice([s for s in range(1, seconds - 2) if abs(s - sound_at) > 6]))
        speech = root / "fsdd" / "recordings" / f"{spoken}_theo_{rng.randrange(5)}.wav"
        path = folder / f"video_{i:02d}.mp4"
        write_video(path, shots, [Sound(sound_at, decode_audio(clip)), Sound(speech_at, decode_audio(speech))],
                    fps=FPS, size=SIZE)
        truth.append({"path": str(path), "digit": digit, "shown_at": float(shown_at), "sound": label,
                      "sound_at": sound_at, "spoken": spoken, "speech_at": speech_at})
    return truth


def _score(engine: Engine, queries: list[tuple[str, str, float, float]], index: str) -> dict:
    """R@1 of (text, expected video, second placed, seconds long) through one index: the right video first with its
    moment within 1 s of the placed second, and with its matched frame or window overlapping the placed content."""
    within = window = video = 0
    for text, path, at, length in queries:
        results = engine.search(text, targets=["video"], indexes=[index], k=1)
        if results and results[0].uri == path:
            video += 1
            offset = results[0].match.offset_seconds or 0.0
            within += abs(offset - at) <= 1.0
            span = 10.0 if index == "audio" else 1.0  # a sound window's length; a frame or segment: its second
            window += at - 1.0 <= offset + span and offset <= at + length
    n = max(1, len(queries))
    return {"queries": len(queries), "r1_video": round(video / n, 3), "r1_moment_1s": round(within / n, 3),
            "r1_overlapping": round(window / n, 3)}


def frames_per_minute(engine: Engine, folder: Path, photos: list[Path]) -> dict:
    """Frames kept per minute: a static video (photos held 20 s each) and a changing one (pans), 2 min each."""
    still = [Shot(20, Image.open(p)) for p in photos[:6]]
    moving = [Shot(20, Image.open(p), moving=True) for p in photos[:6]]
    paths = {"static": folder / "static.mp4", "changing": folder / "changing.mp4"}
    write_video(paths["static"], still, fps=FPS, size=SIZE, audio=False)
    write_video(paths["changing"], moving, fps=FPS, size=SIZE, audio=False)
    engine.ingest([folder], IngestOptions(workers=0))
    catalog = engine.store.catalog
    out = {}
    for name, path in paths.items():
        item = next(i for i in catalog.items(status="ok") if i.uri == str(path))
        frames = sum(r.kind == "frame" for r in catalog.representations_of(item.id))
        out[name] = round(frames / 2.0, 1)
    return out


def long_video_child(path: Path, store: Path, preset: str, out: Path) -> None:
    """Ingest one long video into a fresh store (run in a child, whose own peak memory the parent reads)."""
    t0 = time.perf_counter()
    with Engine.open(store, preset) as engine:
        summary = engine.ingest([path], IngestOptions(workers=0), enrich=())
        item = next(iter(engine.store.catalog.items(status="ok")))
        kinds = [r.kind for r in engine.store.catalog.representations_of(item.id)]
    out.write_text(json.dumps({"added": summary.added, "failed": summary.failed, "frames": kinds.count("frame"),
                               "audio_windows": kinds.count("audio-segment"),
                               "seconds": round(time.perf_counter() - t0, 1)}))


def long_video(folder: Path, minutes: int, preset: str, photos: list[Path]) -> dict:
    """Peak memory (VmHWM of a child) and time of ingesting one ``minutes``-long changing video."""
    from bench._child import run_module

    path = folder / "long.mp4"
    t0 = time.perf_counter()
    shots = [Shot(20, Image.open(photos[i % len(photos)]), moving=True) for i in range(minutes * 3)]
    write_video(path, shots, fps=2, size=SIZE)
    made = time.perf_counter() - t0
    result = run_module("bench.video", ["--long-child", str(path), "--store", str(folder / "long-store"),
                                        "--preset", preset], folder / "long.json")
    return {"minutes": minutes, "generated_s": round(made, 1), "file_mib": round(path.stat().st_size / 2**20, 1),
            **result.payload, "peak_rss_gib": round(result.peak_rss_gib, 2)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--long-minutes", type=int, default=25, help="0 skips the long-video memory run")
    parser.add_argument("--preset", default="xmodal-mini")
    parser.add_argument("--long-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.long_child:
        long_video_child(args.long_child, args.store, args.preset, args.json)
        return 0
    if shared_data_dir() is None:
        print("bench.video needs ../shared/data (COCO, ESC-10, FSDD)", file=sys.stderr)
        return 2
    report: dict = {"preset": args.preset, "videos": args.videos, "seconds_each": args.seconds,
                    "machine": "2 shared cores, busy (other agents running)"}
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        work = Path(tmp)
        (work / "videos").mkdir()
        truth = make_videos(work / "videos", args.videos, args.seconds)
        with Engine.open(work / "store", args.preset) as engine:
            t0 = time.perf_counter()
            summary = engine.ingest([work / "videos"], IngestOptions(workers=0), enrich=())
            ingest_s = time.perf_counter() - t0
            hours = args.videos * args.seconds / 3600
            report["ingest"] = {"failed": summary.failed, "seconds": round(ingest_s, 1),
                                "minutes_per_hour_of_video": round(ingest_s / 60 / hours, 1)}
            report["frames"] = _score(engine, [(f"the digit {DIGIT_WORDS[t['digit']]}", t["path"], t["shown_at"], 6.0)
                                               for t in truth], "image")
            report["sounds"] = _score(engine, [(esc_class_texts(t["sound"])[0], t["path"], t["sound_at"], 5.0)
                                               for t in truth], "audio")
            try:
                t0 = time.perf_counter()
                enriched = engine.enrich(("transcribe",))
                spent = time.perf_counter() - t0
                report["transcribe"] = {"seconds": round(spent, 1),
                                        "minutes_per_hour_of_video": round(spent / 60 / hours, 1),
                                        "summary": str(enriched)[:300]}
                report["speech"] = _score(engine, [(DIGIT_WORDS[t["spoken"]], t["path"], t["speech_at"], 1.0)
                                                   for t in truth], "text")
            except Exception as exc:  # the transcribe enricher may not be on this machine yet
                report["speech"] = f"not yet: {type(exc).__name__}: {exc}"[:300]
        photos = sorted((shared_data_dir() / "coco-mini" / "val2017").glob("*.jpg"))
        (work / "rate").mkdir()
        with Engine.open(work / "rate-store", args.preset) as engine:
            report["frames_per_minute"] = frames_per_minute(engine, work / "rate", photos)
        if args.long_minutes:
            (work / "long").mkdir()
            report["long_video"] = long_video(work / "long", args.long_minutes, args.preset, photos)
    report["truth"] = [{k: v for k, v in t.items() if k != "path"} for t in truth]
    for key in ("ingest", "frames", "sounds", "speech", "transcribe", "frames_per_minute", "long_video"):
        if key in report:
            print(f"{key:>18}: {report[key]}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
