"""``xmodal bench peers``: xmodal against what users would pick instead, measured side by side in one run.

- rclip-style brute force (vectors as blobs in SQLite, loaded into numpy, ``features @ query.T`` + a full argsort)
  against xmodal's own index (``index.build_index``: its choice of type, trained and tuned) on the same seeded
  512-d vectors: single-query latency, interleaved query by query, and xmodal's recall@10 against rclip's exact top 10.
- clip-retrieval's ``clip inference``, installed into its own venv, against xmodal ingest on the same JPEG folder
  with the same architecture (open_clip ViT-B-32, random weights: nothing pretrained is downloadable here), fp32,
  the same batch size and decode workers; model load is timed on both sides, interpreter start-up on neither.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import _clip_retrieval as cr
from bench import _rclip as rclip
from bench._errors import BenchError, InvalidBenchArgs, PeerUnavailable
from bench._synthetic_vectors import ClusteredSpec, ClusteredVectors
from bench.report import machine_info, write_json
from bench.speed import parse_sizes, size_label

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("rclip", "clip-retrieval")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``xmodal bench peers`` (shared with ``python -m bench.peers``)."""
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated comparisons to run, of {', '.join(PARTS)}")
    p.add_argument("--sizes", default="100k,1M", help="corpus sizes of the rclip comparison")
    p.add_argument("--queries", type=int, default=100, help="timed single queries per size (rclip comparison)")
    p.add_argument("--images", type=int, default=300, help="JPEGs in the folder both ingesters embed")
    p.add_argument("--rounds", type=int, default=2, help="alternating xmodal / clip-retrieval rounds; best of each kept")
    p.add_argument("--batch-size", type=int, default=32, help="encoder batch size, both sides")
    p.add_argument("--workers", type=int, default=1, help="decode worker processes, both sides")
    p.add_argument("--peer-venv", type=Path, default=RESULTS / "tmp" / "peers" / "clip-retrieval-venv",
                   help="where clip-retrieval is installed (created when missing)")
    p.add_argument("--workdir", type=Path, default=RESULTS / "tmp" / "peers", help="scratch folder (databases reused)")
    p.add_argument("--json", dest="json_out", type=Path, default=RESULTS / "peers.json", help="results file")


def _ms(a: np.ndarray) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(a, 50)) * 1e3, 3), "p99_ms": round(float(np.percentile(a, 99)) * 1e3, 3)}


def rclip_vs_xmodal(n: int, n_queries: int, work: Path, k: int = 10) -> dict[str, Any]:
    """Single-query latency of rclip-style brute force and of xmodal's index over the same ``n`` vectors."""
    from index import build_index, neighbour_recall

    gen = ClusteredVectors(ClusteredSpec(dim=512))
    db = work / f"rclip-{size_label(n)}.db"
    t0 = time.perf_counter()
    written = rclip.count_vectors(db) != n
    if written:
        db.unlink(missing_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        rclip.write_vectors(db, gen.corpus_chunks(n, chunk=50_000))
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, features = rclip.load_features(db)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = build_index(ids, features)
    t_build = time.perf_counter() - t0
    queries = gen.queries(n_queries + 5)
    for q in queries[:5]:  # warm both paths
        rclip.brute_force_top_k(features, ids, q, k)
        index.search(q[None], k)
    queries = queries[5:]
    t_r, t_x = np.empty(n_queries), np.empty(n_queries)
    found_r, found_x = np.empty((n_queries, k), np.int64), np.empty((n_queries, k), np.int64)
    for i, q in enumerate(queries):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):  # alternate who goes first
            t0 = time.perf_counter()
            if side == 0:
                found_r[i] = rclip.brute_force_top_k(features, ids, q, k)
                t_r[i] = time.perf_counter() - t0
            else:
                found_x[i] = index.search(q[None], k)[1][0]
                t_x[i] = time.perf_counter() - t0
    row = {"n": n, "dim": 512, "queries": n_queries, "k": k, "xmodal_factory": index.factory,
           "xmodal_params": index.params.to_dict(), "xmodal_build_seconds": round(t_build, 2),
           "rclip_sqlite_write_seconds": round(t_write, 2) if written else None,
           "rclip_load_seconds": round(t_load, 2), "rclip": _ms(t_r), "xmodal": _ms(t_x),
           "latency_ratio_rclip_over_xmodal": round(float(np.median(t_r) / np.median(t_x)), 2),
           "xmodal_recall_at_10_vs_rclip": round(neighbour_recall(found_x, found_r, k), 4)}
    print(f"rclip-style vs xmodal at {size_label(n)}: rclip p50 {row['rclip']['p50_ms']} ms (+{t_load:.1f} s to load "
          f"from SQLite), xmodal {index.factory} p50 {row['xmodal']['p50_ms']} ms: ratio "
          f"{row['latency_ratio_rclip_over_xmodal']}x, recall@10 {row['xmodal_recall_at_10_vs_rclip']}", flush=True)
    return row


