"""Sharded search on a loopback-only local Ray instance: equal to unsharded exact search on exact shards, recall on ANN
shards, replicas that fail over, a shard killed mid-query or too slow giving partial results within the timeout, and
the one search policy (fusion, filters, hydration) over sharded first stages giving the library's results."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index import IndexConfig, exact_search, neighbour_recall, open_store
from index.parquet import ParquetShardWriter
from index.shards import build_catalog_shards, build_shards, shard_folder
from engine.query.shard_servers import ServerOptions, start_shard_servers, stop_shard_servers, wait_ready
from engine.query.sharded import Coordinator, ShardedSearch, ShardedStore, catalog_rescore
from tests._index_data import unit_vectors

pytestmark = pytest.mark.slow  # one Ray instance and a few actor processes: ~30 s on the 2-core machine
pytest.importorskip("ray")

N, DIM = 4000, 32
TIGHT = ServerOptions(num_cpus=0.01)  # many small actors on a 2-CPU Ray instance


@pytest.fixture(scope="module")
def ray_local(ray_cluster):
    """The session's loopback-only local Ray cluster (tests/conftest.py: a head and a worker node, 1 CPU each);
    shard servers spread over both nodes."""
    import ray

    yield ray


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Clustered unit vectors with sparse ids in 8 Parquet files, 30 queries, exact shards and IVF shards."""
    root = tmp_path_factory.mktemp("sharded")
    x, ids = unit_vectors(N, DIM, seed=4), np.arange(N, dtype=np.int64) * 3 + 1
    with ParquetShardWriter(root / "parquet", DIM, rows_per_file=500) as writer:
        writer.write(ids, x)
    build_shards(writer.files, root / "exact", 2, IndexConfig(backend="exact"))
    build_shards(writer.files, root / "ivf", 2, IndexConfig(factory="IVF32,Flat"))
    return x, ids, unit_vectors(30, DIM, seed=77), root


@pytest.fixture(scope="module")
def servers(ray_local, corpus):
    """Shard servers started together (actor starts overlap): exact shards with 2 replicas, IVF shards, and exact
    shards that take 1 s per search (to be killed mid-query)."""
    root = corpus[3]
    sets = {"exact": start_shard_servers(root / "exact", replicas=2, options=TIGHT, ready_timeout_s=None),
            "ivf": start_shard_servers(root / "ivf", options=TIGHT, ready_timeout_s=None),
            "slow": start_shard_servers(root / "exact", options=ServerOptions(num_cpus=0.01, delay_s=1.0),
                                        ready_timeout_s=None)}
    try:
        infos = wait_ready([row for handles in sets.values() for row in handles])
        assert len({i["node"] for i in infos}) == 2  # spread over both worker nodes
        yield sets
    finally:
        for handles in sets.values():
            stop_shard_servers(handles)


def test_exact_shards_equal_unsharded_exact_search(ray_local, corpus, servers):
    x, ids, q, root = corpus
    servers = servers["exact"]
    coordinator = Coordinator(servers, timeout_s=30)
    D, I = exact_search(q, x, 10, ids)
    for _ in range(2):  # both replicas of each shard in turn
        out = coordinator.search(q, 10)
        assert not out.partial and np.array_equal(out.ids, I) and np.allclose(out.scores, D, atol=1e-5)
    ray_local.kill(servers[0][0], no_restart=True)  # one replica gone: its twin answers, nothing partial
    for _ in range(2):
        out = coordinator.search(q, 10)
        assert not out.partial and np.array_equal(out.ids, I)


def test_ann_shards_keep_recall(corpus, servers):
    x, ids, q, root = corpus
    out = Coordinator(servers["ivf"], timeout_s=30).search(q, 10)
    assert not out.partial and len(out.shard_ms) == 2
    assert neighbour_recall(out.ids, exact_search(q, x, 10, ids)[1], 10) >= 0.95


