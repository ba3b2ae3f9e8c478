"""``xmodal ingest``: files, folders, manifests and COCO caption JSON into the store, incrementally."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from engine.engine import DEFAULT_PRESET, Engine
from ingest.decode import DecodeSettings
from ingest.pipeline import IngestOptions
from ingest.progress import IngestProgress
from ingest.sources import ScanOptions

EXIT_SOME_FAILED = 7


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``ingest`` subcommand."""
    parser = sub.add_parser(
        "ingest", help="add files, folders, manifests or COCO captions to the store",
        description="Ingest media into the store: folders (recursive), single files, CSV/TSV/JSONL manifests (media "
        "path plus captions and metadata, or text records), COCO caption JSON and Flickr captions.txt. Unchanged files "
        "are skipped, changed ones re-embedded, vanished ones marked deleted; identical content is embedded once. "
        "Commits per batch, so an interrupted run resumes where it stopped. Exit 0 when every file is in, "
        f"{EXIT_SOME_FAILED} when some failed, now or before and unchanged since (each failure is in the catalog and the "
        "summary with its reason; --retry-failed tries them again).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, manifests or caption files")
    parser.add_argument("--store", help="store folder (default $XMODAL_STORE or ./xmodal-store)")
    parser.add_argument("--preset", help=f"model preset (default: the store's, else {DEFAULT_PRESET})")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--random-weights", action="store_true", help="random weights of the preset's architecture")
    parser.add_argument("--batch-size", type=int, default=IngestOptions.batch_size, help="items per encoder batch")
    parser.add_argument("--workers", type=int, default=IngestOptions.workers, help="decoding processes (0: in-process)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="encoder precision")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB", help="only files matching (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files matching (repeatable)")
    parser.add_argument("--follow-symlinks", action="store_true", help="follow symlinks that lead out of a folder")
    parser.add_argument("--tokens", action="store_true",
                        help="store the re-ranker's token features even where the preset's re-ranker is off by default "
                        "(so `xmodal search --rerank` can use it)")
    parser.add_argument("--retry-failed", action="store_true", help="try again files that failed before")
    parser.add_argument("--max-image-pixels", type=int, default=DecodeSettings.max_image_pixels,
                        help="decompression-bomb guard: refuse larger images")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Ingest and print the summary."""
    options = IngestOptions(batch_size=args.batch_size, workers=args.workers, precision=args.precision,
                            retry_failed=args.retry_failed, tokens=args.tokens, decode=DecodeSettings(max_image_pixels=args.max_image_pixels))
    scan = ScanOptions(tuple(args.include), tuple(args.exclude), args.follow_symlinks)
    with Engine.open(args.store, args.preset, args.device, args.random_weights) as engine:
        with IngestProgress(enabled=not (args.no_progress or args.json)) as progress:
            summary = engine.ingest(args.paths, options, scan, progress.update)
    if args.json:
        print(json.dumps({**asdict(summary), "failures": [{"uri": u, "reason": r} for u, r in summary.failures]}, indent=2))
    else:
        print(f"ingested {summary.added} new or changed, {summary.reused} duplicates copied, {summary.touched} touched, "
              f"{summary.unchanged} unchanged, {summary.skipped_failed} previously failed skipped, "
              f"{summary.deleted} deleted, {summary.failed} failed ({summary.representations} representations, "
              f"{summary.seconds:.1f} s)")
        for uri, reason in summary.failures:
            print(f"  failed: {uri}: {reason}")
    return EXIT_SOME_FAILED if summary.failed or summary.skipped_failed else 0
