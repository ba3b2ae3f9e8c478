"""``xmodal demo``: ingest the demo corpus with the shipped small model and print results in every direction."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.demo import build_corpus, demo_queries
from engine.engine import DEFAULT_PRESET, Engine
from engine.query import QueryPart
from ingest.pipeline import IngestOptions


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand."""
    parser = sub.add_parser(
        "demo", help="ingest a small demo corpus and search it in every direction",
        description="Ingest the demo corpus (ESC-10 and FSDD clips shipped in data/demo, plus generated digit images and "
        "synthetic scenes) with the shipped small model, offline, then print the top results of queries in each "
        "direction: text->audio, text->image, image->text, audio->text, image->audio, audio->image.",
    )
    parser.add_argument("--store", default="xmodal-demo-store", help="store folder for the demo (default ./xmodal-demo-store)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help=f"model preset (default {DEFAULT_PRESET})")
    parser.add_argument("--k", type=int, default=3, help="results per query")
    parser.set_defaults(func=run)
    return parser


def _short(uri: str) -> str:
    path, _, record = uri.partition("#")
    return f"{Path(path).name}#{record}" if record else str(Path(path).relative_to(Path(path).parents[1]))


def run(args: argparse.Namespace) -> int:
    """Build, ingest, query, print."""
    store = Path(args.store)
    paths = build_corpus(store / "generated")
    with Engine.open(store, args.preset) as engine:
        summary = engine.ingest(paths, IngestOptions(workers=0))
        print(f"demo store {store}: {summary.added} new, {summary.unchanged} unchanged, {summary.failed} failed "
              f"(preset {engine.model})\n")
        for query in demo_queries(store / "generated"):
            shown = query.value if query.modality == "text" else _short(query.value)
            print(f"{query.label}: {shown!r}")
            for rank, r in enumerate(engine.search(QueryPart(query.modality, query.value), query.targets, args.k), 1):
                said = f"  “{r.match.text}”" if r.match.text else ""
                print(f"   {rank}. {r.first_stage:6.3f}  {_short(r.uri)}{said}")
            print()
    return 0
