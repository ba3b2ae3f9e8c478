"""``python -m engine.train.mini``: train the shipped ``xmodal-mini`` preset from ``../shared/data`` plus synthetic scenes.

Data: ESC-10 folds 1-3 (fold 4 validates, fold 5 is never seen), FSDD speech of four speakers (nicolas and
theo held out) with scikit-learn's digit images (training 75 %) and digit words, and seeded synthetic scenes
(train split, image-text pairs only: their synthesized sounds are left out to spend the CPU time on real audio). Everything is seeded; the wall time printed covers loading, feature caching and training.

Then (stage 2) ``MEMBERS`` more audio towers, 2-D and temporal CNNs in turn, each trained alone (through a random low-pass)
against the stage-1 text and image embeddings (frozen), join the stage-1 audio tower in an ensemble (``engine.train.members``): on speakers never
heard in training, averaging members that differ in architecture and seed cuts the errors of any one of them.
``--members-only`` runs stage 2 alone on the preset already in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from engine.datasets import shared_data_dir
from engine.train.augment import AugmentConfig
from engine.train.members import add_members
from engine.train.recipe import DataSpec, train_preset
from engine.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "engine" / "train" / "templates" / "xmodal-mini.json"
SCENES = 2000
CONFIG = TrainConfig(
    epochs=60, batch_size=64, lr=2e-3, weight_decay=1e-4, patience=15, seed=0, rows_per_set=1024, warmup_steps=30,
    augmentation=AugmentConfig(crop_frames=96), time_budget_s=600.0,
)

MEMBERS = 4
MEMBER_VARIANTS = ({"temporal": False, "channels": [16, 32, 64, 128]}, {})  # a 2-D CNN, then the stage-1 temporal one
# No early stopping and no budget for members: under the cosine schedule their validation score peaks late.
# Members also train through a random low-pass (bins above 55-80 % of the mel range lowered by 0-40 dB): FSDD's
# recording devices roll off differently below its 4 kHz Nyquist, and a member that leans on that band edge fails
# on a speaker whose device differs (see data/xmodal-mini/README.md).
MEMBER_CONFIG = TrainConfig(**{**CONFIG.__dict__, "epochs": 40, "patience": 40, "rows_per_set": 512, "time_budget_s": 0.0,
                               "augmentation": AugmentConfig(crop_frames=96, lowpass_db=40.0, lowpass_band=(0.55, 0.8))})


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
    parser.add_argument("--members", type=int, default=MEMBERS, help="audio ensemble members added in stage 2 (0: none)")
    parser.add_argument("--members-only", action="store_true", help="skip stage 1: add members to the preset in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    data = args.data or shared_data_dir()
    if data is None:
        parser.error("no ../shared/data folder; pass --data")
    config = TrainConfig(**{**CONFIG.__dict__, "epochs": args.epochs, "time_budget_s": args.budget})
    summary_path = args.out / "reports" / "train_summary.json"
    summary = json.loads(summary_path.read_text()) if args.members_only and summary_path.is_file() else {}
    if args.members_only:  # stage 1 ran earlier: keep its figures (older summaries name its wall time wall_seconds)
        summary.setdefault("stage1_wall_seconds", summary.get("wall_seconds", 0.0))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xmodal-mini-cache-") as tmp:
        cache = args.cache or Path(tmp)
        if not args.members_only:
            path, report = train_preset(TEMPLATE, specs(data, args.scenes), args.out, "xmodal-mini", config, cache_dir=cache)
            summary = {"preset": str(path), "data": [d.text() for d in specs(data, args.scenes)],
                       "stage1_wall_seconds": round(time.perf_counter() - start, 1), "train_seconds": round(report.seconds, 1),
                       "epochs_run": len(report.history), "best_epoch": report.best_epoch, "best_val_score": report.best_score}
        members_start = time.perf_counter()
        if args.members:
            _, reports = add_members(args.out / "xmodal-mini.json", specs(data, args.scenes), "audio", args.members,
                                     MEMBER_CONFIG, cache / "members", MEMBER_VARIANTS)
            summary["members"] = [{"seconds": round(r.seconds, 1), "best_epoch": r.best_epoch, "best_val_score": r.best_score}
                                  for r in reports]
        summary["members_wall_seconds"] = round(time.perf_counter() - members_start, 1)
    summary["wall_seconds"] = round(summary.get("stage1_wall_seconds", 0.0) + summary["members_wall_seconds"], 1)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
