"""``python -m bench.fusion_fit``: fit the per-pair score calibration of ``xmodal-mini`` (cosine, hubness -> P(match)).

Fitted on the *validation* parts of the shipped model's own training sources (ESC-10 fold 4, the 10 % hash slice
of the digits3 training speakers and training digit images, the synthetic scenes' val split: data the weights
never trained on, and none of the held-out test data that ``bench.fusion`` and ``bench.quality`` report on). All
items go into one pool per modality, labels namespaced by source, so a pair of items from different sources
(a dog bark against a synthetic scene) is a non-match. Generated unrelated inputs join as non-matches of everything
(``noise_items``: strings of random letters, tones and noise, noise and flat images), since a user's store and
queries hold such things. Per (query modality, target modality): matches = same label (an item against itself left
out); non-matches = each query's ``HARD_NEGATIVES`` best-scoring non-matches, the ones a search would show (fitted
on all non-matches, the curve learnt the bulk of unrelated pairs far below any match and put P = 0.5 under the top
of a nonsense query's list: 51 of 144 results of six nonsense queries stayed strong on bench.fusion's store);
features: the cosine and the target's hubness (CSLS, Conneau et al. 2018: the mean of its ``HUB_K`` best cosines
to a seeded sample of ``HUB_SAMPLE`` inputs of the query's modality, shipped beside the fits so search computes it
the same way). One balanced logistic curve each. Writes ``<preset dir>/<preset>.calibration.json`` and the sample
(``<preset>.calibration.hubs.npz``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.datasets import shared_data_dir
from engine.models import get_preset, load_encoder
from engine.query import HUB_K, Calibrations, calibration_path, fit_pair, pair_key, top_mean
from engine.train import DataSpec, load_dataset, train_val

MODALITIES = ("image", "text", "audio")
HARD_NEGATIVES = 10  # per query: its best-scoring non-matches, the ones that would sit above a match
HUB_SAMPLE = 512  # generic queries per modality kept for hubness (shipped beside the calibration)


def fit_sources(data: Path, scenes: int) -> list[tuple[str, DataSpec]]:
    """The shipped recipe's data specs (``engine.train.mini``), each with a namespace for its labels."""
    return [("esc", DataSpec("esc10", str(data / "esc10"))), ("digit", DataSpec("digits3", str(data / "fsdd"))),
            ("scene", DataSpec("synthetic", str(scenes), ("image", "text")))]


def pool(sources: list[tuple[str, DataSpec]], encoder: Any) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Vectors and namespaced labels per modality of every source's validation split (class texts included)."""
    contents: dict[str, list[Any]] = {m: [] for m in MODALITIES}
    labels: dict[str, list[str]] = {m: [] for m in MODALITIES}
    for space, spec in sources:
        _, val = train_val(load_dataset(spec))
        wanted = spec.modalities or MODALITIES
        for modality in wanted:
            if modality not in encoder.modalities:
                continue
            for item in val.samples(modality, protocol=val.protocol):
                contents[modality].append(item.load())
                labels[modality].append(f"{space}:{item.label if val.protocol == 'class' else item.record_id}")
    for modality, extra in noise_items().items():
        contents[modality] += extra
        labels[modality] += [f"noise:{modality}:{i}" for i in range(len(extra))]
    out = {}
    for modality in MODALITIES:
        if contents[modality]:
            start = time.perf_counter()
            vectors = encoder.encode(modality, contents[modality], batch_size=64)
            print(f"encoded {len(vectors)} {modality} items in {time.perf_counter() - start:.1f} s", flush=True)
            out[modality] = (vectors, labels[modality])
    return out


def noise_items(n: int = 60, seed: int = 0) -> dict[str, list[Any]]:
    """Seeded unrelated inputs per modality: random-letter strings, tones and noise, noise and flat images."""
    from PIL import Image

    from engine.models import AudioClip

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    texts = [" ".join("".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(rng.integers(1, 4)))
             for _ in range(n)]
    clips = []
    for i in range(n):
        t = np.arange(int(16000 * rng.uniform(0.5, 3.0))) / 16000
        tone = rng.uniform(0.05, 0.5) * np.sin(2 * np.pi * rng.uniform(80, 4000) * t) if i % 3 else 0 * t
        clips.append(AudioClip((tone + rng.uniform(0.0, 0.2) * rng.standard_normal(t.size)).astype(np.float32), 16000))
    images = [Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)) if i % 2 else
              Image.new("RGB", (48, 48), tuple(int(c) for c in rng.integers(0, 255, 3))) for i in range(n)]
    return {"text": texts, "audio": clips, "image": images}


def hub_samples(vectors: dict[str, tuple[np.ndarray, list[str]]], size: int = HUB_SAMPLE,
                seed: int = 1) -> dict[str, np.ndarray]:
    """Row indices of each modality's generic query sample: a seeded ``size`` of its pool (all of a smaller one)."""
    rng = np.random.default_rng(seed)
    return {m: np.arange(len(v)) if len(v) <= size else np.sort(rng.choice(len(v), size, replace=False))
            for m, (v, _) in vectors.items()}


def hubness(targets: np.ndarray, queries: np.ndarray, picked: np.ndarray, same: bool, k: int = HUB_K) -> np.ndarray:
    """Each target's mean of its ``k`` highest cosines to the sampled queries (itself left out when both are one
    pool), as ``Calibrations.hubness`` computes it at search time."""
    sims = targets @ queries[picked].T
    if same:
        sims[picked, np.arange(len(picked))] = -np.inf
    return top_mean(sims, k)


