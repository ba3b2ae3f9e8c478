"""``python -m bench.train_mini``: train the shipped ``xmodal-mini`` preset from ``../shared/data`` plus synthetic scenes.

Data: ESC-10 folds 1-3 (fold 4 validates, fold 5 is never seen), FSDD speech of four speakers (nicolas and
theo held out) with scikit-learn's digit images (training 75 %) and digit words, and seeded synthetic scenes
(train split, image-text pairs only: their synthesized sounds are left out to spend the CPU time on real audio). Everything is seeded; the wall time printed covers loading, feature caching and training.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from bench.datasets import shared_data_dir
from engine.train.augment import AugmentConfig
from engine.train.recipe import DataSpec, train_preset
from engine.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "engine" / "train" / "templates" / "xmodal-mini.json"
SCENES = 2000
CONFIG = TrainConfig(
    epochs=60, batch_size=64, lr=2e-3, weight_decay=1e-4, patience=15, seed=0, rows_per_set=1024, warmup_steps=30,
    augmentation=AugmentConfig(crop_frames=96), time_budget_s=600.0,
)


def specs(data: Path, scenes: int = SCENES) -> list[DataSpec]:
    """The training sources of xmodal-mini under a shared data folder."""
    return [DataSpec("esc10", str(data / "esc10")), DataSpec("digits3", str(data / "fsdd")),
            DataSpec("synthetic", str(scenes), ("image", "text"))]


def main(argv: list[str] | None = None) -> int:
    """Train and write the preset, its towers and heads, and a report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "xmodal-mini", help="output folder")
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default: a fresh temporary folder)")
    parser.add_argument("--scenes", type=int, default=SCENES, help="synthetic scenes to generate")
    parser.add_argument("--epochs", type=int, default=CONFIG.epochs, help="maximum epochs")
    parser.add_argument("--budget", type=float, default=CONFIG.time_budget_s, help="training time budget in seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    data = args.data or shared_data_dir()
    if data is None:
        parser.error("no ../shared/data folder; pass --data")
    config = TrainConfig(**{**CONFIG.__dict__, "epochs": args.epochs, "time_budget_s": args.budget})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xmodal-mini-cache-") as tmp:
        path, report = train_preset(TEMPLATE, specs(data, args.scenes), args.out, "xmodal-mini", config,
                                    cache_dir=args.cache or tmp)
    wall = time.perf_counter() - start
    summary = {"preset": str(path), "data": [f"{d.kind}:{d.arg or ''}" + (f"@{','.join(d.modalities)}" if d.modalities else "")
                                             for d in specs(data, args.scenes)],
               "wall_seconds": round(wall, 1), "train_seconds": round(report.seconds, 1),
               "epochs_run": len(report.history), "best_epoch": report.best_epoch, "best_val_score": report.best_score}
    (args.out / "reports" / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
