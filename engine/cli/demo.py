"""``xmodal demo``: ingest the demo corpus with the shipped small model and print results in every direction."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.args import MAX_K, int_range
from engine.api.defaults import DEFAULT_PRESET

NAME = "demo"
HELP = "ingest a small demo corpus and search it in every direction"


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand."""
    parser = sub.add_parser(
        NAME, help=HELP,
        description="Ingest the demo corpus (ESC-10 and FSDD clips shipped in data/demo, plus generated digit images and "
        "synthetic scenes) with the shipped small model, offline, then print the top results of queries in each "
        "direction: text->audio, text->image, image->text, audio->text, image->audio, audio->image.",
    )
    parser.add_argument("--store", default="xmodal-demo-store", help="store folder for the demo (default ./xmodal-demo-store)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help=f"model preset (default {DEFAULT_PRESET})")
    parser.add_argument("-k", "--k", type=int_range(1, MAX_K), default=3, help=f"results per query (1 to {MAX_K})")
    parser.set_defaults(func=run)
    return parser


def _short(uri: str) -> str:
    path, _, record = uri.partition("#")
    return f"{Path(path).name}#{record}" if record else str(Path(path).relative_to(Path(path).parents[1]))


def run(args: argparse.Namespace) -> int:
    """Build, ingest, query, print."""
    from engine.api.demo import LEGEND, build_corpus, demo_queries, result_lines
    from engine.api.facade import Engine
    from engine.query import QueryPart
    from ingest.pipeline import IngestOptions

    store = Path(args.store)
    paths = build_corpus(store / "generated")
    with Engine.open(store, args.preset) as engine:
        summary = engine.ingest(paths, IngestOptions(workers=0))
        print(f"demo store {store}: {summary.added} new, {summary.unchanged} unchanged, {summary.failed} failed "
              f"(preset {engine.model})\n{LEGEND}\n")
        for query in demo_queries(store / "generated"):
            shown = query.value if query.modality == "text" else _short(query.value)
            print(f"{query.label}: {shown!r}")
            results = engine.search(QueryPart(query.modality, query.value), query.targets, args.k)
            print("\n".join(result_lines(results, _short)))
            print()
    return 0
