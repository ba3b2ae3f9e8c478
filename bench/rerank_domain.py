"""``python -m bench.rerank_domain``: how far the re-ranker's correction may move a candidate, in and out of its domain.

In domain: the synthetic scenes' test split (what the shipped re-ranker was trained on), text<->image.
Out of domain: sklearn's held-out digit images against the digit captions mixed with the scenes' captions
(image->text), and the digit captions against digit and scene images (text->image), the demo's situation.
Per direction and per bound (``RerankerConfig.max_correction``, calibrated first-stage units; 0 = first stage,
``inf`` = the unbounded re-ranker), recall@1/5 of the fused top-50 re-ordered by ``apply.bounded``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from engine.datasets import RetrievalTask, SceneConfig, generate_scenes, load_sklearn_digits
from bench.rerank import _store
from bench.report import machine_info, write_json
from engine.api import Engine
from engine.models import Encoder, load_encoder
from engine.query import Filters, QueryPart, bounded, corrections, encode_query_with_tokens
from engine.rerank import TokenBatch
from engine.train import encode_items
from index import open_store

BOUNDS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, math.inf)
POOL = 50


def mixed_tasks(scenes: Any, digits: Any, limit: int) -> list[tuple[str, str, str, RetrievalTask]]:
    """Digits against a corpus that also holds the scenes (captions or images): the out-of-domain directions."""
    it, ti = digits.retrieval("image", "text"), digits.retrieval("text", "image")
    s_it, s_ti = scenes.retrieval("image", "text"), scenes.retrieval("text", "image")
    return [("digits+scenes", "image", "text",
             RetrievalTask("digits image->text + scene captions", it.queries[:limit], it.corpus + s_it.corpus[:limit],
                           it.relevant)),
            ("digits+scenes", "text", "image",
             RetrievalTask("digit captions -> digit + scene images", ti.queries, ti.corpus + s_ti.corpus[:limit],
                           ti.relevant))]


def sweep(encoder: Encoder, task: RetrievalTask, query_modality: str, corpus_modality: str,
          limit: int) -> dict[str, Any]:
    """Recall@1/5 per bound for one direction (first stage and corrections computed once per query)."""
    queries = list(task.queries[:limit])
    corpus = list(task.corpus)
    encoded = encode_items(encoder, corpus_modality, [c.load() for c in corpus])
    hits = {b: [] for b in BOUNDS}
    with tempfile.TemporaryDirectory() as tmp:
        tokens = [encoded.tokens[i, : int(encoded.lengths[i])].numpy() for i in range(len(corpus))]
        ids = _store(Path(tmp), encoder.preset.name, corpus, corpus_modality, encoded.vectors.numpy(), tokens)
        engine = Engine(open_store(Path(tmp)), encoder)
        try:
            catalog, model, reranker = engine.store.catalog, engine.model, engine.reranker
            for q in queries:
                vector, modality, q_tokens = encode_query_with_tokens(encoder, [QueryPart(query_modality, q.load())])
                results = engine.searcher.search(vector, modality, [corpus_modality], POOL, Filters(), 100)
                cal = engine.searcher.calibration(modality, corpus_modality)
                reps = np.array([r.match.representation_id for r in results], dtype=np.int64)
                stored = catalog.tokens_for(model, reps)
                side = TokenBatch.from_arrays([stored[int(r)] for r in reps], catalog.vectors_for(model, reps),
                                        corpus_modality, reranker.config.max_tokens)
                first = (np.array([r.first_stage for r in results], np.float32) - cal.mean) / max(cal.std, 1e-6)
                query = TokenBatch.from_arrays([q_tokens], vector, modality, reranker.config.max_tokens)
                corr = corrections(reranker, query, side, first)
                relevant = task.relevant[q.id]
                for b in BOUNDS:
                    s = bounded(first, corr, b) if b != math.inf else first + corr
                    order = sorted(range(len(results)), key=lambda i: (-float(s[i]), -results[i].score, results[i].item_id))
                    ranked = [ids[results[i].item_id] for i in order]
                    hits[b].append((ranked[0] in relevant, bool(set(ranked[:5]) & relevant)))
        finally:
            engine.close()
    return {"queries": len(queries), "corpus": len(corpus),
            "by_bound": {str(b): {"R@1": round(float(np.mean([h[0] for h in hits[b]])), 4),
                                  "R@5": round(float(np.mean([h[1] for h in hits[b]])), 4)} for b in BOUNDS}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Sweep the bound over in-domain and out-of-domain directions; print a table, write JSON."""
    import torch

    parser = argparse.ArgumentParser(prog="python -m bench.rerank_domain", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset whose re-ranker is measured")
    parser.add_argument("--scenes", type=int, default=10_000, help="scenes generated (the ~10%% test split is used)")
    parser.add_argument("--queries", type=int, default=400, help="at most this many queries per direction")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    encoder = load_encoder(args.preset)
    scenes = generate_scenes(SceneConfig(n_scenes=args.scenes, seed=0))
    digits = load_sklearn_digits(seed=0, size=64)
    tasks = [("scenes", "text", "image", scenes.retrieval("text", "image")),
             ("scenes", "image", "text", scenes.retrieval("image", "text"))] + mixed_tasks(scenes, digits, args.queries)
    out: dict[str, Any] = {"bench": "rerank_domain", "preset": args.preset, "pool": POOL, "directions": {}}
    for name, q, c, task in tasks:
        key = f"{name}:{q}->{c}"
        out["directions"][key] = d = sweep(encoder, task, q, c, args.queries)
        print(f"{key} ({d['queries']} queries, {d['corpus']} corpus)", flush=True)
        for b, r in d["by_bound"].items():
            print(f"  bound {b:>5}  R@1 {r['R@1']:.4f}  R@5 {r['R@5']:.4f}", flush=True)
    out["machine"] = machine_info()
    write_json(args.json_out, out)
    return out


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
