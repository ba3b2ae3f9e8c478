"""``python -m bench.ingest``: whole-ingest images/s against bare ``encode_image`` on pre-decoded tensors, one run.

The corpus is coco-mini's real JPEGs copied to ``--n`` files; each copy gets a unique trailer after the JPEG end
marker, so every file has its own sha256 (and is embedded, not deduplicated) while decoding to the same pixels.
Ingest is the full path: scan, read, hash, decode and preprocess in worker processes, batched encoding, catalog
commits per batch and the index sync. Bare is open_clip's ``encode_image`` over tensors decoded and transformed
beforehand, at the same batch size and precision, on the same model.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from engine.datasets import shared_data_dir
from bench.report import machine_info, write_json
from engine.api import Engine
from engine.models import load_encoder
from index import open_store
from ingest import IngestOptions


def make_corpus(folder: Path, n: int) -> list[Path]:
    """``n`` distinct JPEG files cycled from coco-mini (unique trailing bytes per copy)."""
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench.ingest needs ../shared/data/coco-mini (or XMODAL_SHARED_DATA)")
    sources = sorted((data / "coco-mini").rglob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        src = sources[i % len(sources)]
        path = folder / f"{i:05d}_{src.name}"
        path.write_bytes(src.read_bytes() + f"xmodal-copy-{i}".encode())
        paths.append(path)
    return paths


def bare_images_per_s(encoder: Any, paths: list[Path], batch_size: int, precision: str) -> float:
    """open_clip ``encode_image`` over pre-decoded, pre-transformed tensors: the model alone."""
    tower = encoder.towers["image"]
    pixels = torch.stack([tower.transform(Image.open(p).convert("RGB")) for p in paths])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        tower.model.encode_image(pixels[:batch_size])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(pixels), batch_size):
            torch.nn.functional.normalize(tower.model.encode_image(pixels[i : i + batch_size]).float(), dim=-1)
    return len(pixels) / (time.perf_counter() - start)


def ingest_images_per_s(encoder: Any, folder: Path, store: Path, options: IngestOptions) -> tuple[float, Any]:
    """Whole ingest into a fresh store."""
    shutil.rmtree(store, ignore_errors=True)
    engine = Engine(open_store(store), encoder)
    try:
        start = time.perf_counter()
        summary = engine.ingest([folder], options)
        return summary.added / (time.perf_counter() - start), summary
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both measurements per precision, print them and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="clip-vit-b32", help="preset (image tower used)")
    parser.add_argument("--n", type=int, default=2000, help="number of JPEG files")
    parser.add_argument("--batch-size", type=int, default=32, help="encoder batch size, both sides")
    parser.add_argument("--workers", type=int, default=1, help="ingest decoding processes")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--workdir", help="where to build the corpus and stores (default: a temp folder)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="xmodal-bench-ingest-"))
    paths = make_corpus(work / "corpus", args.n)
    encoder = load_encoder(args.preset, device="cpu", random_weights=True, modalities=["image"])
    info = machine_info()
    print(f"{args.n} JPEGs, preset {args.preset} (random weights), batch {args.batch_size}, {args.workers} decode "
          f"worker(s), {info['torch_threads']} torch threads on {info['cpu_count']} cores", flush=True)
    rows = []
    for precision in args.precisions.split(","):
        bare = bare_images_per_s(encoder, paths, args.batch_size, precision)
        options = IngestOptions(batch_size=args.batch_size, workers=args.workers, precision=precision)
        ours, summary = ingest_images_per_s(encoder, work / "corpus", work / f"store-{precision}", options)
        if summary.failed or summary.added != args.n:
            raise SystemExit(f"ingest did not take every file: {summary}")
        row = {"precision": precision, "batch_size": args.batch_size, "n": args.n,
               "ingest_img_per_s": round(ours, 2), "bare_encode_img_per_s": round(bare, 2),
               "ratio_vs_bare": round(ours / bare, 3)}
        rows.append(row)
        print(f"{precision}: ingest {ours:.2f} img/s, bare encode_image {bare:.2f} img/s, ratio_vs_bare "
              f"{row['ratio_vs_bare']:.3f}", flush=True)
    payload = {"bench": "ingest", "preset": args.preset, "random_weights": True, "workers": args.workers,
               "machine": info, "results": rows}
    write_json(args.json_out, payload)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return payload


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
