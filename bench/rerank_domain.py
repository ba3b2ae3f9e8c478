"""``python -m bench.rerank_domain``: the re-ranker in and out of its domain, per variant of where its score starts,
how far its correction may move a candidate, and when it may move one at all.

In domain: the synthetic scenes' test split (what the shipped re-ranker was trained on), text<->image.
Out of domain: sklearn's held-out digit images against the digit captions mixed with the scenes' captions
(image->text), and the digit captions against digit and scene images (text->image), the demo's situation.
Every variant re-orders the same fused top-50 of the same queries (first stage, corrections and domain scores
computed once per query); ``engine default`` is ``Engine.search`` as shipped, a check that the library does what
the shipped variant computes. Per variant: recall@1/5 and how many queries' top 1 it made right or wrong.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.datasets import RetrievalTask, SceneConfig, generate_scenes, load_sklearn_digits
from bench.rerank import _store
from bench.report import machine_info, write_json
from engine.api import Engine
from engine.models import Encoder, load_encoder
from engine.query import (DEFAULT_FUSION, Filters, QueryPart, bounded, corrections, encode_query_with_tokens,
                          ordering, starts)
from engine.rerank import Reranker, TokenBatch
from engine.train import encode_items
from index import open_store

BOUNDS = (0.0, 0.25, 0.5, 1.0, 2.0, math.inf)
POOL = 50
SHIPPED = "fused start, domain p10 (query only)"  # what engine.query.rerank does with xmodal-mini's settings


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


def variants(q: dict[str, Any], bound: float, domain_levels: dict[str, dict[str, float]]) -> dict[str, np.ndarray]:
    """Every variant's ordering scores for one query's pool (``q``: its first stage, corrections, domain scores)."""
    start, units, first, corr = q["start"], q["units"], q["first"], q["corr"]
    every = np.ones(len(corr), dtype=bool)
    b = bound
    out = {"first stage (fused order)": start,
           "cosine start (before), bound 0.25": bounded(first, corr, 0.25),
           "cosine start (before), unbounded": first + corr,
           "fused start, no domain check": ordering(start, corr, units, every, b)}
    for level, thresholds in domain_levels.items():
        q_in = q["query_domain"] >= thresholds[q["query_modality"]]
        c_in = q["candidate_domain"] >= thresholds[q["candidate_modality"]]
        out[f"fused start, domain {level} (query only)"] = ordering(start, corr, units, every & q_in, b)
        out[f"fused start, domain {level} (query and candidates)"] = ordering(start, corr, units, c_in & q_in, b)
    margin = (start[0] - start[1]) / max(units[0], 1e-9) if len(start) > 1 else math.inf
    out["fused start, top margin < 2 x bound"] = ordering(start, corr, units, every & (margin < 2 * b), b)
    return out


def _hits(order: list[int], ids: list[str], relevant: frozenset[str]) -> tuple[bool, bool]:
    ranked = [ids[i] for i in order]
    return ranked[0] in relevant, bool(set(ranked[:5]) & relevant)


def sweep(encoder: Encoder, task: RetrievalTask, query_modality: str, corpus_modality: str,
          limit: int) -> dict[str, Any]:
    """Recall@1/5 per variant and bound for one direction, plus the shipped engine's own search."""
    queries = list(task.queries[:limit])
    corpus = list(task.corpus)
    encoded = encode_items(encoder, corpus_modality, [c.load() for c in corpus])
    pools: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tokens = [encoded.tokens[i, : int(encoded.lengths[i])].numpy() for i in range(len(corpus))]
        ids = _store(Path(tmp), encoder.preset.name, corpus, corpus_modality, encoded.vectors.numpy(), tokens)
        engine = Engine(open_store(Path(tmp)), encoder)
        try:
            catalog, model, reranker, searcher = engine.store.catalog, engine.model, engine.reranker, engine.searcher
            domain = reranker.domain
            for q in queries:
                loaded = q.load()
                vector, modality, q_tokens = encode_query_with_tokens(encoder, [QueryPart(query_modality, loaded)])
                results = searcher.search(vector, modality, [corpus_modality], POOL, Filters(), 100, DEFAULT_FUSION)
                begin = starts(results, modality, searcher.calibration, searcher.calibrations, DEFAULT_FUSION)
                reps = np.array([r.match.representation_id for r in results], dtype=np.int64)
                stored = catalog.tokens_for(model, reps)
                vectors = catalog.vectors_for(model, reps)
                side = TokenBatch.from_arrays([stored[int(r)] for r in reps], vectors, corpus_modality,
                                              reranker.config.max_tokens)
                query = TokenBatch.from_arrays([q_tokens], vector, modality, reranker.config.max_tokens)
                shipped = engine.search(loaded, [corpus_modality], 5)  # the library's default path
                pools.append({"start": begin.start, "units": begin.units, "first": begin.first,
                              "corr": corrections(reranker, query, side, begin.first),
                              "query_domain": float(domain.scores(modality, vector)[0]),
                              "candidate_domain": domain.scores(corpus_modality, vectors),
                              "query_modality": modality, "candidate_modality": corpus_modality,
                              "items": [ids[r.item_id] for r in results], "relevant": task.relevant[q.id],
                              "engine": [ids[r.item_id] for r in shipped]})
        finally:
            engine.close()
    levels = {level: {m: float(v[level]) for m, v in domain.extra["held_out_percentiles"].items()}
              for level in ("1.0", "5.0", "10.0")}
    levels = {f"p{float(k):g}": v for k, v in levels.items()}
    return {"queries": len(queries), "corpus": len(corpus),
            "query_in_domain_p5": round(float(np.mean([p["query_domain"] >= levels["p5"][query_modality]
                                                       for p in pools])), 4),
            "by_bound": {str(b): _score(pools, lambda p: variants(p, b, levels)) for b in BOUNDS},
            "engine default": _engine_score(pools)}


