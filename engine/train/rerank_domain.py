"""Give a trained re-ranker its domain: a seeded sample of its training items and in-domain score thresholds.

``python -m engine.train.rerank_domain --preset P --data SPEC [--data ...] --reranker DIR`` encodes up to
``--sample`` train-split items per modality (the same data specs and seed ``train-reranker`` used), scores up to
``--held-out`` items of the held-out split against them, and sets each modality's threshold at the
``--percentile``-th percentile of those scores. It writes ``DIR/domain.npz`` and the ``domain`` key of
``DIR/config.json`` (with ``--max-correction``, also its bound); the weights are not touched.
``xmodal train-reranker`` calls ``give_domain`` itself at the end of training with the shipped settings (unless
``--no-domain``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.rerank.domain import DOMAIN_K, Domain

SAMPLE = 512
HELD_OUT = 1000
# bench.rerank_domain (xmodal-mini): at p5 2 % of digit images count as in the domain and bound 2 turns one of 200
# wrong; at p10 no bound measured changes a digit query's top 1, for 0.01 less scenes text->image R@1 at bound 1
PERCENTILE = 10.0
# the bound a re-ranker gets with its domain (xmodal-mini's, chosen by bench.rerank_domain with queries outside kept
# out; without a domain the code default, engine.rerank.model.MAX_CORRECTION, stays)
DOMAIN_MAX_CORRECTION = 1.0
REPORTED = (1.0, 2.0, 5.0, 10.0)


def _pick(items: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    if len(items) <= n:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), n, replace=False))]


def build_domain(encoder: Any, datasets: Sequence[tuple[Any, Sequence[str]]], sample: int = SAMPLE,
                 held_out: int = HELD_OUT, percentile: float = PERCENTILE, k: int = DOMAIN_K,
                 seed: int = 0) -> Domain:
    """A ``Domain`` from (dataset, modalities) pairs: train-split samples, held-out thresholds per modality."""
    from engine.train.rerank_data import encode_items
    from engine.train.rerank_recipe import split_names

    rng = np.random.default_rng(seed)
    train: dict[str, list[Any]] = {}
    held: dict[str, list[Any]] = {}
    for dataset, modalities in datasets:
        other = split_names(dataset, ["val", "test"])[0]
        for m in modalities:
            train.setdefault(m, []).extend(dataset.samples(m, "train"))
            held.setdefault(m, []).extend(dataset.samples(m, other))
    samples, thresholds, spread = {}, {}, {}
    for m in sorted(train):
        picked = _pick(train[m], sample, rng)
        samples[m] = encode_items(encoder, m, [s.load() for s in picked]).vectors.numpy().astype(np.float32)
        checked = _pick(held.get(m, []), held_out, rng)
        if not checked:
            continue
        vectors = encode_items(encoder, m, [s.load() for s in checked]).vectors.numpy()
        scores = Domain(samples, {}, k).scores(m, vectors)
        thresholds[m] = round(float(np.percentile(scores, percentile)), 4)
        spread[m] = {str(p): round(float(np.percentile(scores, p)), 4) for p in REPORTED}
    return Domain(samples, thresholds, k, {"percentile": percentile, "held_out_percentiles": spread,
                                            "sample": {m: len(v) for m, v in samples.items()}})


def attach(directory: str | Path, domain: Domain, source: str, max_correction: float | None = None) -> Path:
    """Write ``domain.npz`` beside a saved re-ranker and record its settings in its ``config.json`` (and, given one,
    the bound its correction gets once out-of-domain queries are kept out)."""
    directory = Path(directory)
    path = directory / "config.json"
    config = json.loads(path.read_text())
    domain.save(directory)
    config["domain"] = {**domain.settings(), "source": source}
    if max_correction is not None:
        config["max_correction"] = max_correction
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
    tmp.replace(path)
    return directory


def give_domain(encoder: Any, preset: str, data: Sequence[tuple[str, Any, Sequence[str]]], directory: str | Path,
                seed: int = 0, percentile: float = PERCENTILE, max_correction: float | None = DOMAIN_MAX_CORRECTION,
                sample: int = SAMPLE, held_out: int = HELD_OUT) -> Domain:
    """Build the domain of the re-ranker saved in ``directory`` from (spec text, dataset loaded with ``seed + 7``,
    modalities) triples and attach it (``attach``; ``max_correction`` None keeps its bound); returns the domain."""
    domain = build_domain(encoder, [(d, m) for _, d, m in data], sample, held_out, percentile, seed=seed)
    source = f"{' '.join(text for text, _, _ in data)}, seed {seed + 7}, preset {preset}"
    attach(directory, domain, source, max_correction)
    return domain


def describe(domain: Domain) -> list[str]:
    """One line per modality: its sample size and threshold."""
    percentile = domain.extra.get("percentile", PERCENTILE)
    return [f"{m}: {len(domain.samples[m])} samples, threshold {t:.4f} (held-out p{percentile:g})"
            for m, t in domain.thresholds.items()]


def main(argv: list[str] | None = None) -> int:
    """Build and attach the domain of a saved re-ranker; print the thresholds."""
    import torch

    from engine.models import load_encoder
    from engine.train.recipe import load_dataset, parse_data_spec

    parser = argparse.ArgumentParser(prog="python -m engine.train.rerank_domain", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, help="preset whose towers encode the sample")
    parser.add_argument("--data", action="append", required=True, help="data spec(s) the re-ranker was trained on")
    parser.add_argument("--reranker", required=True, type=Path, help="the saved re-ranker's directory")
    parser.add_argument("--seed", type=int, default=0, help="train-reranker's --seed (its data used seed + 7)")
    parser.add_argument("--sample", type=int, default=SAMPLE, help="train items kept per modality")
    parser.add_argument("--held-out", type=int, default=HELD_OUT, help="held-out items scored per modality")
    parser.add_argument("--percentile", type=float, default=PERCENTILE,
                        help="threshold: this percentile of held-out scores")
    parser.add_argument("--max-correction", type=float, help="also set the re-ranker's bound (calibrated units)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    encoder = load_encoder(args.preset)
    datasets = []
    for text in args.data:
        spec = parse_data_spec(text)
        dataset = load_dataset(spec, seed=args.seed + 7)
        datasets.append((text, dataset, [m for m in (spec.modalities or dataset.modalities())
                                         if m in encoder.modalities]))
    domain = give_domain(encoder, args.preset, datasets, args.reranker, args.seed, args.percentile,
                         args.max_correction, args.sample, args.held_out)
    print("\n".join(describe(domain)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
