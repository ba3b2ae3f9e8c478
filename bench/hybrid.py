"""``python -m bench.hybrid``: keyword, vector and hybrid search on queries whose answer is an exact token, and on
ordinary semantic queries, over one store (the shipped xmodal-mini preset by default).

The store: COCO photos from ``../shared/data`` (half of the captioned val photos ingested with four of their captions,
the rest bare; some copied under camera-style file names), ESC-10 fold 5 sounds, FSDD spoken digits of the held-out
speakers, and generated notes (invoices, calls, flights, spare parts) that look alike except for one rare token each.
Forty bare photos get an OCR line of a shop sign: inserted directly as ``ocr`` representations (text tower vectors,
source ``enrich:ocr``), written the way RapidOCR reads signs, without spaces between words for half of them; the OCR
enricher's own accuracy is ``bench.ocr``'s subject.

Query sets (R@1: the answer is the first result): ``name`` (a renamed photo's file stem), ``name-part`` (a piece of
it: the number, or a code inside a word), ``note`` (a note's rare token), ``ocr`` (a sign's rare word); semantic:
``caption`` and ``caption-bare`` (a captioned or a bare photo's fifth caption -> that photo) and ``class`` (ESC class descriptions -> a clip
or note of that class). Every query runs in each mode with each fusion, re-ranker off; the keyword scale is chosen on
one half of every set (queries 0, 1, 4, 5, ...) and reported on the other.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.fusion import NOTES
from bench.report import machine_info, write_json
from engine.api import Engine
from engine.datasets import load_esc, shared_data_dir
from engine.query import FUSIONS, MODES, Filters, KeywordScale, QueryPart, encode_query
from ingest import IngestOptions

EXACT = ("name", "name-part", "note", "ocr")
SEMANTIC = ("caption", "caption-bare", "class")
SIGNS = ("BAKERY", "PHARMACY", "HOTEL", "CAFE", "BOOKS", "GARAGE", "FLORIST", "BARBER")
FIRST_GUESS = KeywordScale(logit=3.0, logit_step=1.0, z=6.0, z_step=1.5)  # the scale before bench.hybrid tuned it
GRID_LOGIT = [KeywordScale(logit=a, logit_step=b) for a in (2.0, 4.0, 6.0, 8.0) for b in (1.0, 2.0, 3.0)]
GRID_Z = [KeywordScale(z=a, z_step=b) for a in (4.0, 6.0, 8.0, 10.0) for b in (1.5, 3.0, 4.5)]


def _rare(rng: random.Random) -> str:
    """A made-up proper name no model has seen (seeded)."""
    syllables = ("bra", "mwi", "tos", "kar", "ve", "lund", "qui", "zor", "hal", "dre", "mok", "sen", "tu", "wix")
    return "".join(rng.choice(syllables) for _ in range(3)).capitalize()


def _notes(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(text, rare token) of ``n`` generated notes in four families that differ only in their token."""
    out = []
    for i in range(n):
        family = i % 4
        name, code = _rare(rng), f"{rng.randint(10000, 99999)}"
        if family == 0:
            out.append((f"Invoice INV-{code} from {name} Ltd for the kitchen tiles, due at the end of the month",
                        f"INV-{code}"))
        elif family == 1:
            out.append((f"Call {name} about the roof repair quote before Friday", name))
        elif family == 2:
            out.append((f"Flight LX{code[:4]} to Lisbon departs at seven, check in online the day before",
                        f"LX{code[:4]}"))
        else:
            out.append((f"Order spare part {code}-{name[:3].upper()} for the washing machine pump", f"{code}-{name[:3].upper()}"))
    return out