def test_killed_or_slow_shard_gives_partial_results_within_the_timeout(ray_local, corpus, servers):
    x, ids, q, root = corpus
    servers = servers["slow"]
    files = _sources(root / "exact", 0)  # vectors-0000J.parquet holds rows 500*J .. 500*J+499
    held = {int(i) for f in files for i in ids[500 * int(f[8:13]) : 500 * int(f[8:13]) + 500]}
    box: dict = {}
    query = threading.Thread(target=lambda: box.update(out=Coordinator(servers, timeout_s=8).search(q, 10)))
    start = time.perf_counter()
    query.start()
    time.sleep(0.4)  # the query is inside both shard servers now
    ray_local.kill(servers[1][0], no_restart=True)
    query.join(15)
    out = box["out"]
    assert out.partial and out.missing == (1,) and time.perf_counter() - start < 8
    assert (out.ids >= 0).all() and set(out.ids.ravel().tolist()) <= held  # shard 0's vectors only
    start = time.perf_counter()  # shard 0 alive but slower (1 s) than the timeout, shard 1 dead: no hang
    out = Coordinator(servers, timeout_s=0.3).search(q, 10)
    assert out.partial and out.missing == (0, 1) and (out.ids == -1).all()
    assert time.perf_counter() - start < 1.5


def _sources(folder: Path, shard: int) -> tuple[str, ...]:
    from index.shards import read_manifest

    return read_manifest(folder).shards[shard].sources


def test_the_one_policy_runs_over_sharded_first_stages(ray_local, tiny_store, tiny_encoder, tmp_path):
    from engine.api.facade import Engine
    from engine.query import Filters, QueryPart, SearchRequest

    with Engine.open(tiny_store.store, "tiny-random", create=False) as engine:
        model, catalog = engine.model, engine.store.catalog
        sets = [s.modality for s in catalog.vector_sets() if s.model == model]
        servers, coordinators = [], {}
        try:
            assert "text" in sets
            for modality in sets:  # text in 2 shards, the others in 1 (fewer actor processes to start)
                build_catalog_shards(catalog, tmp_path, model, modality, 2 if modality == "text" else 1,
                                     IndexConfig(backend="exact"), files_per_shard=1)
                servers.append(start_shard_servers(shard_folder(tmp_path, model, modality), options=TIGHT,
                                                   ready_timeout_s=None))
                coordinators[(model, modality)] = Coordinator(servers[-1], timeout_s=30,
                                                              rescore=catalog_rescore(catalog, model))
            wait_ready([row for handles in servers for row in handles])
            sharded = ShardedSearch(ShardedStore(engine.store, coordinators), engine.encoder, model,
                                    engine.reranker, engine.calibrations)
            for request in (SearchRequest((QueryPart("text", "a lighthouse on a cliff at dusk"),), k=5, rerank=False),
                            SearchRequest((QueryPart("text", "a sound"),), k=3, rerank=False,
                                          filters=Filters(modalities=("audio",)))):
                single = engine.run_search(request).results
                got = sharded.run(request)
                assert not got.partial and len(got.fanouts) == len(got.searched.plan.searched)
                assert [(r.item_id, r.match.representation_id) for r in got.results] == \
                       [(r.item_id, r.match.representation_id) for r in single]
                assert np.allclose([r.score for r in got.results], [r.score for r in single], atol=1e-5)
            ray_local.kill(servers[sets.index("text")][1][0], no_restart=True)  # one text shard down
            got = sharded.run(SearchRequest((QueryPart("text", "a lighthouse"),), k=5, rerank=False))
            assert got.partial and got.missing == (("text", 1),) and got.results
        finally:
            for handles in servers:
                stop_shard_servers(handles)


def test_cli_builds_searches_and_refuses_stale_shards(ray_local, tiny_store_copy, capsys):
    from engine.cli import main

    store = str(tiny_store_copy.store)
    assert main(["shards", "build", "--store", store, "--shards", "1", "--backend", "exact"]) == 0
    assert "1 Flat shards" in capsys.readouterr().out
    tight = ["--server-cpus", "0.01"]
    assert main(["shards", "search", "a lighthouse on a cliff at dusk", "--store", store, "-k", "3", "--json", *tight]) == 0
    out = json.loads(capsys.readouterr().out)
    assert not out["partial"] and out["missing"] == [] and len(out["results"]) == 3
    with open_store(store, create=False) as opened:  # the catalog moves on: the shards no longer reflect it
        with opened.catalog.atomic():
            opened.catalog.mark_deleted(out["results"][0]["item_id"])
    assert main(["shards", "search", "a lighthouse", "--store", store, *tight]) != 0
    assert "xmodal shards build" in capsys.readouterr().err
