"""``xmodal search``: any-to-any search from text, an image, an audio clip, or a weighted mix of them."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime

from engine.engine import Engine
from engine.errors import InvalidInput
from engine.query import DEFAULT_FUSION, FUSIONS, Filters, QueryPart, heaviest_part


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``search`` subcommand."""
    parser = sub.add_parser(
        "search", help="search the store with text, an image or an audio clip",
        description="Search the store any-to-any. The query is TEXT, --image FILE, --audio FILE, or several of them "
        "mixed (e.g. --image q.jpg 'at night' --text-weight 0.5). Hits from each target modality are grouped by item "
        "and fused (reciprocal-rank or calibrated scores); filters still return k results.",
    )
    parser.add_argument("text", nargs="?", help="text query")
    parser.add_argument("--image", help="image file as (part of) the query")
    parser.add_argument("--audio", help="audio file as (part of) the query")
    parser.add_argument("--text-weight", type=float, default=1.0, help="weight of the text part in a mixed query")
    parser.add_argument("--targets", default="", help="comma-separated target modalities (default: all)")
    parser.add_argument("--k", type=int, default=10, help="number of results")
    parser.add_argument("--depth", type=int, default=100, help="ANN candidates per target modality")
    parser.add_argument("--fusion", choices=FUSIONS, default=DEFAULT_FUSION,
                        help="how lists of several modalities merge (default: calibrated, which measured better)")
    rr = parser.add_mutually_exclusive_group()
    rr.add_argument("--rerank", dest="rerank", action="store_true", default=None,
                    help="re-rank the fused candidates with the preset's attention re-ranker")
    rr.add_argument("--no-rerank", dest="rerank", action="store_false", help="keep the first-stage order")
    parser.add_argument("--rerank-depth", type=int, default=None, help="fused candidates re-ranked (default 50)")
    parser.add_argument("--uri", help="only items whose uri matches this glob")
    parser.add_argument("--modality", action="append", default=[], help="only items of this modality (repeatable)")
    parser.add_argument("--after", help="only items modified at or after this ISO date/time")
    parser.add_argument("--before", help="only items modified at or before this ISO date/time")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata equality (repeatable)")
    parser.add_argument("--store", help="store folder (default $XMODAL_STORE or ./xmodal-store)")
    parser.add_argument("--preset", help="model preset (default: the store's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.set_defaults(func=run)
    return parser


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError as exc:
        raise InvalidInput(f"not an ISO date/time: {text!r}") from exc


def query_parts(args: argparse.Namespace) -> list[QueryPart]:
    """The query parts named on the command line."""
    parts = []
    if args.image:
        parts.append(QueryPart("image", args.image))
    if args.audio:
        parts.append(QueryPart("audio", args.audio))
    if args.text:
        parts.append(QueryPart("text", args.text, args.text_weight if parts else 1.0))
    if not parts:
        raise InvalidInput("give a text query, --image FILE or --audio FILE")
    return parts


def rerank_note(engine: Engine, parts: list[QueryPart], targets: list[str], rerank: bool | None) -> str | None:
    """What the CLI says when the re-ranker stays off by default (no re-ranker, or no held-out gain)."""
    if rerank is not None:
        return None
    if engine.reranker is None:
        return f"note: preset {engine.model} has no attention re-ranker; results are first-stage (fused) order"
    heaviest = heaviest_part(parts).modality
    searched = targets or engine.store_modalities()
    off = [t for t in searched if not engine.reranker.is_enabled(heaviest, t)]
    if off:
        return (f"note: re-ranker off by default for {heaviest}->{','.join(off)} with preset {engine.model}: it did "
                f"not beat the first stage on held-out data there (--rerank forces it)")
    if not engine.store.catalog.has_tokens(engine.model):
        return (f"note: this store holds no re-ranker tokens for {engine.model}, so results are first-stage order; "
                f"`xmodal ingest --tokens` on the same paths adds them")
    return None


def run(args: argparse.Namespace) -> int:
    """Search and print the results."""
    meta = {}
    for pair in args.meta:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--meta wants KEY=VALUE, got {pair!r}")
        meta[key] = value
    filters = Filters(tuple(args.modality), args.uri, _epoch(args.after), _epoch(args.before), meta)
    targets = [t for t in args.targets.split(",") if t]
    parts = query_parts(args)
    with Engine.open(args.store, args.preset, args.device, create=False) as engine:
        note = rerank_note(engine, parts, targets, args.rerank)
        results = engine.search(parts, targets, args.k, filters, args.depth, args.fusion, args.rerank, args.rerank_depth)
    if note:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2, default=str))
        return 0
    if not results:
        print("no results")
    for rank, r in enumerate(results, 1):
        reranked = f"  rerank {r.rerank_score:7.3f}" if r.rerank_score is not None else ""
        where = f" @ {r.match.offset_seconds:.1f}s" if r.match.offset_seconds is not None else ""
        if r.match.char_offset is not None:
            where = f" @ char {r.match.char_offset}"
        said = f"  “{r.match.text[:70]}”" if r.match.text and r.match.kind in ("caption", "passage") else ""
        print(f"{rank:>3}. {r.score:8.4f}  cos {r.first_stage:6.3f}  {r.modality:<5} {r.uri}{where}{said}{reranked}")
    return 0
