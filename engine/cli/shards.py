"""``xmodal shards``: index shards of a store's vector sets, served by Ray actors and searched through a coordinator.

``build`` exports each vector set of the preset to Parquet (a bulk store's sets are read from the Parquet files its
ingest wrote) and builds N index shards (trained once, added in parallel); ``serve`` starts named shard servers on a
Ray cluster (they outlive the command); ``search`` runs the one search policy over the shards (servers started for
the search, or the served ones with ``--prefix``) and says when results are partial; ``stop`` ends served ones. Ray, FAISS and torch are imported inside ``run``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

NAME = "shards"
HELP = "sharded search: build index shards, serve them on Ray, search them"
EXIT_PARTIAL = 0  # partial results are results: the note on stderr (and "partial" in --json) says so


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``shards`` subcommand and its actions."""
    parser = sub.add_parser(NAME, help=HELP, description=__doc__)
    parser.add_argument("action", choices=("build", "serve", "search", "stop"))
    parser.add_argument("query", nargs="?", help="text query (search)")
    parser.add_argument("--store", default=None, help="store folder (default: $XMODAL_STORE or ./xmodal-store)")
    parser.add_argument("--preset", default=None, help="preset (default: the one the store was last used with)")
    parser.add_argument("--modality", action="append", default=[], help="vector set(s) to shard (default: all)")
    parser.add_argument("--shards", type=int, default=4, help="index shards per vector set (build)")
    parser.add_argument("--backend", default=None, help="index backend of the shards (default: the store's)")
    parser.add_argument("--factory", default=None, help="FAISS factory string (default: chosen for the corpus size)")
    parser.add_argument("--workers", type=int, default=1, help="shards added at once in this process (build)")
    parser.add_argument("--ray", action="store_true", help="add shards as Ray tasks (build)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local loopback-only instance)")
    parser.add_argument("--replicas", type=int, default=1, help="shard-server actors per shard")
    parser.add_argument("--server-cpus", type=float, default=0.5, help="CPUs Ray reserves for each shard server")
    parser.add_argument("--threads", type=int, default=1, help="search threads of each shard server")
    parser.add_argument("--prefix", default=None, help="names of served shard servers (serve, search, stop)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds a search waits for the shards")
    parser.add_argument("-k", "--k", type=int, default=10, help="results")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run one action."""
    from core.errors import InvalidInput

    if args.action == "search" and not args.query:
        raise InvalidInput("xmodal shards search needs a text query")
    if args.action in ("serve", "stop") and not (args.address and args.prefix):
        raise InvalidInput(f"xmodal shards {args.action} needs --address (a running Ray cluster) and --prefix")
    from engine.api.facade import Engine

    with Engine.open(args.store, args.preset, create=False) as engine:
        sets = _sets(engine, args.modality)
        if args.action == "build":
            return _build(engine, sets, args)
        from engine.query import ray_session

        with ray_session(args.address):
            if args.action == "serve":
                return _serve(engine, sets, args)
            if args.action == "stop":
                return _stop(engine, sets, args)
            return _search(engine, sets, args)


def _sets(engine: Any, wanted: list[str]) -> list[str]:
    from core.errors import InvalidInput
    from index.bulk import bulk_sets

    held = list(dict.fromkeys([*engine.store_modalities(), *(m for _, m, n in bulk_sets(engine.store.catalog,
                                                                                       engine.model) if n)]))
    unknown = [m for m in wanted if m not in held]
    if unknown:
        raise InvalidInput(f"the store holds no {engine.model} vectors of {', '.join(unknown)} (it holds {', '.join(held)})")
    return wanted or held


def _build(engine: Any, sets: list[str], args: argparse.Namespace) -> int:
    from index import IndexConfig, thread_mapper
    from index.bulk import bulk_sets

    config = IndexConfig(backend=args.backend or engine.store.config.backend, factory=args.factory)
    bulk = {m for _, m, n in bulk_sets(engine.store.catalog, engine.model) if n}
    for modality in sets:
        # a bulk set's shards come from the Parquet files its ingest wrote; any other set is exported first
        if modality in bulk:
            from index.bulk_shards import build_bulk_shards as build_catalog_shards
        else:
            from index import build_catalog_shards
        if args.ray:
            from engine.query import ray_mapper, ray_session

            with ray_session(args.address):
                manifest = build_catalog_shards(engine.store.catalog, engine.store.root, engine.model, modality,
                                                args.shards, config, mapper=ray_mapper())
        else:
            manifest = build_catalog_shards(engine.store.catalog, engine.store.root, engine.model, modality,
                                            args.shards, config, mapper=thread_mapper(args.workers))
        print(f"{engine.model}/{modality}: {manifest.ntotal} vectors in {len(manifest.shards)} {manifest.factory} shards "
              f"({', '.join(str(s.ntotal) for s in manifest.shards)}), params {manifest.params}, recall@10 "
              f"{manifest.recall}, catalog generation {manifest.generation}")
    return 0


def _folders(engine: Any, sets: list[str]) -> dict[str, Any]:
    """Each vector set's shard folder, refused when missing or built from another catalog state."""
    from index import IndexCorrupt, check_current, read_manifest, shard_folder

    folders = {}
    for modality in sets:
        folder = shard_folder(engine.store.root, engine.model, modality)
        why = check_current(read_manifest(folder), engine.store.catalog)
        if why:
            raise IndexCorrupt(f"{engine.model}/{modality}: {why} (`xmodal shards build`)")
        folders[modality] = folder
    return folders


