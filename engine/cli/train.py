"""``xmodal train``: train a preset's heads (and small towers) on paired data; writes heads and a preset file."""

from __future__ import annotations

import argparse
import json
import logging

from engine.train.recipe import DATA_KINDS, parse_data_spec, train_preset
from engine.train.trainer import TrainConfig


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand."""
    parser = sub.add_parser(
        "train", help="train projection heads (and small towers) on paired data",
        description="Train a preset's heads, and its small towers unless --heads-only, with symmetric InfoNCE on "
        "paired data. Frozen towers' features and small towers' inputs are cached on disk, so a second run reuses "
        "them. Writes towers/, heads/, NAME.json (a preset usable at once by ingest and search) and "
        f"train_report.json into --out. Data kinds: {', '.join(DATA_KINDS)}.",
    )
    parser.add_argument("--preset", required=True, help="preset name or JSON file to start from")
    parser.add_argument("--data", action="append", required=True, metavar="KIND[:ARG]",
                        help="training data, repeatable: esc10:DIR, fsdd:DIR, digits, digits3:FSDD_DIR, coco:JSON, "
                        "flickr:captions.txt, manifest:FILE, synthetic[:N]")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--name", help="name of the trained preset (default PRESET-trained)")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="maximum epochs")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="pairs per step")
    parser.add_argument("--lr", type=float, default=TrainConfig.lr, help="AdamW learning rate")
    parser.add_argument("--patience", type=int, default=TrainConfig.patience, help="early-stopping patience in epochs")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed for everything random")
    parser.add_argument("--heads-only", action="store_true", help="keep small towers frozen at their saved weights")
    parser.add_argument("--cache", help="feature cache directory (default OUT/cache)")
    parser.add_argument("--json", action="store_true", help="print the training report as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train and report the best epoch's validation recall."""
    logging.getLogger("engine.train").setLevel(logging.INFO)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed)
    specs = [parse_data_spec(d) for d in args.data]
    path, report = train_preset(args.preset, specs, args.out, args.name, config, not args.heads_only, args.cache)
    if args.json:
        print(json.dumps({"preset": str(path), "best_epoch": report.best_epoch, "best_score": report.best_score,
                          "seconds": report.seconds, "history": report.history}, indent=2))
    else:
        best = report.history[report.best_epoch] if report.best_epoch >= 0 else {}
        print(f"trained in {report.seconds:.1f} s; best epoch {report.best_epoch} (validation score {report.best_score:.3f})")
        for name, r in best.get("val_r1", {}).items():
            print(f"  {name}: R@1 a->b {r['a_to_b']:.3f}  b->a {r['b_to_a']:.3f}")
        print(f"preset written to {path}")
    return 0