def _score(pools: list[dict[str, Any]], make: Callable[[dict[str, Any]], dict[str, np.ndarray]]) -> dict[str, Any]:
    """R@1, R@5 and top-1 wins/losses against the first stage, per variant."""
    hits: dict[str, list[tuple[bool, bool]]] = {}
    for p in pools:
        for name, s in make(p).items():
            order = sorted(range(len(s)), key=lambda i: (-float(s[i]), i))
            hits.setdefault(name, []).append(_hits(order, p["items"], p["relevant"]))
    base = [h[0] for h in hits["first stage (fused order)"]]
    return {name: {"R@1": round(float(np.mean([x[0] for x in h])), 4),
                   "R@5": round(float(np.mean([x[1] for x in h])), 4),
                   "top1_won": int(sum(x[0] and not b for x, b in zip(h, base))),
                   "top1_lost": int(sum(b and not x[0] for x, b in zip(h, base)))} for name, h in hits.items()}


def _engine_score(pools: list[dict[str, Any]]) -> dict[str, float]:
    return {"R@1": round(float(np.mean([p["engine"][0] in p["relevant"] for p in pools])), 4),
            "R@5": round(float(np.mean([bool(set(p["engine"][:5]) & p["relevant"]) for p in pools])), 4)}


def _shipped_bound(encoder: Encoder) -> float:
    """The bound the preset's re-ranker ships with (its config's ``max_correction``)."""
    path = encoder.preset.reranker
    return Reranker.load(path).config.max_correction if path else math.nan


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Score every variant over in-domain and out-of-domain directions; print a table, write JSON."""
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
    bound = str(_shipped_bound(encoder))
    out: dict[str, Any] = {"bench": "rerank_domain", "preset": args.preset, "pool": POOL, "shipped": SHIPPED,
                           "shipped_bound": bound, "directions": {}}
    for name, q, c, task in tasks:
        key = f"{name}:{q}->{c}"
        out["directions"][key] = d = sweep(encoder, task, q, c, args.queries)
        print(f"{key} ({d['queries']} queries, {d['corpus']} corpus; queries in the domain: "
              f"{d['query_in_domain_p5']:.3f}; engine default R@1 {d['engine default']['R@1']:.4f})", flush=True)
        for b, by_variant in d["by_bound"].items():
            for v, r in by_variant.items():
                if b == bound or v == SHIPPED:
                    print(f"  bound {b:>5}  {v:<52} R@1 {r['R@1']:.4f}  R@5 {r['R@5']:.4f}  "
                          f"top-1 +{r['top1_won']} -{r['top1_lost']}", flush=True)
    out["machine"] = machine_info()
    write_json(args.json_out, out)
    return out


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
