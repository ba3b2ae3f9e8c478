"""``python -m bench.quality``: recall@k (and mAP) per retrieval direction at each stage: exact, ANN, fused, re-ranked.

One run takes one dataset's held-out split and one preset:

- exact: brute-force cosine over the encoded vectors (numpy), the reference;
- ANN: the project's FAISS index (``index.build_index``) over the same vectors: its own type choice for the
  corpus size (Flat when small) unless ``--factory`` forces one (e.g. ``HNSW32``, ``IVF64,Flat``), tuned;
- fused: the corpus written as files, ingested into a temporary store (``Engine.open`` + ``Engine.ingest``) and
  searched with ``Engine.search`` (grouped by item, calibrated fusion across target modalities);
- re-ranked: ``Engine.search(..., rerank=True)``; recorded as null, with the reason, while the preset has none.

Datasets: ``scenes`` (synthetic test split, instance protocol, text<->image), ``esc10`` (fold 5 against the ten
class captions, class protocol), ``fsdd`` (speech of held-out speakers, digit images, digit words, class protocol).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import _quality_stages as stages
from bench._quality_data import (
    Direction, Suite, VectorCache, esc10_suite, fsdd_suite, scenes_suite, subsample, write_corpus,
)
from bench._quality_report import markdown, plots
from engine.datasets import shared_data_dir
from bench.report import machine_info, write_json
from engine.api import Engine
from index import InvalidIndexConfig, FaissIndex
from ingest import IngestOptions

DATASETS = ("scenes", "esc10", "fsdd")
QUERY_ENCODE_SAMPLE = 20


def load_suite(dataset: str, data: Path | None = None, n_scenes: int = 10_000, seed: int = 0) -> Suite:
    """The suite of a dataset name; ``esc10`` and ``fsdd`` read ``data`` (default ``shared_data_dir()``)."""
    if dataset == "scenes":
        return scenes_suite(n_scenes, seed)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    root = data or shared_data_dir()
    if root is None or not (root / dataset).is_dir():
        raise FileNotFoundError(f"{dataset} needs the shared corpora: ../shared/data/{dataset} or XMODAL_SHARED_DATA")
    return esc10_suite(root / "esc10") if dataset == "esc10" else fsdd_suite(root / "fsdd")


class _Run:
    """State shared by the directions of one run: the engine, vectors, query contents, ANN indexes."""

    def __init__(self, engine: Engine, files: dict[str, tuple[str, str]], factory: str | None, protocol: str) -> None:
        self.engine, self.factory, self.protocol = engine, factory, protocol
        self.uri_of = {key: path for path, key in files.items()}
        self.vectors = VectorCache(engine.encoder)
        self.contents: dict[tuple[str, str], Any] = {}
        self.ann: dict[tuple[str, tuple[str, ...]], FaissIndex | str] = {}
        self.ann_info: dict[str, Any] = {}

    def loaded(self, direction: Direction) -> list[Any]:
        """Decoded query contents, decoded once per item."""
        for q in direction.queries:
            if (q.modality, q.id) not in self.contents:
                self.contents[(q.modality, q.id)] = q.load()
        return [self.contents[(q.modality, q.id)] for q in direction.queries]

    def ann_parts(self, direction: Direction, corpus: np.ndarray) -> list[tuple[FaissIndex, np.ndarray]] | str:
        """One index per target modality over that part of the corpus, or why one could not be built."""
        parts = []
        for modality in direction.targets:
            columns = np.array([j for j, it in enumerate(direction.corpus) if it.modality == modality], dtype=np.int64)
            key = (modality, tuple(direction.corpus[j].id for j in columns))
            if key not in self.ann:
                try:
                    self.ann[key] = stages.build_ann(corpus[columns], self.factory)
                except (InvalidIndexConfig, RuntimeError) as exc:  # faiss raises RuntimeError, e.g. too few points for IVF
                    self.ann[key] = f"{self.factory or 'automatic'} index over {len(columns)} {modality} vectors: {exc}"
                name = modality if modality not in self.ann_info else f"{modality} ({direction.name})"
                index = self.ann[key]
                self.ann_info[name] = index if isinstance(index, str) else stages.describe(index)
            index = self.ann[key]
            if isinstance(index, str):
                return index
            parts.append((index, columns))
        return parts

    def query_encode_ms(self, direction: Direction, contents: list[Any]) -> float:
        """Mean time to encode one query alone (a sample of the direction's queries)."""
        modality = direction.queries[0].modality
        sample = contents[:QUERY_ENCODE_SAMPLE]
        _, ms = stages.timed(lambda i: self.engine.encoder.encode(modality, [sample[i]]), len(sample))
        return round(float(np.mean(ms)), 3)

    def measure(self, d: Direction) -> dict[str, Any]:
        """Every stage of one direction: figures, or None and the reason it could not run."""
        depth = len(d.corpus) if self.protocol == "class" else min(max(stages.CURVE_KS), len(d.corpus))
        queries, corpus = self.vectors(d.queries), self.vectors(d.corpus)
        results: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        results["exact"] = stages.exact(queries, corpus, depth)
        parts = self.ann_parts(d, corpus)
        if isinstance(parts, str):
            unavailable["ann"] = parts
        else:
            results["ann"] = stages.ann(queries, parts, len(d.corpus), depth)
        contents = self.loaded(d)
        columns = {self.uri_of[(it.modality, it.id)]: j for j, it in enumerate(d.corpus)}
        results["fused"] = stages.engine_search(self.engine, contents, d.targets, columns, len(d.corpus), depth, False)
        reranked = stages.reranked(self.engine, contents, d.targets, columns, len(d.corpus), depth)
        if isinstance(reranked, str):
            unavailable["reranked"] = reranked
        else:
            results["reranked"] = reranked
        figures = {s: stages.figures(sims, d.relevant, self.protocol, ms) for s, (sims, ms) in results.items()}
        _, counts = np.unique(corpus, axis=0, return_counts=True)
        return {"queries": len(d.queries), "corpus": len(d.corpus), "targets": list(d.targets), "depth": depth,
                "corpus_tied": int(counts[counts > 1].sum()),
                "stages": {s: figures.get(s) for s in ("exact", "ann", "fused", "reranked")},
                "unavailable": unavailable, "query_encode_ms": self.query_encode_ms(d, contents)}


def run(suite: Suite, preset: str, factory: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Ingest the suite's corpus into a temporary store and measure every direction at every stage."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-quality-") as tmp:
        files = write_corpus(suite, Path(tmp) / "corpus")
        engine = Engine.open(Path(tmp) / "store", preset, device=device)
        try:
            ingest_start = time.perf_counter()
            # tokens too, so the re-ranked stage can run even where the preset keeps its re-ranker off by default
            summary = engine.ingest([Path(tmp) / "corpus"], IngestOptions(workers=0, tokens=engine.reranker is not None))
            ingest_seconds = time.perf_counter() - ingest_start
            modalities = engine.store_modalities()  # also opens the engine's searcher before the first search
            stored = {item.uri for item in engine.store.catalog.items(status="ok")}
            missing = sorted(set(files) - stored)  # silently lost files would read as retrieval misses
            state = _Run(engine, files, factory, suite.protocol)
            directions = {}
            for d in suite.directions:
                print(f"{suite.name} {d.name}: {len(d.queries)} queries, {len(d.corpus)} corpus items", flush=True)
                directions[d.name] = state.measure(d)
            store = {"items": summary.added + summary.reused, "failed": summary.failed, "modalities": modalities,
                     "representations": summary.representations, "missing_from_store": len(missing),
                     "missing_examples": missing[:5],
                     "ingest_seconds": round(ingest_seconds, 2),
                     "indexes": {m: stages.describe(engine.store.index(engine.model, m))
                                 for m in sorted({t for d in suite.directions for t in d.targets})}}
        finally:
            engine.close()
    return {"bench": "quality", "preset": engine.model, "dataset": suite.name, "protocol": suite.protocol,
            "description": suite.description, "factory": factory, "ks": list(stages.KS),
            "encode_ms_per_item": {m: round(v, 3) for m, v in state.vectors.ms_per_item().items()},
            "directions": directions, "ann_indexes": state.ann_info, "store": store,
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure one dataset with one preset; print the Markdown table and write JSON, Markdown and plots if asked."""
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset name or JSON file")
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="which held-out set to measure")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--scenes", type=int, default=10_000, help="scenes generated; their ~10%% test split is used")
    parser.add_argument("--seed", type=int, default=0, help="scene generator seed (the one training used)")
    parser.add_argument("--factory", default=None, help="force the ANN stage's FAISS factory, e.g. HNSW32 or IVF64,Flat")
    parser.add_argument("--max-queries", type=int, default=None, help="seeded sample of at most N queries per direction")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", dest="json_out", help="write the results to this JSON file")
    parser.add_argument("--md", dest="md_out", help="write the Markdown table to this file")
    parser.add_argument("--plots", help="write PNG plots into this folder")
    args = parser.parse_args(argv)
    try:
        suite = load_suite(args.dataset, args.data, args.scenes, args.seed)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    payload = run(subsample(suite, args.max_queries), args.preset, args.factory, args.device)
    payload["max_queries"] = args.max_queries
    payload["load_average_1min"] = {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)}
    if args.dataset == "scenes":
        payload["scenes"] = {"generated": args.scenes, "seed": args.seed}
    payload["machine"] = machine_info()
    if args.plots:
        payload["plots"] = [str(p) for p in plots(payload, args.plots)]
    table = markdown(payload)
    print(table)
    write_json(args.json_out, payload)
    if args.md_out:
        Path(args.md_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md_out).write_text(table)
    return payload


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
