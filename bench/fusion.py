"""``python -m bench.fusion``: fusion on a mixed store where every kind competes, searched with no targets ("any").

One store holds held-out data only (none of it fitted the model or its calibration, ``bench.fusion_fit``):
ESC-10 fold 5 sounds, short text notes about those sound classes, COCO val photos (half ingested with four of
their captions, half without; plus the photos nobody captioned), FSDD spoken digits of the held-out speakers
nicolas and theo, and scikit-learn digit images of the test split. Queries, by kind: text (ESC class texts, digit
words, each photo's fifth caption), audio (ESC and FSDD clips) and image (digit images); a query's own item is
left out of its ranking. Relevant: same class (ESC class: its clips and notes; digit: its images and speech) or,
for a caption, its photo. Reported per fusion and query kind: P@1 and P@10; the calibrated floor's effect
(strong results among relevant and irrelevant top-10 hits, and for nonsense queries); and, for the captioned
photos, ``targets=["image"]`` (result kinds) against ``indexes=["image"]`` (image vectors alone).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from engine.datasets import load_digits_trimodal, load_esc, shared_data_dir
from bench.report import machine_info, write_json
from engine.api import Engine
from engine.query import FUSIONS, Calibrations
from ingest import IngestOptions

NOTES = {  # two hand-written notes per ESC-10 class, phrased as a person would jot them down
    "Dog bark": ("the neighbours' dog kept barking at the postman all morning", "our puppy barks whenever the doorbell rings"),
    "Rain": ("heavy rain drumming on the roof during the storm last night", "it rained all afternoon, water pouring down the gutters"),
    "Sea waves": ("waves crashing on the beach at high tide", "the sound of the ocean surf rolling onto the shore"),
    "Baby cry": ("the baby woke up crying at three in the morning", "infant crying loudly in the next room"),
    "Clock tick": ("the old clock on the wall ticking in the quiet room", "ticking of a wind-up alarm clock by the bed"),
    "Person sneeze": ("he sneezed three times in a row from the pollen", "someone sneezing loudly during the meeting"),
    "Helicopter": ("a helicopter circled low over the house for an hour", "rotor noise of a helicopter flying past"),
    "Chainsaw": ("the gardener cut the fallen tree with a chainsaw", "a chainsaw buzzing in the woods behind the farm"),
    "Rooster": ("the rooster crowed at dawn and woke everyone up", "a cockerel crowing in the farmyard"),
    "Fire crackling": ("logs crackling in the fireplace on a winter evening", "the campfire popping and crackling"),
}
NONSENSE = ("zzzzqqq", "qwxv jjkk", "xkcdqz pflorb", "asdfgh jklmn", "vvvvvvvv", "blorptang wuzzle")


def write_corpus(folder: Path, data: Path, per_digit: int, takes: int, photos: int) -> dict[str, Any]:
    """Lay the mixed corpus out under ``folder``; returns labels per file, queries and the paths to ingest."""
    labels: dict[str, str] = {}
    queries: list[tuple[str, str, str, str]] = []  # (kind, value, label or uri, group)
    dirs = {n: folder / n for n in ("sounds", "notes", "photos", "captioned", "speech", "digits")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    esc = load_esc(data / "esc10").split("test")
    for record in esc.records:
        path = dirs["sounds"] / Path(str(record.audio)).name
        shutil.copyfile(str(record.audio), path)
        labels[str(path)] = f"esc:{record.label}"
    for label, notes in NOTES.items():
        for i, note in enumerate(notes):
            path = dirs["notes"] / f"{label.replace(' ', '_').lower()}_{i}.txt"
            path.write_text(note + "\n", encoding="utf-8")
            labels[str(path)] = f"esc:{label}"
    for label, texts in esc.class_texts.items():
        queries += [("text", t, f"esc:{label}", "esc") for t in texts]
    by_label: dict[str, list[str]] = defaultdict(list)
    for record in esc.records:
        by_label[str(record.label)].append(str(dirs["sounds"] / Path(str(record.audio)).name))
    queries += [("audio", p, f"esc:{label}", "esc") for label, paths in by_label.items() for p in paths[:2]]
    digits = load_digits_trimodal(data / "fsdd").split("test")
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for record in digits.records:
        if record.image is not None:
            if counts["image", str(record.label)] >= per_digit:
                continue
            counts["image", str(record.label)] += 1
            path = dirs["digits"] / f"{record.id.replace(':', '_')}.png"
            record.load_image().save(path)
        else:
            take = int(Path(str(record.audio)).stem.split("_")[-1])
            if take >= takes:
                continue
            path = dirs["speech"] / Path(str(record.audio)).name
            shutil.copyfile(str(record.audio), path)
        labels[str(path)] = f"digit:{record.label}"
    for label, texts in digits.class_texts.items():
        queries += [("text", t, f"digit:{label}", "digit") for t in texts]
    for kind, sub in (("image", "digits"), ("audio", "speech")):
        per: dict[str, int] = defaultdict(int)
        for path in sorted(dirs[sub].iterdir()):
            label = labels[str(path)]
            if per[label] < 2:
                per[label] += 1
                queries.append((kind, str(path), label, "digit"))
    coco = data / "coco-mini"
    doc = json.loads((coco / "annotations" / "captions_val2017.json").read_text())
    caps: dict[int, list[str]] = defaultdict(list)
    for ann in doc["annotations"]:
        caps[ann["image_id"]].append(ann["caption"].strip())
    captioned = [im for im in doc["images"] if len(caps[im["id"]]) >= 5][:photos]
    manifest = {"images": [], "annotations": []}
    for i, image in enumerate(captioned):
        with_captions = i % 2 == 0
        target = (dirs["captioned"] if with_captions else dirs["photos"]) / image["file_name"]
        shutil.copyfile(coco / "val2017" / image["file_name"], target)
        labels[str(target)] = f"photo:{target}"
        queries.append(("text", caps[image["id"]][4], f"photo:{target}", "photo-captioned" if with_captions else "photo-bare"))
        if with_captions:
            manifest["images"].append({"id": image["id"], "file_name": image["file_name"]})
            manifest["annotations"] += [{"image_id": image["id"], "caption": c} for c in caps[image["id"]][:4]]
    done = {im["file_name"] for im in captioned}
    for sub in ("val2017", "train2017"):
        for src in sorted((coco / sub).glob("*.jpg")):
            if src.name not in done and not caps.get(_coco_id(src.name)) or sub == "train2017":
                target = dirs["photos"] / src.name
                shutil.copyfile(src, target)
                labels[str(target)] = f"photo:{target}"
    (dirs["captioned"] / "captions.json").write_text(json.dumps(manifest))
    paths = [dirs[n] for n in ("sounds", "notes", "photos", "speech", "digits")] + [dirs["captioned"] / "captions.json"]
    return {"labels": labels, "queries": queries, "paths": paths}


def _coco_id(name: str) -> int:
    return int(Path(name).stem)


def query_part(kind: str, value: str) -> Any:
    """The engine query for one bench query."""
    from engine.query import QueryPart

    return value if kind == "text" else QueryPart(kind, value)


def score(engine: Engine, corpus: dict[str, Any], fusion: str, k: int = 10) -> dict[str, Any]:
    """P@1 and P@10 per query kind for one fusion (no targets), and the floor's split of relevant vs not."""
    labels = corpus["labels"]
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"p1": [], "p10": []})
    strong = {"relevant": [0, 0], "irrelevant": [0, 0]}
    for kind, value, label, group in corpus["queries"]:
        results = [r for r in engine.search(query_part(kind, value), k=k + 1, fusion=fusion, rerank=False)
                   if r.uri != value][:k]
        relevant = [labels.get(r.uri) == label for r in results]
        for name in (kind, f"{kind}:{group}"):
            per[name]["p1"].append(float(relevant[0]) if relevant else 0.0)
            per[name]["p10"].append(float(np.mean(relevant)) if relevant else 0.0)
        for r, rel in zip(results, relevant):
            bucket = strong["relevant" if rel else "irrelevant"]
            bucket[0] += int(r.probability is not None and not r.weak)
            bucket[1] += 1
    table = {name: {"p1": round(float(np.mean(v["p1"])), 4), "p10": round(float(np.mean(v["p10"])), 4),
                    "queries": len(v["p1"])} for name, v in sorted(per.items())}
    floor = {name: round(s / n, 4) if n else None for name, (s, n) in strong.items()}
    return {"by_kind": table, "strong_share_top10": floor}


