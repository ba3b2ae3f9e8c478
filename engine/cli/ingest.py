"""``xmodal ingest``: files, folders, manifests and COCO caption JSON into the store, incrementally."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict

from engine.cli.args import MAX_BATCH_SIZE, MAX_WORKERS, int_range
from engine.api.defaults import DEFAULT_PRESET

NAME = "ingest"
HELP = "add files, folders, manifests or COCO captions to the store"
EXIT_SOME_FAILED = 7
# IngestOptions' defaults, repeated so that `xmodal ingest --help` need not import torch (a test checks they agree)
BATCH_SIZE = 32
WORKERS = 1


def _positive(text: str) -> float:
    """A finite number above zero (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``ingest`` subcommand."""
    from ingest.decode import DecodeSettings
    from ingest.runner import DEFAULT_RUNNER, runner_names

    parser = sub.add_parser(
        NAME, help=HELP,
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
    parser.add_argument("--batch-size", type=int_range(1, MAX_BATCH_SIZE), default=BATCH_SIZE,
                        help=f"items per encoder batch (1 to {MAX_BATCH_SIZE})")
    parser.add_argument("--workers", type=int_range(0, MAX_WORKERS), default=WORKERS,
                        help=f"decoding processes (0: in-process; at most {MAX_WORKERS}); with --runner ray, encoder "
                        "actors (0: one per GPU, else one)")
    parser.add_argument("--runner", choices=runner_names(),
                        help=f"where files are decoded (default {DEFAULT_RUNNER}, or ray with --address): local worker "
                        "processes, inline (this process) or ray (decoding as Ray tasks, encoding in Ray actors; a local "
                        "Ray instance unless --address)")
    parser.add_argument("--address", metavar="ADDR", help="the Ray cluster to run on (host:port, with --runner ray)")
    parser.add_argument("--bulk", metavar="DIR", help="bulk mode: write this preset's vectors as Parquet files into "
                        "DIR (the catalog names the file of each); search them with `xmodal shards`")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="encoder precision")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB", help="only files matching (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files matching (repeatable)")
    parser.add_argument("--follow-symlinks", action="store_true", help="follow symlinks that lead out of a folder")
    parser.add_argument("--tokens", action="store_true",
                        help="store the re-ranker's token features even where the preset's re-ranker is off by default "
                        "(so `xmodal search --rerank` can use it)")
    parser.add_argument("--retry-failed", action="store_true", help="try again files that failed before")
    parser.add_argument("--reembed", action="store_true",
                        help="after the preset's weights changed (retrained or re-pointed), first re-embed the store's "
                        "vectors of the changed modalities in place (files read again, texts from the catalog; "
                        "resumable, swapped in whole), then ingest PATHs")
    parser.add_argument("--max-image-pixels", type=int_range(1), default=DecodeSettings.max_image_pixels,
                        help="decompression-bomb guard: refuse larger images")
    limits = DecodeSettings()
    parser.add_argument("--max-file-mb", type=_positive, nargs=3, metavar=("IMAGE", "AUDIO", "TEXT"),
                        default=[limits.max_image_bytes >> 20, limits.max_audio_bytes >> 20, limits.max_text_bytes >> 20],
                        help="largest image, audio and text file read, in MiB (a larger file fails with its size)")
    parser.add_argument("--max-audio-seconds", type=_positive, default=limits.max_audio_s,
                        help="longest audio, by its header and as decoded")
    parser.add_argument("--max-audio-samples", type=_positive, default=limits.max_audio_samples,
                        help="most samples (frames x channels) one audio file may decode to, checked in its header first")
    parser.add_argument("--decode-timeout", type=_positive, default=limits.timeout_s,
                        help="seconds a worker may go without progress (decoding an image, or one audio window) before "
                        "it is replaced and the file fails (not enforced with --workers 0)")
    parser.add_argument("--transcribe", action=argparse.BooleanOptionalAction, default=None,
                        help="speech transcripts of audio and video (Whisper tiny.en offline); the store remembers "
                             "the choice")
    parser.add_argument("--transcribe-model", metavar="MODEL",
                        help="another faster-whisper model for --transcribe: a model folder, or a size or hub id "
                             "already on this machine (never downloaded); the store remembers it")
    parser.add_argument("--speech-gate", action=argparse.BooleanOptionalAction, default=None,
                        help="drop transcript segments the speech gate finds are not speech (a sneeze or a bark that "
                             "Whisper wrote words over; on by default); the store remembers the choice, its audio "
                             "queries follow it, and clips transcribed the other way are transcribed again")
    parser.add_argument("--ocr", action=argparse.BooleanOptionalAction, default=None,
                        help="text read from images and video frames (PP-OCR); the store remembers the choice")
    parser.add_argument("--enrich-only", action="store_true",
                        help="run only the chosen enrichers over items already stored (PATHs are not scanned)")
    parser.add_argument("--enrich-threads", type=int_range(1, 64), default=1,
                        help="CPU threads for the speech and OCR models")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _enrich_choice(saved: tuple[str, ...], args: argparse.Namespace) -> tuple[str, ...] | None:
    """The store's enrichers with ``--transcribe/--no-transcribe`` and ``--ocr/--no-ocr`` applied (None: unchanged)."""
    flags = {"transcribe": args.transcribe, "ocr": args.ocr}
    if all(v is None for v in flags.values()):
        return None
    chosen = [n for n in saved if flags.get(n) is not False]
    return tuple(dict.fromkeys([*chosen, *(n for n, v in flags.items() if v)]))


def run(args: argparse.Namespace) -> int:
    """Ingest and print the summary."""
    from engine.api.facade import Engine
    from engine.models.enrichers import EnrichOptions
    from ingest.decode import DecodeSettings
    from ingest.pipeline import IngestOptions
    from ingest.progress import IngestProgress
    from ingest.runner import DEFAULT_RUNNER
    from ingest.sources import ScanOptions

    image_mb, audio_mb, text_mb = (int(mb * (1 << 20)) for mb in args.max_file_mb)
    decode = DecodeSettings(max_image_pixels=args.max_image_pixels, max_image_bytes=image_mb, max_audio_bytes=audio_mb,
                            max_text_bytes=text_mb, max_audio_s=args.max_audio_seconds,
                            max_audio_samples=int(args.max_audio_samples), timeout_s=args.decode_timeout)
    if args.address and args.runner not in (None, "ray"):
        from core.errors import InvalidInput

        raise InvalidInput(f"--address is the Ray cluster's: it needs --runner ray, not --runner {args.runner}")
    options = IngestOptions(batch_size=args.batch_size, workers=args.workers, precision=args.precision,
                            retry_failed=args.retry_failed, tokens=args.tokens, decode=decode,
                            runner=args.runner or ("ray" if args.address else DEFAULT_RUNNER),
                            address=args.address, bulk=args.bulk)
    scan = ScanOptions(tuple(args.include), tuple(args.exclude), args.follow_symlinks)
    with Engine.open(args.store, args.preset, args.device, args.random_weights, reembed=args.reembed) as engine:
        from engine.models.domain import photo_note

        note = photo_note(engine.encoder.preset, args.paths)
        if note:
            print(note, file=sys.stderr)
        enrich = _enrich_choice(engine.enrichment(), args)
        threads = EnrichOptions(device=str(engine.encoder.device), threads=args.enrich_threads,
                                models={"transcribe": args.transcribe_model} if args.transcribe_model else {},
                                speech_gate=engine.speech_gate(args.speech_gate, remember=False))
        if args.enrich_only:
            done = engine.reembed(options) if args.reembed else None
            summary = engine.enrich(enrich, options, threads)
            if done is not None:  # items that could not be read again stay failed: no folder is scanned here
                summary.reembedded, summary.failures[:0] = done.swapped, done.failures
                summary.failed += len(done.failures)
        else:
            with IngestProgress(enabled=not (args.no_progress or args.json)) as progress:
                summary = engine.ingest(args.paths, options, scan, progress.update, enrich, threads,
                                        reembed=args.reembed)
    if args.json:
        print(json.dumps({**asdict(summary), "failures": [{"uri": u, "reason": r} for u, r in summary.failures],
                          "notes": [{"uri": u, "note": n} for u, n in summary.notes]}, indent=2))
    else:
        print(f"ingested {summary.added} new or changed, {summary.reused} duplicates copied, {summary.touched} touched, "
              f"{summary.unchanged} unchanged, {summary.skipped_failed} previously failed skipped, "
              f"{summary.deleted} deleted, {summary.failed} failed ({summary.representations} representations, "
              f"{summary.seconds:.1f} s)")
        if summary.reembedded:
            print(f"re-embedded {summary.reembedded} stored vectors with the preset's new weights")
        if summary.annotated or summary.captions_removed:
            print(f"captions and metadata from manifests: {summary.captions_added} captions added, "
                  f"{summary.captions_removed} removed, metadata updated on {summary.metadata_updated}; "
                  f"{summary.annotated} items changed")
        if summary.skipped:
            print(f"skipped {sum(summary.skipped.values())} files: "
                  + ", ".join(f"{n} {reason}" for reason, n in summary.skipped.items()))
        for name, counts in summary.enriched.items():
            print(f"{name}: {counts.items} items read, {counts.with_text} with text, {counts.segments} segments, "
                  f"{len(counts.failures)} failed ({counts.seconds:.1f} s)")
            for uri, reason in counts.failures:
                print(f"  {name} failed: {uri}: {reason}")
        for uri, reason in summary.failures:
            print(f"  failed: {uri}: {reason}")
        for uri, note in summary.notes:
            print(f"  partly indexed: {uri}: {note}")
    return EXIT_SOME_FAILED if summary.failed or summary.skipped_failed else 0