def _options(args: argparse.Namespace, folders: dict[str, Any]) -> Any:
    """Shard-server options whose CPU reservations fit the cluster: every server of every set must be placed at
    once (three sets of two shards at 0.5 CPU each never all start on a 2-CPU local instance), so each asks for at
    most its share of the cluster's CPUs."""
    import ray

    from index import ServerOptions, read_manifest

    servers = sum(len(read_manifest(folder).shards) for folder in folders.values()) * args.replicas
    cpus = float(ray.cluster_resources().get("CPU", 0.0))
    share = min(args.server_cpus, cpus / servers) if servers and cpus > 0 else args.server_cpus
    return ServerOptions(threads=args.threads, num_cpus=round(share, 4))


def _serve(engine: Any, sets: list[str], args: argparse.Namespace) -> int:
    from engine.query import start_shard_servers

    folders = _folders(engine, sets)
    options = _options(args, folders)
    for modality, folder in folders.items():
        handles = start_shard_servers(folder, args.replicas, options, prefix=f"{args.prefix}-{modality}",
                                      detached=True)
        print(f"{engine.model}/{modality}: {len(handles)} shards x {args.replicas} replicas serving as "
              f"{args.prefix}-{modality}-<shard>-<replica>")
    return 0


def _stop(engine: Any, sets: list[str], args: argparse.Namespace) -> int:
    from engine.query import connect_shard_servers, stop_shard_servers
    from index import read_manifest

    for modality, folder in _folders(engine, sets).items():
        shards = len(read_manifest(folder).shards)
        stop_shard_servers(connect_shard_servers(f"{args.prefix}-{modality}", shards, args.replicas))
    return 0


def _search(engine: Any, sets: list[str], args: argparse.Namespace) -> int:
    from engine.query import (Coordinator, QueryPart, SearchRequest, ShardedSearch, ShardedStore, catalog_rescore,
                              connect_shard_servers, start_shard_servers, stop_shard_servers)
    from index import read_manifest
    from index.bulk import BulkCatalog

    catalog = BulkCatalog(engine.store.catalog, engine.model)
    started, coordinators = [], {}
    folders = _folders(engine, sets)
    options = None if args.prefix else _options(args, folders)
    try:
        for modality, folder in folders.items():
            if args.prefix:
                handles = connect_shard_servers(f"{args.prefix}-{modality}", len(read_manifest(folder).shards),
                                                args.replicas)
            else:
                handles = start_shard_servers(folder, args.replicas, options)
                started.append(handles)
            coordinators[(engine.model, modality)] = Coordinator(handles, args.timeout,
                                                                 catalog_rescore(catalog, engine.model))
        sharded = ShardedStore(engine.store, coordinators)
        sharded.catalog = catalog  # with bulk vectors: their Parquet files answer vector reads
        search = ShardedSearch(sharded, engine.encoder, engine.model, engine.reranker, engine.calibrations)
        got = search.run(SearchRequest((QueryPart("text", args.query),), k=args.k, rerank=False))
    finally:
        for handles in started:
            stop_shard_servers(handles)
    if got.partial:
        shards = ", ".join(f"{engine.model}/{modality} shard {s}" for modality, s in got.missing)
        print(f"partial results: {shards} did not answer within {args.timeout} s", file=sys.stderr)
    if args.json:
        print(json.dumps({"partial": got.partial, "missing": [list(m) for m in got.missing],
                          "results": [{"rank": n, "item_id": r.item_id, "uri": r.uri, "modality": r.modality,
                                       "score": r.score} for n, r in enumerate(got.results, 1)]}, indent=2))
        return EXIT_PARTIAL
    for n, r in enumerate(got.results, 1):
        print(f"{n:>3}. {r.score:8.4f}  {r.modality:<5} {r.uri}")
    if not got.results:
        print("no results")
    return EXIT_PARTIAL
