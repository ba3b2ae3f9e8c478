"""Re-embedding in place after retraining (``xmodal ingest --reembed``) against a fresh ingest with the new weights.

A store is ingested with xmodal-mini (COCO-mini val photos with their captions, ESC-10 fold 5 clips); then its image
and text heads are "retrained" (a seeded perturbation of the shipped weights, written as a re-pointed preset of the
same name). Measured in one run: the re-embed of the stored vectors of the two changed modalities, a fresh ingest
with the new weights into a new store, and the largest difference between the two stores' vectors (equal within
float rounding is the claim). Audio vectors are untouched (their weights did not change) and are not re-encoded.

    python -m bench.reembed --json bench/results/reembed.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._main import run_main
from bench.report import machine_info, write_json
from engine.api import Engine
from engine.datasets import shared_data_dir

MODEL = "xmodal-mini-retrained"


def _presets(root: Path, seed: int) -> tuple[Path, Path]:
    """(original, retrained) presets of one name: shipped towers and re-ranker; image and text heads copied, the second
    copy perturbed (seeded)."""
    import torch
    from safetensors.torch import load_file, save_file

    from engine.models import get_preset

    mini = get_preset("xmodal-mini").path.parent  # type: ignore[union-attr]
    raw = json.loads((mini / "xmodal-mini.json").read_text())
    out = []
    for tag, noise in (("before", 0.0), ("after", 0.05)):
        heads = root / f"heads-{tag}"
        for m in ("image", "text"):
            shutil.copytree(mini / "heads" / m, heads / m)
            if noise:
                path = heads / m / "model.safetensors"
                state = load_file(path)
                gen = torch.Generator().manual_seed(seed)
                save_file({k: v + noise * v.std() * torch.randn(v.shape, generator=gen) for k, v in state.items()}, path)
        preset = {**raw, "name": MODEL,
                  "towers": {m: {**t, "source": f"local:{mini / t['source'][6:]}"} if t["source"].startswith("local:")
                             else t for m, t in raw["towers"].items()},
                  "heads": {m: ({**h, "path": str(heads / m)} if m in ("image", "text") else h)
                            for m, h in raw["heads"].items()},
                  "reranker": str(mini / raw["reranker"])}
        path = root / f"{tag}.json"
        path.write_text(json.dumps(preset))
        out.append(path)
    return out[0], out[1]


def _vectors(store: Path) -> dict[tuple, bytes]:
    with sqlite3.connect(store / "catalog.db") as conn:
        rows = conn.execute(
            """SELECT i.uri, r.kind, r.modality, r.offset_seconds, r.text, v.vector FROM vectors v
               JOIN representations r ON r.id = v.representation_id JOIN items i ON i.id = r.item_id""").fetchall()
    return {tuple(r[:5]): r[5] for r in rows}


def _ingest(store: Path, preset: Path, paths: list[str], reembed: bool = False) -> tuple[float, object]:
    start = time.perf_counter()
    with Engine.open(store, preset=preset, reembed=reembed) as engine:
        summary = engine.ingest(paths, reembed=reembed)
    return time.perf_counter() - start, summary


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; print and return the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.reembed", description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=80, help="ESC-10 fold-5 clips (at most 80)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench.reembed needs the shared data folder (coco-mini, esc10): set XMODAL_SHARED_DATA")
    coco, esc = data / "coco-mini", data / "esc10"
    clips = sorted(esc.glob("*/5-*.ogg"))[: args.clips]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        before, after = _presets(root, args.seed)
        paths = [str(coco / "val2017"), str(coco / "annotations" / "captions_val2017.json"), *map(str, clips)]
        first, _ = _ingest(root / "store", before, paths)
        old = _vectors(root / "store")
        seconds, summary = _ingest(root / "store", after, paths, reembed=True)
        fresh, _ = _ingest(root / "fresh", after, paths)
        new, truth = _vectors(root / "store"), _vectors(root / "fresh")
        diff = max(float(np.abs(np.frombuffer(new[k], "<f4") - np.frombuffer(truth[k], "<f4")).max()) for k in truth)
        kept = sum(new[k] == old[k] for k in old if k[2] == "audio")
    figures = {
        "vectors": len(truth), "reembedded": summary.reembedded, "audio_vectors_kept_bytewise": kept,
        "same_keys_as_fresh": set(new) == set(truth), "max_abs_diff_vs_fresh": diff,
        "first_ingest_s": round(first, 2), "reembed_plus_incremental_ingest_s": round(seconds, 2),
        "fresh_ingest_s": round(fresh, 2), "failures": summary.failures,
        "machine": machine_info(), "note": "busy shared machine (2 cores, several agents); compare within the run",
    }
    print(f"{len(truth)} vectors; re-embedded {summary.reembedded} (image + text) in place; audio kept {kept}")
    print(f"first ingest {first:.1f} s; --reembed {seconds:.1f} s; fresh ingest with the new weights {fresh:.1f} s")
    print(f"same representations as the fresh store: {figures['same_keys_as_fresh']}; max |diff| {diff:.2e}")
    if args.json:
        write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    raise SystemExit(run_main(main))
