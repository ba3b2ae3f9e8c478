"""``xmodal search``: any-to-any search from text, an image, an audio clip, or a weighted mix of them."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING

from engine.cli.args import MAX_DEPTH, MAX_K, MAX_RERANK_DEPTH, float_range, int_range
from engine.cli.preflight import readable_file
from core.errors import InvalidInput
from core.modalities import MODALITIES

if TYPE_CHECKING:
    from engine.query import QueryPart, SearchPlan

NAME = "search"
HELP = "search the store with text, an image or an audio clip"
# engine.query's FUSIONS and DEFAULT_FUSION, repeated so `search --help` need not import torch (a test checks)
FUSIONS = ("rrf", "calibrated", "probability")
DEFAULT_FUSION = "probability"
MODES = ("hybrid", "vector", "keyword")  # engine.query.keyword's MODES and DEFAULT_MODE, repeated for the same reason
DEFAULT_MODE = "hybrid"
log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``search`` subcommand."""
    parser = sub.add_parser(
        NAME, help=HELP,
        description="Search the store any-to-any. The query is TEXT, --image FILE, --audio FILE, or several of them "
        "mixed (e.g. --image q.jpg 'at night' --text-weight 0.5). Hits from each target modality are grouped by item "
        "and fused by the probability of a match; results under the calibrated floor are hidden unless --all.",
    )
    parser.add_argument("text", nargs="?", help="text query")
    parser.add_argument("--image", help="image file as (part of) the query")
    parser.add_argument("--audio", help="audio file as (part of) the query")
    parser.add_argument("--text-weight", type=float_range(-100.0, 100.0), default=1.0, help="weight of the text part in a mixed query")
    parser.add_argument("--targets", default="", help=f"comma-separated kinds of result item: {','.join(MODALITIES)} "
                        "(default: all); an item matches through any of its representations (a photo through its captions)")
    parser.add_argument("--indexes", default="", help="raw choice of the vector indexes searched, comma-separated "
                        "(default: all); for benchmarks of one direction, e.g. text->image vectors alone")
    parser.add_argument("--all", dest="show_all", action="store_true",
                        help="also show results under the calibrated floor (marked weak)")
    parser.add_argument("-k", "--k", type=int_range(1, MAX_K), default=10, help=f"number of results (1 to {MAX_K})")
    parser.add_argument("--depth", type=int_range(1, MAX_DEPTH), default=100,
                        help=f"ANN candidates per target modality (1 to {MAX_DEPTH})")
    parser.add_argument("--fusion", choices=FUSIONS, default=DEFAULT_FUSION,
                        help="how hits of several indexes merge: probability (each pair's fitted cosine->P(match); "
                        "calibrated z-scores for presets without a fit), calibrated or rrf; probability measured best")
    parser.add_argument("--mode", choices=MODES, default=DEFAULT_MODE,
                        help="hybrid: vector hits fused with keyword hits (words in captions, notes, transcripts, OCR "
                        "text, file names, metadata); vector or keyword alone")
    rr = parser.add_mutually_exclusive_group()
    rr.add_argument("--rerank", dest="rerank", action="store_true", default=None,
                    help="re-rank the fused candidates with the preset's attention re-ranker")
    rr.add_argument("--no-rerank", dest="rerank", action="store_false", help="keep the first-stage order")
    parser.add_argument("--rerank-depth", type=int_range(1, MAX_RERANK_DEPTH), default=None,
                        help=f"fused candidates re-ranked (1 to {MAX_RERANK_DEPTH}; default 50)")
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