def write_corpus(folder: Path, data: Path, n_notes: int, per_class: int = 4, seed: int = 0) -> dict[str, Any]:
    """Lay the corpus out; returns paths to ingest, labels per file, the queries per set and the OCR lines to add."""
    rng = random.Random(seed)
    dirs = {n: folder / n for n in ("photos", "captioned", "sounds", "notes", "speech")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    labels: dict[str, str] = {}
    queries: dict[str, list[tuple[str, str]]] = defaultdict(list)  # set -> (query text, label of the answer)
    coco = data / "coco-mini"
    doc = json.loads((coco / "annotations" / "captions_val2017.json").read_text())
    caps: dict[int, list[str]] = defaultdict(list)
    for ann in doc["annotations"]:
        caps[ann["image_id"]].append(ann["caption"].strip())
    captioned = [im for im in doc["images"] if len(caps[im["id"]]) >= 5]
    manifest: dict[str, list] = {"images": [], "annotations": []}
    bare: list[Path] = []
    for i, image in enumerate(captioned):
        keep = i % 2 == 0
        target = (dirs["captioned"] if keep else dirs["photos"]) / image["file_name"]
        if not keep and i % 4 == 1:  # camera-style names for a quarter of the photos
            stem = rng.choice(("IMG_{:04d}", "DSC{:05d}", "PXL_2023{:04d}")).format(rng.randint(1, 9999))
            target = target.with_name(f"{stem}.jpg")
            queries["name"].append((stem, f"photo:{target}"))
            queries["name-part"].append((stem.split("_")[-1] if "_" in stem else stem[3:], f"photo:{target}"))
        shutil.copyfile(coco / "val2017" / image["file_name"], target)
        labels[str(target)] = f"photo:{target}"
        queries["caption" if keep else "caption-bare"].append((caps[image["id"]][4], f"photo:{target}"))
        if keep:
            manifest["images"].append({"id": image["id"], "file_name": image["file_name"]})
            manifest["annotations"] += [{"image_id": image["id"], "caption": c} for c in caps[image["id"]][:4]]
        elif i % 4 == 3:
            bare.append(target)
    for src in sorted((coco / "train2017").glob("*.jpg")):
        shutil.copyfile(src, dirs["photos"] / src.name)
    (dirs["captioned"] / "captions.json").write_text(json.dumps(manifest))
    ocr = []
    for j, path in enumerate(bare):
        name, sign = _rare(rng).upper(), SIGNS[j % len(SIGNS)]
        ocr.append((str(path), f"{name}{sign}" if j % 2 else f"{name} {sign}"))  # RapidOCR drops spaces in a line
        queries["ocr"].append((name.lower(), f"photo:{path}"))
    esc = load_esc(data / "esc10").split("test")
    taken: dict[str, int] = defaultdict(int)
    for record in esc.records:
        taken[str(record.label)] += 1
        if taken[str(record.label)] > per_class:
            continue
        path = dirs["sounds"] / Path(str(record.audio)).name
        shutil.copyfile(str(record.audio), path)
        labels[str(path)] = f"esc:{record.label}"
    for label, notes in NOTES.items():
        for k, note in enumerate(notes):
            path = dirs["notes"] / f"{label.replace(' ', '_').lower()}_{k}.txt"
            path.write_text(note + "\n", encoding="utf-8")
            labels[str(path)] = f"esc:{label}"
    for label, texts in esc.class_texts.items():
        queries["class"] += [(t, f"esc:{label}") for t in texts]
    for k, (text, token) in enumerate(_notes(rng, n_notes)):
        path = dirs["notes"] / f"note_{k:03d}.txt"
        path.write_text(text + "\n", encoding="utf-8")
        labels[str(path)] = f"note:{k}"
        queries["note"].append((token, f"note:{k}"))
    for src in sorted((data / "fsdd" / "recordings").glob("*_theo_[0-2].wav")):
        shutil.copyfile(src, dirs["speech"] / src.name)
    paths = [dirs[n] for n in ("photos", "sounds", "notes", "speech")] + [dirs["captioned"] / "captions.json"]
    return {"paths": paths, "labels": labels, "queries": dict(queries), "ocr": ocr}


def add_ocr_lines(engine: Engine, lines: list[tuple[str, str]]) -> int:
    """Store each (photo path, text) as an ``ocr`` representation with its text-tower vector (as enrichment would)."""
    catalog = engine.store.catalog
    with catalog.atomic():
        reps = [catalog.add_representation(catalog.item_by_uri(uri).id, "ocr", "text", text=text, source="enrich:ocr")
                for uri, text in lines]
        catalog.write_vectors(engine.model, reps, engine.encoder.encode("text", [t for _, t in lines]))
    engine.store.sync()
    return len(reps)


def run_queries(engine: Engine, corpus: dict[str, Any], vectors: dict[str, np.ndarray], mode: str, fusion: str,
                scale: KeywordScale, half: int | None) -> dict[str, float]:
    """R@1 per query set (``half``: 0 queries 0, 1, 4, 5, ... of each set, 1 the others, None all)."""
    searcher, labels = engine.searcher, corpus["labels"]
    searcher.keyword_scale = scale
    targets = engine.store_modalities()
    out = {}
    for name, queries in corpus["queries"].items():
        hits = []
        for i, (text, label) in enumerate(queries):
            if half is not None and (i // 2) % 2 != half:  # pairs, so that alternating kinds fall in both halves
                continue
            results = searcher.search(vectors[text], "text", targets, 1, Filters(), 100, fusion, keywords=text,
                                      mode=mode)
            hits.append(bool(results) and labels.get(results[0].uri) == label)
        out[name] = round(float(np.mean(hits)), 4) if hits else 0.0
    return out


def _objective(r1: dict[str, float]) -> float:
    """What the keyword scale is chosen by: the mean of the exact-token sets' and the semantic sets' mean R@1."""
    return float(np.mean([np.mean([r1[s] for s in EXACT]), np.mean([r1[s] for s in SEMANTIC])]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build the store once, tune the keyword scale on one half of the queries, report every mode on the other."""
    parser = argparse.ArgumentParser(prog="python -m bench.hybrid", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset to ingest and query with")
    parser.add_argument("--notes", type=int, default=80, help="generated notes (one rare token each)")
    parser.add_argument("--sounds", type=int, default=4, help="ESC-10 fold 5 clips per class")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench.hybrid needs ../shared/data (or XMODAL_SHARED_DATA)")
    work = Path(tempfile.mkdtemp(prefix="xmodal-bench-hybrid-"))
    try:
        corpus = write_corpus(work / "corpus", data, args.notes, args.sounds)
        engine = Engine.open(work / "store", args.preset)
        started = time.perf_counter()
        summary = engine.ingest(corpus["paths"], IngestOptions(workers=0), enrich=())
        ocr = add_ocr_lines(engine, corpus["ocr"])
        texts = sorted({t for qs in corpus["queries"].values() for t, _ in qs})
        vectors = {t: encode_query(engine.encoder, [QueryPart("text", t)]) for t in texts}
        sizes = {name: len(qs) for name, qs in corpus["queries"].items()}
        print(f"store: {summary.added} items, {ocr} OCR lines, ingest {time.perf_counter() - started:.0f} s; "
              f"queries {sizes}", flush=True)
        tuned: dict[str, Any] = {"shipped": KeywordScale().__dict__, "first_guess": FIRST_GUESS.__dict__}
        for fusion, grid in (("probability", GRID_LOGIT), ("calibrated", GRID_Z)):
            scored = [(_objective(run_queries(engine, corpus, vectors, "hybrid", fusion, s, 0)), i)
                      for i, s in enumerate(grid)]
            best = grid[max(scored)[1]]
            tuned[fusion] = {"scale": best.__dict__, "tuning_objective": round(max(scored)[0], 4),
                             "grid": [{"scale": grid[i].__dict__, "objective": round(v, 4)} for v, i in scored]}
            print(f"tuned {fusion}: {best} (objective {max(scored)[0]:.3f} on the tuning half)", flush=True)
        rows: dict[str, dict[str, dict[str, float]]] = {}
        for fusion in FUSIONS:
            scale = KeywordScale(**tuned[fusion]["scale"]) if fusion in tuned else KeywordScale()
            default = FIRST_GUESS
            for mode in MODES:
                timer = time.perf_counter()
                r1 = run_queries(engine, corpus, vectors, mode, fusion, scale, 1)
                r1_default = run_queries(engine, corpus, vectors, mode, fusion, default, 1) if mode != "vector" else r1
                ms = (time.perf_counter() - timer) * 1000 / max(1, sum(sizes.values()) // 2) / (1 + (mode != "vector"))
                rows.setdefault(fusion, {})[mode] = {"tuned": r1, "first_guess_scale": r1_default,
                                                     "ms_per_query": round(ms, 2)}
                cells = "  ".join(f"{s} {r1[s]:.3f}" for s in (*EXACT, *SEMANTIC))
                print(f"{fusion:<12} {mode:<8} R@1 {cells}   (first guess: "
                      f"{'  '.join(f'{r1_default[s]:.3f}' for s in (*EXACT, *SEMANTIC))})  {ms:.1f} ms/query", flush=True)
        engine.close()
        payload = {"bench": "hybrid", "preset": args.preset, "items": summary.added, "ocr_lines": ocr,
                   "ocr_note": "OCR lines inserted directly as ocr representations (bench.ocr measures the enricher)",
                   "queries": sizes, "report_half": "queries 2, 3, 6, 7, ... of each set", "tuned": tuned,
                   "results": rows, "machine": machine_info()}
        write_json(args.json_out, payload)
        return payload
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