def _xmodal_ingest_seconds(folder: Path, store: Path, batch_size: int, workers: int) -> tuple[float, int]:
    """Model load plus a whole ingest into a fresh store (fp32, random ViT-B-32 weights)."""
    from engine.api import Engine
    from engine.models import load_encoder
    from index import open_store
    from ingest import IngestOptions

    shutil.rmtree(store, ignore_errors=True)
    t0 = time.perf_counter()
    encoder = load_encoder("clip-vit-b32", device="cpu", random_weights=True, modalities=["image"])
    engine = Engine(open_store(store), encoder)
    try:
        summary = engine.ingest([folder], IngestOptions(batch_size=batch_size, workers=workers, precision="fp32"))
    finally:
        engine.close()
    return time.perf_counter() - t0, summary.added


def clip_retrieval_vs_xmodal(args: argparse.Namespace, python: str = sys.executable) -> dict[str, Any]:
    """Images/s of ``clip inference`` and ``xmodal ingest`` on one folder; ``{"skipped": why}`` when the peer cannot run."""
    from engine.datasets import shared_data_dir
    from bench.ingest import make_corpus

    work: Path = args.workdir
    try:
        py = cr.ensure_venv(args.peer_venv, python)
        if shared_data_dir() is None:
            raise PeerUnavailable("the image folder is built from ../shared/data/coco-mini, which is not here")
        folder = work / "images"
        if len(list(folder.glob("*.jpg"))) != args.images:
            shutil.rmtree(folder, ignore_errors=True)
            make_corpus(folder, args.images)
        checkpoint = cr.random_checkpoint(py, work / "vit-b-32-random.pt")
        ours, theirs, peer_info = [], [], {}
        for r in range(args.rounds):
            for side in (("x", "c") if r % 2 == 0 else ("c", "x")):
                if side == "x":
                    seconds, added = _xmodal_ingest_seconds(folder, work / "xmodal-store", args.batch_size, args.workers)
                    if added != args.images:
                        raise BenchError(f"xmodal ingest added {added} of {args.images} images")
                    ours.append(args.images / seconds)
                else:
                    peer_info = cr.infer(py, folder, work / "clip-retrieval-out", checkpoint, args.batch_size, args.workers)
                    if peer_info["embedded"] != args.images:
                        raise PeerUnavailable(f"clip inference embedded {peer_info['embedded']} of {args.images} images")
                    theirs.append(args.images / peer_info["seconds"])
                print(f"  round {r + 1}: {'xmodal ingest' if side == 'x' else 'clip inference'} "
                      f"{(ours if side == 'x' else theirs)[-1]:.2f} img/s", flush=True)
    except PeerUnavailable as exc:
        print(f"clip-retrieval: skipped: {exc}", flush=True)
        return {"skipped": str(exc)}
    row = {"images": args.images, "batch_size": args.batch_size, "workers": args.workers, "precision": "fp32",
           "model": "open_clip ViT-B-32, random weights", "rounds": args.rounds,
           "peer": {"package": "clip-retrieval", "torch": peer_info.get("torch"), "torch_threads": peer_info.get("torch_threads")},
           "xmodal_img_per_s": [round(v, 2) for v in ours], "clip_retrieval_img_per_s": [round(v, 2) for v in theirs],
           "throughput_ratio_xmodal_over_clip_retrieval": round(max(ours) / max(theirs), 3)}
    print(f"clip-retrieval vs xmodal ingest on {args.images} JPEGs: xmodal {max(ours):.2f} img/s, clip inference "
          f"{max(theirs):.2f} img/s: ratio {row['throughput_ratio_xmodal_over_clip_retrieval']}", flush=True)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the requested comparisons, writing JSON after each; returns the payload."""
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise InvalidBenchArgs(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    payload: dict[str, Any] = {"bench": "peers", "machine": machine_info(), "loadavg_start": list(os.getloadavg())}
    if "rclip" in parts:
        payload["rclip"] = {}
        for n in parse_sizes(args.sizes):
            payload["rclip"][size_label(n)] = rclip_vs_xmodal(n, args.queries, args.workdir)
            write_json(args.json_out, payload)
    if "clip-retrieval" in parts:
        payload["clip_retrieval"] = clip_retrieval_vs_xmodal(args)
    payload["loadavg_end"] = list(os.getloadavg())
    write_json(args.json_out, payload)
    print(f"wrote {args.json_out}")
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m bench.peers``."""
    parser = argparse.ArgumentParser(prog="xmodal bench peers", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
