"""``python -m bench.quality_mini``: held-out retrieval quality of a trained preset (default ``xmodal-mini``).

- ESC-10 fold 5 (never trained on): each clip's nearest of the ten canonical class captions (accuracy),
  audio->text R@1 over every class text, text->audio mAP.
- FSDD speech of held-out speakers (nicolas, theo) with held-out sklearn digit images and the digit words:
  speech->image, image->speech, text->image, text->speech and text->both mAP (class relevance).
- Synthetic scenes, test split (scene descriptions never seen in training): R@1/5/10 text->image and
  image->text under the COCO protocol (an image query hits when any of its captions is in the top k).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._quality_data import VectorCache
from engine.datasets import SceneConfig, esc_class_texts, generate_scenes, load_digits_trimodal, load_esc, shared_data_dir
from bench.report import machine_info, write_json
from bench.protocol import mean_average_precision, recall_at_k
from engine.models import load_encoder

GOALS = {"esc10_text_audio_accuracy": 0.85, "fsdd_digits_map": 0.90}


def _task(vectors: VectorCache, task: Any) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and relevance of a ``RetrievalTask``."""
    return vectors(task.queries) @ vectors(task.corpus).T, task.relevance_matrix()


def esc10(vectors: VectorCache, root: Path) -> dict[str, Any]:
    """ESC-10 fold 5: caption classification accuracy, audio->text R@1, text->audio mAP."""
    data = load_esc(root)
    clips = data.samples("audio", "test")
    labels = sorted({c.label for c in clips})
    captions = np.stack([vectors.encoder.encode("text", [esc_class_texts(label)[0]])[0] for label in labels])
    predicted = np.array(labels)[(vectors(clips) @ captions.T).argmax(axis=1)]
    accuracy = float(np.mean(predicted == np.array([c.label for c in clips])))
    a2t = recall_at_k(*_task(vectors, data.retrieval("audio", "text")), ks=(1,))[1]
    t2a = mean_average_precision(*_task(vectors, data.retrieval("text", "audio")))
    return {"test_clips": len(clips), "captions": [esc_class_texts(label)[0] for label in labels],
            "text_audio_accuracy": accuracy, "audio_to_text_r1": a2t, "text_to_audio_map": t2a}


def fsdd_digits(vectors: VectorCache, root: Path) -> dict[str, Any]:
    """Held-out speakers and digit images: mAP in every direction between speech, images and digit words."""
    data = load_digits_trimodal(root)
    speech, images = data.samples("audio", "test"), data.samples("image", "test")
    texts = data.samples("text", "test")
    out: dict[str, Any] = {"speech": len(speech), "images": len(images), "texts": len(texts)}
    for name, (q, c) in {"speech_to_image": (speech, images), "image_to_speech": (images, speech),
                         "text_to_image": (texts, images), "text_to_speech": (texts, speech),
                         "text_to_both": (texts, images + speech)}.items():
        sims = vectors(q) @ vectors(c).T
        out[f"{name}_map"] = mean_average_precision(sims, np.array([[x.label == y.label for y in c] for x in q]))
    return out


def scenes(vectors: VectorCache, n_scenes: int, seed: int) -> dict[str, Any]:
    """Synthetic test split: COCO-protocol R@1/5/10 text->image and image->text."""
    data = generate_scenes(SceneConfig(n_scenes=n_scenes, seed=seed))
    t2i = recall_at_k(*_task(vectors, data.retrieval("text", "image")))
    i2t = recall_at_k(*_task(vectors, data.retrieval("image", "text")))
    return {"test_images": len(data.samples("image", "test")), "test_captions": len(data.samples("text", "test")),
            "text_to_image": {f"R@{k}": v for k, v in t2i.items()}, "image_to_text": {f"R@{k}": v for k, v in i2t.items()}}


def main(argv: list[str] | None = None) -> int:
    """Measure, print and optionally write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset name or JSON file")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--scenes", type=int, default=10_000, help="scenes generated; the ~10%% test split is evaluated")
    parser.add_argument("--seed", type=int, default=0, help="scene generator seed (the one training used)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    data = args.data or shared_data_dir()
    start = time.perf_counter()
    vectors = VectorCache(load_encoder(args.preset))
    figures: dict[str, Any] = {"preset": args.preset}
    if data is not None:
        figures["esc10_fold5"] = esc10(vectors, data / "esc10")
        figures["fsdd_heldout_speakers"] = fsdd_digits(vectors, data / "fsdd")
    figures["synthetic_test"] = scenes(vectors, args.scenes, args.seed)
    esc = figures.get("esc10_fold5", {})
    fsdd = figures.get("fsdd_heldout_speakers", {})
    figures["goals"] = {
        "esc10_text_audio_accuracy >= 0.85": esc.get("text_audio_accuracy", 0) >= GOALS["esc10_text_audio_accuracy"] if esc else None,
        "fsdd mAP (all directions) >= 0.90": all(v >= GOALS["fsdd_digits_map"] for k, v in fsdd.items() if k.endswith("_map")) if fsdd else None,
    }
    figures["seconds"] = time.perf_counter() - start
    figures["machine"] = machine_info()
    _print(figures)
    write_json(args.json, figures)
    return 0


def _print(figures: dict[str, Any]) -> None:
    esc, fsdd, syn = figures.get("esc10_fold5"), figures.get("fsdd_heldout_speakers"), figures["synthetic_test"]
    if esc:
        print(f"ESC-10 fold 5 ({esc['test_clips']} clips): text->audio classification accuracy {esc['text_audio_accuracy']:.4f} "
              f"(goal 0.85), audio->text R@1 {esc['audio_to_text_r1']:.4f}, text->audio mAP {esc['text_to_audio_map']:.4f}")
    if fsdd:
        print(f"FSDD held-out speakers ({fsdd['speech']} clips) + digits ({fsdd['images']} images) + {fsdd['texts']} digit texts, mAP (goal 0.90):")
        for key in ("speech_to_image", "image_to_speech", "text_to_image", "text_to_speech", "text_to_both"):
            print(f"  {key.replace('_to_', '->')}: {fsdd[key + '_map']:.4f}")
    print(f"synthetic scenes test ({syn['test_images']} images, {syn['test_captions']} captions), COCO protocol:")
    for direction in ("text_to_image", "image_to_text"):
        r = syn[direction]
        print(f"  {direction.replace('_to_', '->')}: R@1 {r['R@1']:.4f}  R@5 {r['R@5']:.4f}  R@10 {r['R@10']:.4f}")
    print(f"goals met: {figures['goals']}")


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