def pair_scores(queries: tuple[np.ndarray, list[str]], corpus: tuple[np.ndarray, list[str]], same: bool,
                hubs: np.ndarray, hard: int = HARD_NEGATIVES) -> dict[str, np.ndarray]:
    """Cosines and target hubness of every matching pair and of each query's ``hard`` best-scoring non-matches
    (what a search would show above a match), and the non-matches' weights: pairs with a generated unrelated input
    carry half the non-matches' weight; an item against itself is neither."""
    sims = queries[0] @ corpus[0].T
    q = np.array(queries[1])[:, None]
    c = np.array(corpus[1])[None, :]
    match = q == c
    valid = np.ones_like(match)
    if same:
        np.fill_diagonal(valid, False)
    noise = np.char.startswith(q.astype(str), "noise:") | np.char.startswith(c.astype(str), "noise:")
    rows, cols = np.nonzero(match & valid)
    unrelated = np.where(~match & valid, sims, -np.inf)
    top = np.argsort(-unrelated, axis=1, kind="stable")[:, :hard]
    neg_rows = np.repeat(np.arange(len(sims)), top.shape[1])
    neg_cols = top.ravel()
    kept = np.isfinite(unrelated[neg_rows, neg_cols])
    neg_rows, neg_cols = neg_rows[kept], neg_cols[kept]
    is_noise = noise[neg_rows, neg_cols]
    weights = np.where(is_noise, 1.0 / max(is_noise.sum(), 1), 1.0 / max((~is_noise).sum(), 1))
    return {"positives": sims[rows, cols], "negatives": sims[neg_rows, neg_cols], "weights": weights,
            "positive_hubness": hubs[cols], "negative_hubness": hubs[neg_cols]}


def fit(vectors: dict[str, tuple[np.ndarray, list[str]]], picked: dict[str, np.ndarray]) -> dict[str, Any]:
    """One balanced logistic fit on (cosine, hubness) per (query, target) modality pair that has matches."""
    pairs = {}
    for q in vectors:
        for t in vectors:
            hubs = hubness(vectors[t][0], vectors[q][0], picked[q], q == t)
            found_pairs = pair_scores(vectors[q], vectors[t], q == t, hubs)
            positives, negatives = found_pairs["positives"], found_pairs["negatives"]
            if len(positives) < 10:
                print(f"{q}->{t}: only {len(positives)} matching pairs, not fitted")
                continue
            found = fit_pair(positives, negatives, negative_weights=found_pairs["weights"],
                             positive_hubness=found_pairs["positive_hubness"],
                             negative_hubness=found_pairs["negative_hubness"])
            pairs[pair_key(q, t)] = found
            typical = found.hub_typical or 0.0
            cut = -(found.intercept + found.hub * typical) / found.slope if found.slope > 0 else float("nan")
            print(f"{pair_key(q, t):<12} AUC {found.auc:.4f}  cos {found.slope:.1f}  hubness {found.hub:.1f}  P=0.5 at "
                  f"cos {cut:.3f} (typical hubness {typical:.3f})  matches cos {np.median(positives):.3f} (median), "
                  f"hard non-matches {np.median(negatives):.3f} (median)  [{len(positives)} / {len(negatives)}]",
                  flush=True)
    return pairs


def main(argv: list[str] | None = None) -> Calibrations:
    """Encode the validation pools, fit every pair, write the preset's calibration file."""
    parser = argparse.ArgumentParser(prog="python -m bench.fusion_fit", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset to calibrate (its training recipe's data)")
    parser.add_argument("--scenes", type=int, default=2000, help="synthetic scenes (as engine.train.mini)")
    parser.add_argument("--cache", help="keep the encoded pools in this .npz and reuse them when it exists")
    parser.add_argument("--out", help="calibration file (default: beside the preset's JSON)")
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench.fusion_fit needs ../shared/data (or XMODAL_SHARED_DATA)")
    preset = get_preset(args.preset)
    encoder = load_encoder(args.preset)
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        held = np.load(cache, allow_pickle=False)
        vectors = {m: (held[f"{m}_v"], [str(x) for x in held[f"{m}_l"]]) for m in MODALITIES if f"{m}_v" in held}
    else:
        vectors = pool(fit_sources(data, args.scenes), encoder)
        if cache is not None:
            np.savez(cache, **{f"{m}_v": v for m, (v, _) in vectors.items()},
                     **{f"{m}_l": np.array(lab) for m, (_, lab) in vectors.items()})
    picked = hub_samples(vectors)
    pairs = fit(vectors, picked)
    source = ("balanced logistic fit of cosine and the matched item's hubness per (query, target) modality pair, "
              f"matches against each query's {HARD_NEGATIVES} best-scoring non-matches, on the validation splits of "
              "the training sources (esc10 fold 4, digits3 val slice, synthetic scenes val) plus generated unrelated "
              "inputs (random-letter texts, tones and noise, noise and flat images); hubness against a seeded "
              f"sample of at most {HUB_SAMPLE} of those inputs per modality, python -m bench.fusion_fit")
    samples = {m: vectors[m][0][idx] for m, idx in picked.items()}
    calibrations = Calibrations(pairs, source=source, hub_samples=samples, hub_k=HUB_K)
    out = Path(args.out) if args.out else calibration_path(preset.path)
    calibrations.save(out)
    print(f"wrote {out}")
    return calibrations


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