def result_kinds(engine: Engine, corpus: dict[str, Any]) -> dict[str, float]:
    """Caption queries of captioned photos: P@1 with ``targets=["image"]`` (result kinds) vs ``indexes=["image"]``."""
    out = {}
    wanted = [(v, label) for kind, v, label, group in corpus["queries"] if group == "photo-captioned"]
    for name, options in (("targets=image", {"targets": ["image"]}), ("indexes=image", {"indexes": ["image"]})):
        hits = [engine.search(v, k=1, rerank=False, **options) for v, _ in wanted]
        out[name] = round(float(np.mean([bool(h) and corpus["labels"].get(h[0].uri) == label
                                         for h, (_, label) in zip(hits, wanted)])), 4)
    return out


def _row(engine: Engine, corpus: dict[str, Any], fusion: str, name: str) -> dict[str, Any]:
    """Score one fusion and print its line."""
    row = score(engine, corpus, fusion)
    cells = "  ".join(f"{kind} {v['p1']:.3f}/{v['p10']:.3f}" for kind, v in row["by_kind"].items() if ":" not in kind)
    print(f"{name:<12} P@1/P@10  {cells}  strong share {row['strong_share_top10']}", flush=True)
    return row


def _nonsense(engine: Engine) -> dict[str, int]:
    """Strong (not weak) results among the top 24 of each nonsense query."""
    return {q: sum(not r.weak for r in engine.search(q, k=24, rerank=False)) for q in NONSENSE}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build the mixed store once, score every fusion, print and write the comparison."""
    parser = argparse.ArgumentParser(prog="python -m bench.fusion", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset to ingest and query with")
    parser.add_argument("--per-digit", type=int, default=10, help="digit images per digit")
    parser.add_argument("--takes", type=int, default=5, help="FSDD takes per digit and held-out speaker")
    parser.add_argument("--photos", type=int, default=100, help="captioned COCO val photos (half keep captions)")
    parser.add_argument("--fusions", default=",".join(FUSIONS), help="comma-separated fusions to compare")
    parser.add_argument("--calibration", action="append", default=[], metavar="FILE",
                        help="also score probability fusion and the floor with these calibration files (repeatable; "
                             "e.g. an older fit, for a before/after on one store)")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench.fusion needs ../shared/data (or XMODAL_SHARED_DATA)")
    work = Path(tempfile.mkdtemp(prefix="xmodal-bench-fusion-"))
    try:
        corpus = write_corpus(work / "corpus", data, args.per_digit, args.takes, args.photos)
        engine = Engine.open(work / "store", args.preset)
        summary = engine.ingest(corpus["paths"], IngestOptions(workers=0))
        print(f"store: {summary.added} items, {len(corpus['queries'])} queries", flush=True)
        rows, nonsense_with = {}, {}
        shipped = engine.calibrations
        for path in args.calibration:  # other fits first, the preset's own last (they stay for what follows)
            engine.searcher.calibrations = Calibrations.load(path)
            name = f"probability@{Path(path).name}"
            rows[name] = _row(engine, corpus, "probability", name)
            nonsense_with[name] = _nonsense(engine)
            print(f"nonsense queries with {Path(path).name}, strong results of 24: {nonsense_with[name]}")
        engine.searcher.calibrations = shipped
        for fusion in args.fusions.split(","):
            rows[fusion] = _row(engine, corpus, fusion, fusion)
        nonsense = _nonsense(engine)
        kinds = result_kinds(engine, corpus)
        print(f"nonsense queries, strong results of 24: {nonsense}\ncaptioned photos P@1: {kinds}")
        engine.close()
        payload = {"bench": "fusion", "preset": args.preset, "items": summary.added, "queries": len(corpus["queries"]),
                   "results": rows, "nonsense_strong_of_24": nonsense, "captioned_photo_p1": kinds,
                   "nonsense_strong_of_24_with": nonsense_with,
                   "machine": machine_info()}
        write_json(args.json_out, payload)
        return payload
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