def clock(seconds: float) -> str:
    """A moment as a player shows it: 83.4 -> "1:23", 3723 -> "1:02:03"."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def modality_list(text: str, option: str) -> list[str]:
    """Comma-separated modality names, each known, repeats dropped (order kept)."""
    names = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [n for n in names if n not in MODALITIES]
    if unknown:
        raise InvalidInput(f"{option}: unknown modality {', '.join(map(repr, unknown))} (known: {', '.join(MODALITIES)})")
    return names


def query_parts(args: argparse.Namespace) -> list[QueryPart]:
    """The query parts named on the command line; a query file that cannot be read is refused here, before any model loads."""
    from engine.query import QueryPart

    parts = []
    if args.image:
        parts.append(QueryPart("image", readable_file(args.image, "--image")))
    if args.audio:
        parts.append(QueryPart("audio", readable_file(args.audio, "--audio")))
    if args.text:
        parts.append(QueryPart("text", args.text, args.text_weight if parts else 1.0))
    if not parts:
        raise InvalidInput("give a text query, --image FILE or --audio FILE")
    return parts


def rerank_note(plan: SearchPlan, model: str) -> str | None:
    """What the CLI says when the search policy keeps the re-ranker off by default (no re-ranker, no held-out gain,
    no tokens in the store); None when it runs or was asked for either way."""
    from engine.query.policy import NO_RERANKER, NO_TOKENS, OFF_BY_DEFAULT

    if plan.reason == NO_RERANKER:
        return f"note: preset {model} has no attention re-ranker; results are first-stage (fused) order"
    if plan.reason == OFF_BY_DEFAULT:
        return (f"note: re-ranker off by default for {plan.query_modality}->{','.join(plan.off)} with preset {model}: "
                f"it did not beat the first stage on held-out data there (--rerank forces it)")
    if plan.reason == NO_TOKENS:
        return (f"note: this store holds no re-ranker tokens for {model}, so results are first-stage order; "
                f"`xmodal ingest --tokens` on the same paths adds them")
    return None


def run(args: argparse.Namespace) -> int:
    """Search and print the results (every argument is checked before torch and the model load)."""
    meta = {}
    for pair in args.meta:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--meta wants KEY=VALUE, got {pair!r}")
        meta[key] = value
    modalities = tuple(modality_list(",".join(args.modality), "--modality"))
    after, before = _epoch(args.after), _epoch(args.before)
    targets = modality_list(args.targets, "--targets")
    indexes = modality_list(args.indexes, "--indexes")
    for option, path in (("--image", args.image), ("--audio", args.audio)):
        if path:
            readable_file(path, option)
    if not (args.image or args.audio or args.text):
        raise InvalidInput("give a text query, --image FILE or --audio FILE")
    from engine.api.facade import Engine
    from engine.query import Filters, SearchRequest

    request = SearchRequest(tuple(query_parts(args)), tuple(targets), args.k, Filters(modalities, args.uri, after, before,
                            meta), args.depth, args.fusion, args.rerank, args.rerank_depth, tuple(indexes), True,
                            args.mode)
    with Engine.open(args.store, args.preset, args.device, create=False) as engine:
        from index.bulk import refuse_single_machine

        refuse_single_machine(engine.store.catalog, engine.model, engine.store_modalities())
        searched = engine.run_search(request)  # the note below reads the plan this search ran
        # a planned re-rank that kept the fused order (query outside its domain) says so, as a default-off one does
        note = f"note: {searched.note}" if searched.note else rerank_note(searched.plan, engine.model)
        results = searched.results
    weak = sum(r.weak for r in results)
    if not args.show_all:
        results = [r for r in results if not r.weak]
    if note:
        log.info("%s", note)  # shown with -v
    nothing_strong = f"no strong match ({weak} weaker results under the calibrated floor; --all shows them)"
    if args.json:
        if weak and not results:
            print(nothing_strong, file=sys.stderr)
        print(json.dumps([{"rank": rank, "order_score": r.order_score, "ordered_by": r.ordered_by, **asdict(r)}
                          for rank, r in enumerate(results, 1)], indent=2, default=str))
        return 0
    if weak and not results:
        print(nothing_strong)
    elif not results:
        print("no results")
    else:  # the first number orders the list; "cosine" is the matched representation's first-stage cosine
        print(f"{'#':>3}  {results[0].ordered_by + ' score':>12}  {'cosine':>6}  kind  item")
    for rank, r in enumerate(results, 1):
        where = f" @ {r.match.offset_seconds:.1f}s" if r.match.offset_seconds is not None else ""
        if r.match.char_offset is not None:
            where = f" @ char {r.match.char_offset}"
        if r.modality == "video" and r.match.offset_seconds is not None:  # the moment, as a player shows it
            where = f" at {clock(r.match.offset_seconds)} ({r.match.kind})"
        said = f"  “{r.match.text[:70]}”" if r.match.text and r.match.kind != r.modality else ""
        mark = "  (weak)" if r.weak else ""
        print(f"{rank:>3}. {r.order_score:12.4f}  {r.first_stage:6.3f}  {r.modality:<5} {r.uri}{where}{said}{mark}")
    return 0
