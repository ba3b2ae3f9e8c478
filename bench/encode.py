"""``python -m bench.encode``: encode throughput per modality, batch size and precision, against bare library loops.

Both sides get the same pre-decoded inputs (PIL images, strings, 48 kHz float32 clips) and do the same work:
library preprocessing, the forward pass and L2 normalisation. "Bare" is the loop a user would write with
open_clip (``preprocess`` + ``encode_image``/``encode_text``) or transformers CLAP (feature extractor +
``get_audio_features``) on the very same modules, so ``ratio_vs_bare`` isolates xmodal's own overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.report import machine_info, throughput, write_json
from engine.models import ClapAudioTower, Encoder, OpenClipImageTower, OpenClipTextTower, load_encoder

COCO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-mini"
AUDIO_RATE = 48_000


def bench_inputs(modality: str, n: int, seed: int = 0) -> list[Any]:
    """Pre-decoded inputs: COCO JPEGs and captions when ``../shared/data`` is there, seeded synthetic media otherwise."""
    rng = np.random.default_rng(seed)
    if modality == "image":
        files = sorted((COCO / "val2017").glob("*.jpg"))[:n]
        images = [Image.open(f).convert("RGB") for f in files]
        while len(images) < n:
            images.append(Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)))
        return images
    if modality == "text":
        captions_file = COCO / "annotations" / "captions_val2017.json"
        texts = [a["caption"] for a in json.loads(captions_file.read_text())["annotations"]][:n] if captions_file.is_file() else []
        words = "a dog cat red blue small large car tree street beach people sitting running near above".split()
        while len(texts) < n:
            texts.append(" ".join(rng.choice(words, size=int(rng.integers(6, 15)))))
        return texts
    t = np.arange(AUDIO_RATE * 5) / AUDIO_RATE
    return [
        ((0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32), AUDIO_RATE)
        for _ in range(n)
    ]


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bare_loop(encoder: Encoder, modality: str, precision: str) -> Callable[[list[Any]], torch.Tensor] | None:
    """The plain library loop for this tower, or None when the tower has no bare-library equivalent."""
    tower, device = encoder.towers[modality], encoder.device

    def run(forward: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode(), _autocast(device, precision):
            return F.normalize(forward().float(), dim=-1).cpu()

    if isinstance(tower, OpenClipImageTower):
        model, tf = tower.model, tower.transform
        return lambda batch: run(lambda: model.encode_image(torch.stack([tf(im) for im in batch]).to(device)))
    if isinstance(tower, OpenClipTextTower):
        model, tok = tower.model, tower.tokenizer
        return lambda batch: run(lambda: model.encode_text(tok(batch).to(device)))
    if isinstance(tower, ClapAudioTower):
        clap, fe = tower.clap, tower.extractor

        def audio(batch: list[Any]) -> torch.Tensor:
            feats = fe([a for a, _ in batch], sampling_rate=AUDIO_RATE, return_tensors="pt").to(device)
            return run(lambda: clap.get_audio_features(**feats).pooler_output)

        return audio
    return None


def measure(encoder: Encoder, modality: str, precision: str, batch_size: int, args: argparse.Namespace) -> dict[str, Any]:
    """xmodal and bare throughput for one configuration, alternating rounds and keeping each side's best."""
    pool = bench_inputs(modality, max(batch_size * 2, 8))
    batches = [pool[i : i + batch_size] for i in range(0, len(pool) - batch_size + 1, batch_size)]
    ours = lambda i: encoder.encode(modality, batches[i % len(batches)], batch_size=batch_size, precision=precision)  # noqa: E731
    bare_fn = bare_loop(encoder, modality, precision)
    bare = (lambda i: bare_fn(batches[i % len(batches)])) if bare_fn else None  # noqa: E731
    best_ours = best_bare = 0.0
    for r in range(args.rounds):
        if bare:
            best_bare = max(best_bare, throughput(bare, args.min_batches, args.min_seconds, batch_size, warmup=r == 0))
        best_ours = max(best_ours, throughput(ours, args.min_batches, args.min_seconds, batch_size, warmup=r == 0))
    row = {"modality": modality, "precision": precision, "batch_size": batch_size,
           "xmodal_per_s": round(best_ours, 3), "bare_per_s": round(best_bare, 3) if bare else None,
           "ratio_vs_bare": round(best_ours / best_bare, 3) if bare else None}
    unit = {"image": "img/s", "text": "texts/s", "audio": "clips/s"}[modality]
    ratio = f"{row['ratio_vs_bare']:.3f}" if bare else "n/a"
    print(f"{modality:<5} {precision:<4} batch {batch_size:>3}: xmodal {best_ours:9.2f} {unit:<7} "
          f"bare {best_bare:9.2f} {unit:<7} ratio_vs_bare {ratio}", flush=True)
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print one line per configuration and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.encode", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="clip-vit-b32", help="preset name or JSON path")
    parser.add_argument("--random", action="store_true", help="random weights of the real architecture (speed only)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--modalities", default="image,text,audio", help="comma-separated modalities")
    parser.add_argument("--batch-sizes", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="minimum timed seconds per measurement")
    parser.add_argument("--min-batches", type=int, default=2, help="minimum timed batches per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternating xmodal/bare rounds; best of each kept")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    encoder = load_encoder(args.preset, device=args.device, random_weights=args.random)
    random_weights = args.random or encoder.preset.random_weights
    info = machine_info()
    print(f"preset {encoder.preset.name} on {encoder.device} ({info['cpu']}, {info['torch_threads']} threads), "
          f"{'random' if random_weights else 'real'} weights", flush=True)
    rows = [
        measure(encoder, m, p, int(b), args)
        for m in args.modalities.split(",") if m in encoder.modalities
        for p in args.precisions.split(",")
        for b in args.batch_sizes.split(",")
    ]
    payload = {"bench": "encode", "preset": encoder.preset.name, "random_weights": random_weights,
               "device": str(encoder.device), "machine": info, "results": rows}
    write_json(args.json_out, payload)
    return payload


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
