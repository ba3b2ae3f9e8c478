"""``xmodal train-reranker``: train a preset's attention re-ranker on paired data with first-stage hard negatives."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from engine.cli.args import float_range, int_range
from core.errors import InvalidInput

NAME = "train-reranker"
HELP = "train the attention re-ranker of a preset"


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train-reranker`` subcommand (its defaults come from the training config, which imports torch)."""
    from engine.rerank.kinds import kind_names
    from engine.train.rerank import RerankTrainConfig
    from engine.train.recipe import DATA_KINDS

    parser = sub.add_parser(
        NAME, help=HELP,
        description="Train a small transformer that attends between query tokens and candidate tokens, on the "
        "datasets' train splits, with hard negatives mined from the preset's first-stage results. Each direction "
        "is evaluated on the val split (test where there is none) against the first stage; re-ranking is on by "
        "default only where it gained. Writes config.json, model.safetensors and report.json to --out, then its domain "
        "check (domain.npz: queries unlike its training items keep the fused order; bound 1 once they do); point a "
        f"preset's \"reranker\" key at that folder to use it. Data kinds: {', '.join(DATA_KINDS)}.",
    )
    parser.add_argument("--preset", required=True, help="preset whose towers give the tokens and first stage")
    parser.add_argument("--data", action="append", required=True, metavar="KIND[:ARG][@MODS]",
                        help="training data, repeatable (as for `xmodal train`), e.g. synthetic:3000@image,text")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--steps", type=int_range(1, 10_000_000), default=RerankTrainConfig.steps, help="optimiser steps")
    parser.add_argument("--width", type=int_range(8, 4096), default=RerankTrainConfig.width, help="transformer width")
    parser.add_argument("--layers", type=int_range(1, 64), default=RerankTrainConfig.layers, help="transformer layers")
    parser.add_argument("--kind", choices=kind_names(), default=RerankTrainConfig.kind,
                        help="slots: slot-pooled token embeddings per side (default); cross: cross-attention per pair")
    parser.add_argument("--dropout", type=float_range(0.0, 0.99), default=RerankTrainConfig.dropout, help="dropout")
    parser.add_argument("--lr", type=float_range(0.0, 10.0), default=RerankTrainConfig.lr, help="AdamW learning rate")
    parser.add_argument("--seed", type=int, default=RerankTrainConfig.seed, help="seed for data and weights")
    parser.add_argument("--cache", help="token cache directory (default OUT/cache)")
    parser.add_argument("--domain", action=argparse.BooleanOptionalAction, default=True,
                        help="after training, build the domain check from the same data (engine.train.rerank_domain: "
                             "held-out 10th percentile, bound 1); --no-domain re-ranks every query of its directions "
                             "at bound 0.25")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train, save and print the held-out comparison."""
    from engine.models import load_encoder
    from engine.train.rerank_recipe import dataset_directions, split_names, train_and_save, with_counterfactuals
    from engine.train.rerank import RerankTrainConfig
    from engine.train.data import TensorCache
    from engine.train.recipe import load_dataset, parse_data_spec

    encoder = load_encoder(args.preset)
    out = Path(args.out)
    cache = TensorCache(args.cache or out / "cache")
    train, val, domain_data = [], [], []
    for text in args.data:
        spec = parse_data_spec(text)
        loaded = load_dataset(spec, seed=args.seed + 7)
        dataset = with_counterfactuals(loaded)
        modalities = [m for m in (spec.modalities or dataset.modalities()) if m in encoder.modalities]
        domain_data.append((text, loaded, modalities))  # the domain is of the data itself, not its counterfactuals
        pairs = [(q, c) for q, c in itertools.permutations(modalities, 2)]
        if not pairs:
            raise InvalidInput(f"{text}: fewer than two modalities the preset can encode")
        held_out = split_names(dataset, ["val", "test"])[0]
        train += dataset_directions(encoder, dataset, pairs, "train", cache)
        val += dataset_directions(encoder, dataset, pairs, held_out, cache)
    config = RerankTrainConfig(steps=args.steps, width=args.width, layers=args.layers, lr=args.lr, seed=args.seed,
                               kind=args.kind, dropout=args.dropout)
    _, report = train_and_save(encoder, train, val, out, config,
                               on_step=lambda s, loss: print(f"step {s}: loss {loss:.4f}", flush=True))
    domain = None
    if args.domain:
        from engine.train.rerank_domain import give_domain

        domain = give_domain(encoder, args.preset, domain_data, out, args.seed)
        report = {**report, "domain": {"thresholds": dict(domain.thresholds), **dict(domain.extra)}}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, e in report["evaluation"].items():
        f, r = e["first_stage"], e["reranked"]
        print(f"{name:<28} first stage R@1 {f['R@1']:.4f} R@5 {f['R@5']:.4f} R@10 {f['R@10']:.4f} | "
              f"re-ranked R@1 {r['R@1']:.4f} R@5 {r['R@5']:.4f} R@10 {r['R@10']:.4f}")
    print(f"on by default for: {', '.join(report['enabled']) or 'nothing (no held-out gain)'}; saved to {out}")
    if domain is not None:
        from engine.train.rerank_domain import describe

        print("domain check: " + "; ".join(describe(domain)))
    return 0
