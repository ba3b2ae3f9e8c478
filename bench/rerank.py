"""``python -m bench.rerank``: first stage, fused and re-ranked recall@1/5/10, and the re-ranker's added ms per query.

Held-out data: the synthetic compositional scenes' test split (text<->image, COCO protocol) and ESC-10 fold 5
(audio<->the ten class captions, class protocol). Per direction:

- first stage: exact cosine over the encoded held-out items;
- fused: ``Engine.search(rerank=False)`` over a store holding those items (vectors and tokens written through the
  catalog API, indexed by the index layer), i.e. ANN, grouping by item and calibrated fusion;
- re-ranked: ``Engine.search(rerank=True)`` at re-rank depths 50 and 100, with the median ms each search takes
  with and without re-ranking (the difference is what the re-ranker adds, query encoding included in both).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.datasets import SceneConfig, generate_scenes, load_esc, shared_data_dir
from bench.report import machine_info, write_json
from engine.api import Engine
from engine import RerankerUnavailable
from engine.models import Encoder, load_encoder
from engine.train import encode_items
from index import open_store

KS = (1, 5, 10)
DEPTHS = (50, 100)


def _store(root: Path, engine_model: str, corpus: list[Any], modality: str, vectors: np.ndarray,
           tokens: list[np.ndarray]) -> dict[int, str]:
    """Write corpus items (one representation each) with vectors and tokens; returns item id -> dataset item id."""
    store = open_store(root)
    ids: dict[int, str] = {}
    with store.catalog.atomic():
        reps = []
        for item in corpus:
            text = item.content if modality == "text" else None
            item_id = store.catalog.upsert_item(f"/bench/{item.id}", modality, sha256=item.id, size=1, mtime=0.0)
            reps.append(store.catalog.add_representation(item_id, "text" if text else modality, modality, text=text))
            ids[item_id] = item.id
        store.catalog.write_vectors(engine_model, np.array(reps), vectors)
        store.catalog.write_tokens(engine_model, np.array(reps), tokens)
    store.sync()
    store.close()
    return ids


def _recall(ranked: list[list[str]], relevant: list[frozenset[str]]) -> dict[str, float]:
    return {f"R@{k}": round(float(np.mean([bool(set(r[:k]) & rel) for r, rel in zip(ranked, relevant)])), 4) for k in KS}


def run_direction(encoder: Encoder, reranker: Path | None, task: Any, query_modality: str, corpus_modality: str,
                  limit: int | None) -> dict[str, Any]:
    """All stages of one retrieval task, timed per query."""
    queries = list(task.queries[:limit] if limit else task.queries)
    corpus = list(task.corpus)
    encoded = encode_items(encoder, corpus_modality, [c.load() for c in corpus])
    q_inputs = [q.load() for q in queries]
    q_vectors = encode_items(encoder, query_modality, q_inputs).vectors.numpy()
    sims = q_vectors @ encoded.vectors.numpy().T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :max(KS)]
    relevant = [task.relevant[q.id] for q in queries]
    out: dict[str, Any] = {"queries": len(queries), "corpus": len(corpus),
                           "first_stage": _recall([[corpus[j].id for j in row] for row in order], relevant)}
    with tempfile.TemporaryDirectory() as tmp:
        tokens = [encoded.tokens[i, : int(encoded.lengths[i])].numpy() for i in range(len(corpus))]
        ids = _store(Path(tmp), encoder.preset.name, corpus, corpus_modality, encoded.vectors.numpy(), tokens)
        engine = Engine(open_store(Path(tmp)), encoder, reranker)
        try:
            for q in q_inputs[:3]:  # warm: index loaded, calibration estimated
                engine.search(q, [corpus_modality], max(KS), rerank=False)
            stages: dict[str, tuple[list[list[str]], list[float]]] = {}
            plans = [("fused", False, None)] + [(f"reranked@{d}", True, d) for d in DEPTHS] if engine.reranker else [("fused", False, None)]
            for name, rerank, depth in plans:
                ranked, ms = [], []
                try:
                    for q in q_inputs:
                        t0 = time.perf_counter()
                        results = engine.search(q, [corpus_modality], max(KS), depth=max(100, depth or 0),
                                                rerank=rerank, rerank_depth=depth)
                        ms.append((time.perf_counter() - t0) * 1000)
                        ranked.append([ids[r.item_id] for r in results])
                except RerankerUnavailable as exc:
                    out[name] = {"unavailable": str(exc)}
                    continue
                stages[name] = (ranked, ms)
            if engine.reranker is not None:
                out["on_by_default"] = engine.reranker.is_enabled(query_modality, corpus_modality)
        finally:
            engine.close()
    base = statistics.median(stages["fused"][1])
    for name, (ranked, ms) in stages.items():
        out[name] = {**_recall(ranked, relevant), "ms_per_query_p50": round(statistics.median(ms), 3)}
        if name != "fused":
            out[name]["added_ms_p50"] = round(statistics.median(ms) - base, 3)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every direction on the scenes and ESC-10, print a table, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.rerank", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset (its re-ranker unless --reranker)")
    parser.add_argument("--reranker", type=Path, help="re-ranker directory (default: the preset's)")
    parser.add_argument("--scenes", type=int, default=10_000, help="scenes generated; the ~10%% test split is used")
    parser.add_argument("--seed", type=int, default=0, help="scene generator seed (the one training used)")
    parser.add_argument("--queries", type=int, default=1000, help="at most this many queries per direction")
    parser.add_argument("--data", type=Path, help="shared data folder (default ../shared/data)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: a query's cost on one core)")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    encoder = load_encoder(args.preset)
    results: dict[str, Any] = {"bench": "rerank", "preset": args.preset, "reranker": str(args.reranker or "preset"),
                               "threads": args.threads, "directions": {}}
    scenes = generate_scenes(SceneConfig(n_scenes=args.scenes, seed=args.seed))
    tasks = [("scenes", "text", "image", scenes.retrieval("text", "image")),
             ("scenes", "image", "text", scenes.retrieval("image", "text"))]
    data = args.data or shared_data_dir()
    if data is not None and (data / "esc10").is_dir():
        esc = load_esc(data / "esc10")
        tasks += [("esc10-fold5", "audio", "text", esc.retrieval("audio", "text")),
                  ("esc10-fold5", "text", "audio", esc.retrieval("text", "audio"))]
    else:
        print("ESC-10 not found (../shared/data/esc10): scenes only")
    for name, q, c, task in tasks:
        key = f"{name}:{q}->{c}"
        print(f"{key}: {len(task.queries)} queries, {len(task.corpus)} corpus items", flush=True)
        results["directions"][key] = run_direction(encoder, args.reranker, task, q, c, args.queries)
        _print_row(key, results["directions"][key])
    results["machine"] = machine_info()
    write_json(args.json_out, results)
    return results


def _print_row(key: str, d: dict[str, Any]) -> None:
    for stage in [s for s in d if s == "first_stage" or s == "fused" or s.startswith("reranked")]:
        r = d[stage]
        if "unavailable" in r:
            print(f"  {stage:<13} unavailable: {r['unavailable']}")
            continue
        extra = f"  {r['ms_per_query_p50']:.2f} ms/query" if "ms_per_query_p50" in r else ""
        extra += f" (+{r['added_ms_p50']:.2f} ms)" if "added_ms_p50" in r else ""
        print(f"  {stage:<13} R@1 {r['R@1']:.4f}  R@5 {r['R@5']:.4f}  R@10 {r['R@10']:.4f}{extra}", flush=True)


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
