"""``xmodal train``: train a preset's heads (and small towers) on paired data; writes heads and a preset file."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from engine.cli.args import MAX_BATCH_SIZE, float_range, int_range
from core.errors import InvalidInput

if TYPE_CHECKING:
    from engine.train.trainer import TrainConfig

NAME = "train"
HELP = "train projection heads (and small towers) on paired data"


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand (its defaults come from the training configs, which import torch)."""
    from engine.train.augment import AugmentConfig
    from engine.train.recipe import DATA_KINDS
    from engine.train.trainer import TrainConfig

    parser = sub.add_parser(
        NAME, help=HELP,
        description="Train a preset's heads, and its small towers unless --heads-only, with symmetric InfoNCE on "
        "paired data. Frozen towers' features and small towers' inputs are cached on disk, so a second run reuses "
        "them. Writes towers/, heads/, NAME.json (a preset usable at once by ingest and search) and "
        f"reports/train_report.json into --out (reports sit in a subfolder so --out can join XMODAL_PRESET_PATH). Data kinds: {', '.join(DATA_KINDS)}.",
    )
    parser.add_argument("--preset", required=True, help="preset name or JSON file to start from")
    parser.add_argument("--data", action="append", required=True, metavar="KIND[:ARG][@MODS]",
                        help="training data, repeatable: esc10:DIR, fsdd:DIR, digits, digits3:FSDD_DIR, coco:JSON, "
                        "flickr:captions.txt, manifest:FILE, synthetic[:N]; append @image,text to train only those pairs")
    parser.add_argument("--out", help="output directory (required, except with --bind-audio-from-text: without it the "
                        "audio head is written where the preset looks for it, e.g. clip-vit-b32's heads.audio.path)")
    parser.add_argument("--name", help="name of the trained preset (default PRESET-trained)")
    parser.add_argument("--epochs", type=int_range(1, 100_000), default=TrainConfig.epochs, help="maximum epochs")
    parser.add_argument("--batch-size", type=int_range(2, MAX_BATCH_SIZE), default=TrainConfig.batch_size,
                        help=f"pairs per step (2 to {MAX_BATCH_SIZE})")
    parser.add_argument("--lr", type=float_range(0.0, 10.0), default=TrainConfig.lr, help="AdamW learning rate")
    parser.add_argument("--patience", type=int_range(0), default=TrainConfig.patience, help="early-stopping patience in epochs")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed for everything random")
    parser.add_argument("--rows-per-set", type=int_range(0, 10_000_000), default=TrainConfig.rows_per_set,
                        help="rows drawn from every pair set each epoch (0: each set once), so small sets are not drowned")
    parser.add_argument("--crop-frames", type=int_range(0, 100_000), default=AugmentConfig.crop_frames,
                        help="train audio on random windows of this many log-mel frames (0: whole clips)")
    parser.add_argument("--lowpass-db", type=float, default=AugmentConfig.lowpass_db,
                        help="train audio through a random low-pass: bins above a random cut-off lowered by 0 to this "
                        "many dB (0: off; xmodal-mini's members use 40)")
    parser.add_argument("--lowpass-band", type=float, nargs=2, default=AugmentConfig.lowpass_band, metavar=("LOW", "HIGH"),
                        help="where the low-pass cut-off falls, as fractions of the mel bins (xmodal-mini: 0.55 0.8)")
    parser.add_argument("--time-budget", type=float_range(0.0), default=TrainConfig.time_budget_s,
                        help="stop after the epoch that passes this many seconds (0: no limit)")
    parser.add_argument("--heads-only", action="store_true", help="keep small towers frozen at their saved weights")
    parser.add_argument("--bind-audio-from-text", action="store_true",
                        help="fit a CLAP audio head into the preset's text space from the data's captions alone "
                        "(CLAP text -> target text, ridge regression) instead of training")
    parser.add_argument("--add-members", type=int_range(0, 64), default=0, metavar="N",
                        help="instead of training --preset, add N members to the --member-modality tower of the trained "
                        "preset file --preset, each a fresh small tower with its own head trained against the preset's "
                        "frozen other modalities; the ensemble averages them (the preset's folder is copied to --out first)")
    parser.add_argument("--member-modality", default="audio", choices=("audio", "image"), help="tower that --add-members grows")
    parser.add_argument("--member-variant", action="append", default=[], metavar="JSON",
                        help="tower config overrides for new members, taken in turn, e.g. '{\"temporal\": false}'")
    parser.add_argument("--cache", help="feature cache directory (default OUT/cache)")
    parser.add_argument("--json", action="store_true", help="print the training report as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train and report the best epoch's validation recall."""
    from engine.train.recipe import parse_data_spec, train_preset

    logging.getLogger("engine.train").setLevel(logging.INFO)
    specs = [parse_data_spec(d) for d in args.data]
    if args.bind_audio_from_text:
        return _bind(args, specs)
    if not args.out:
        raise InvalidInput("--out DIR is required (only --bind-audio-from-text can write into the preset itself)")
    config = train_config(args)
    if args.add_members:
        return _members(args, specs, config)
    path, report = train_preset(args.preset, specs, args.out, args.name, config, not args.heads_only, args.cache)
    if args.json:
        print(json.dumps({"preset": str(path), "best_epoch": report.best_epoch, "best_score": report.best_score,
                          "seconds": report.seconds, "history": report.history}, indent=2))
    else:
        best = report.history[report.best_epoch] if report.best_epoch >= 0 else {}
        print(f"trained in {report.seconds:.1f} s; best epoch {report.best_epoch} (validation score {report.best_score:.3f})")
        for name, r in best.get("val_r1", {}).items():
            print(f"  {name}: R@1 a->b {r['a_to_b']:.3f}  b->a {r['b_to_a']:.3f}")
        print(f"preset written to {path}; use it with --preset {path} (or add {path.parent} to XMODAL_PRESET_PATH "
              f"and use --preset {path.stem})")
    return 0


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The optimisation and augmentation settings the command line asks for."""
    from engine.train.augment import AugmentConfig
    from engine.train.trainer import TrainConfig

    low, high = args.lowpass_band
    if not 0.0 <= low <= high <= 1.0:
        raise InvalidInput(f"--lowpass-band {low} {high}: needs 0 <= LOW <= HIGH <= 1 (fractions of the mel bins)")
    if args.lowpass_db < 0:
        raise InvalidInput(f"--lowpass-db {args.lowpass_db}: a depth in dB, 0 or more")
    augmentation = AugmentConfig(crop_frames=args.crop_frames, lowpass_db=args.lowpass_db, lowpass_band=(low, high))
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed,
                       rows_per_set=args.rows_per_set, time_budget_s=args.time_budget, augmentation=augmentation)


def _bind(args: argparse.Namespace, specs: list) -> int:
    """Fit the audio head from the data's captions and report how well the text map fits."""
    from engine.train.bind_audio import BindConfig, bind_audio_from_text, captions_of

    path, report = bind_audio_from_text(args.preset, captions_of(specs, args.seed), args.out, args.name, BindConfig(seed=args.seed))
    scores = report.history[0]
    if args.json:
        print(json.dumps({"preset": str(path), "seconds": report.seconds, **scores}, indent=2))
    else:
        print(f"audio head bound from {scores['captions']} captions in {report.seconds:.1f} s; "
              + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k.endswith("_r1")))
        if args.out:
            print(f"preset written to {path}; use it with --preset {path}")
        else:
            from engine.models import get_preset

            preset = get_preset(args.preset)
            print(f"audio head written to {preset.heads['audio'].path}; use it with --preset {args.preset}")
    return 0


def _members(args: argparse.Namespace, specs: list, config: TrainConfig) -> int:
    """Copy the trained preset's folder to --out, add members there and report each one's validation score."""
    from engine.train.members import add_members, copy_preset

    try:
        variants = [json.loads(v) for v in args.member_variant]
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--member-variant is not JSON: {exc}") from exc
    target = copy_preset(args.preset, args.out)
    path, reports = add_members(target, specs, args.member_modality, args.add_members, config, args.cache, variants)
    for k, report in enumerate(reports):
        print(f"member {k + 1}: {report.seconds:.1f} s, best epoch {report.best_epoch} (validation score {report.best_score:.3f})")
    print(f"preset written to {path}")
    return 0
