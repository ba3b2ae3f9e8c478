"""``python -m bench.fusion``: which fusion ranks mixed-modality results better, reciprocal-rank or calibrated scores.

Corpus: the held-out part of the tri-modal digits set (sklearn digit images of the test split and FSDD speech of
held-out speakers) ingested into one store. Queries: the digit words ("seven", "the number seven", ...) searched
against images and speech together. An item is relevant when it shows or says the query's digit. Reported per
fusion: mAP over the fused top ``--depth`` and precision@10, plus the share of each modality in the top 10.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import load_digits_trimodal, shared_data_dir
from bench.report import machine_info, write_json
from engine.engine import Engine
from ingest.pipeline import IngestOptions


def write_corpus(folder: Path) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Write the test-split images and link the speech; returns uri -> label and label -> query texts."""
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench.fusion needs ../shared/data/fsdd (or XMODAL_SHARED_DATA)")
    dataset = load_digits_trimodal(data / "fsdd").split("test")
    labels: dict[str, str] = {}
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "speech").mkdir(parents=True, exist_ok=True)
    for record in dataset:
        if record.image is not None:
            path = folder / "images" / f"{record.id.replace(':', '_')}.png"
            record.load_image().save(path)
        else:
            path = folder / "speech" / Path(str(record.audio)).name
            shutil.copyfile(str(record.audio), path)
        labels[str(path)] = str(record.label)
    return labels, dict(dataset.class_texts)


def average_precision(relevant: list[bool], total_relevant: int) -> float:
    """AP of one ranked list against the number of relevant items in the corpus."""
    hits = np.array(relevant, dtype=float)
    if total_relevant == 0:
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / total_relevant)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Ingest the corpus once, run every query with each fusion, print and write the comparison."""
    parser = argparse.ArgumentParser(prog="python -m bench.fusion", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset to ingest and query with")
    parser.add_argument("--depth", type=int, default=200, help="results per query that are scored")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="xmodal-bench-fusion-"))
    try:
        labels, class_texts = write_corpus(work / "corpus")
        engine = Engine.open(work / "store", args.preset)
        summary = engine.ingest([work / "corpus"], IngestOptions(workers=0))
        totals = {label: sum(1 for v in labels.values() if v == label) for label in class_texts}
        rows = {}
        for fusion in ("rrf", "calibrated"):
            aps, p10, share = [], [], {"image": 0, "audio": 0}
            for label, texts in class_texts.items():
                for text in texts:
                    results = engine.search(text, ["image", "audio"], k=args.depth, depth=args.depth, fusion=fusion,
                                            rerank=False)
                    relevant = [labels.get(r.uri) == label for r in results]
                    aps.append(average_precision(relevant, totals[label]))
                    p10.append(float(np.mean(relevant[:10])))
                    for r in results[:10]:
                        share[r.modality] += 1
            n = sum(share.values())
            rows[fusion] = {"map": round(float(np.mean(aps)), 4), "precision_at_10": round(float(np.mean(p10)), 4),
                            "top10_share": {m: round(c / n, 3) for m, c in share.items()}, "queries": len(aps)}
            print(f"{fusion:<10} mAP@{args.depth} {rows[fusion]['map']:.4f}  P@10 {rows[fusion]['precision_at_10']:.4f}  "
                  f"top-10 share {rows[fusion]['top10_share']}", flush=True)
        engine.close()
        better = max(rows, key=lambda f: rows[f]["map"])
        print(f"better by mAP: {better} (corpus: {summary.added} items)")
        payload = {"bench": "fusion", "preset": args.preset, "items": summary.added, "results": rows,
                   "better": better, "machine": machine_info()}
        write_json(args.json_out, payload)
        return payload
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
