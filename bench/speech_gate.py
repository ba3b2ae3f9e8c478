"""``python -m bench.speech_gate``: fit the speech gate of the ``transcribe`` enricher and report it on held-out data.

Every Whisper segment (tiny.en, VAD on, gate off) of the training clips is described by the gate's features
(``engine.models.speech_gate.FEATURES``): non-speech from ESC-10 folds 1-4, speech from FSDD speakers other than
nicolas and theo and from sentences and single words spoken by espeak-ng (none of them the sentences bench.transcripts
uses); the FSDD clips and the words are also read placed inside 20 s of near-silence ("_padded" sets), as a word in a
long recording is heard. A logistic model over the standardised features is fitted on those; the single-feature rules on Silero's frame
probabilities (a stricter VAD: max, mean or fraction of speech frames over the segment) are fitted alongside as the
simpler candidates. All are reported on the evaluation data the gate never saw: ESC-10 fold 5, FSDD nicolas and theo
(takes 0-2), both also padded, and bench.transcripts' ten sentences, as segments and clips kept. The fitted constants are printed in the
form ``engine/models/speech_gate.py`` holds them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import machine_info, write_json
from bench.transcripts import SENTENCES
from engine.datasets import shared_data_dir
from engine.models import EnrichOptions, make_enrichers

HELD_OUT_SPEAKERS = ("nicolas", "theo")
TRAIN_SENTENCES = (
    "the library opens at nine on weekdays and at ten on sundays",
    "can you send me the photos from last summer",
    "the red car parked outside belongs to our neighbour",
    "we need eggs, milk, flour and a bag of sugar",
    "the concert was cancelled because the singer was ill",
    "please call me back when you get this message",
    "the children built a sandcastle near the water",
    "my flight lands at gatwick at half past three",
    "remember the dentist appointment on monday morning",
    "the printer on the second floor is out of paper",
    "this recipe needs two cups of rice and a pinch of salt",
    "the river flooded the fields after a week of rain",
)
TRAIN_WORDS = ("yes", "no", "hello", "thanks", "stop", "seven", "eight", "three", "okay", "water", "left", "right")
VOICES = ("en-us", "en", "en+f3", "en-us+m3", "en+f2", "en-gb-x-rp")


def load16k(path: str | Path) -> np.ndarray:
    """An audio file as 16 kHz mono float32."""
    import soundfile as sf
    import soxr

    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return np.asarray(soxr.resample(samples.mean(axis=1), rate, 16_000), dtype=np.float32)


def espeak(folder: Path, name: str, text: str, voice: str, speed: int) -> Path:
    """``text`` spoken by espeak-ng into ``folder/name.wav``."""
    path = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True,
                   capture_output=True, timeout=60)
    return path


PAD_SECONDS = 20.0  # a "_padded" set places each clip at a random second of this much near-silence


def padded(samples: np.ndarray, key: str) -> np.ndarray:
    """``samples`` placed 2-10 s into ``PAD_SECONDS`` of faint noise (seeded by ``key``): a word inside a long
    recording, where Whisper's segment times take in the silence around it."""
    import zlib

    rng = np.random.default_rng(zlib.crc32(key.encode()))
    out = (rng.standard_normal(int(PAD_SECONDS * 16_000)) * 1e-4).astype(np.float32)
    at = int(rng.uniform(2.0, 10.0) * 16_000)
    part = samples[: len(out) - at]
    out[at : at + len(part)] += part
    return out


def clip_lists(data: Path, work: Path, takes: int) -> dict[str, list[tuple[str, Path, int]]]:
    """Per set: (id, file, 1 for speech / 0 for not) for the training sets and the held-out ones; a set whose name
    ends in "_padded" is read through ``padded``."""
    esc = sorted((data / "esc10").glob("*/*.ogg"))
    fsdd = sorted((data / "fsdd" / "recordings").glob("*.wav"))

    def fsdd_clips(held_out: bool) -> list[tuple[str, Path, int]]:
        out = []
        for p in fsdd:
            _, speaker, take = p.stem.split("_")
            if (speaker in HELD_OUT_SPEAKERS) == held_out and int(take) < (3 if held_out else takes):
                out.append((p.name, p, 1))
        return out

    sets: dict[str, list[tuple[str, Path, int]]] = {
        "train_esc_folds_1_4": [(p.name, p, 0) for p in esc if not p.name.startswith("5-")],
        "train_fsdd_other_speakers": fsdd_clips(False),
        "train_fsdd_other_speakers_padded": fsdd_clips(False),
        "test_esc_fold_5": [(p.name, p, 0) for p in esc if p.name.startswith("5-")],
        "test_esc_fold_5_padded": [(p.name, p, 0) for p in esc if p.name.startswith("5-")],
        "test_fsdd_nicolas_theo": fsdd_clips(True),
        "test_fsdd_nicolas_theo_padded": fsdd_clips(True),
    }
    if shutil.which("espeak-ng"):
        gen = work / "espeak"
        gen.mkdir(parents=True, exist_ok=True)
        train = [(f"s{i}", espeak(gen, f"train_s{i}", t, VOICES[i % len(VOICES)], 130 + 15 * (i % 4)), 1)
                 for i, t in enumerate(TRAIN_SENTENCES)]
        train += [(f"w{i}", espeak(gen, f"train_w{i}", w, VOICES[i % len(VOICES)], 140), 1)
                  for i, w in enumerate(TRAIN_WORDS)]
        sets["train_espeak"] = train
        sets["train_espeak_padded"] = [c for c in train if c[0].startswith("w")]  # the single words
        sets["test_sentences"] = [(f"sentence_{i:02d}", espeak(gen, f"test_{i}", said, "en", 175), 1)
                                  for i, (said, _) in enumerate(SENTENCES)]
    return sets


def collect(enricher: Any, sets: dict[str, list[tuple[str, Path, int]]]) -> list[dict[str, Any]]:
    """One row per Whisper segment: set, clip id, label, text, features; clips with no segment get a row too
    (features None)."""
    rows = []
    for name, clips in sets.items():
        for n, (cid, path, label) in enumerate(clips, 1):
            samples = load16k(path)
            heard = enricher.heard(padded(samples, cid) if name.endswith("_padded") else samples, features=True)
            for h in heard:
                rows.append({"set": name, "clip": cid, "label": label, "text": h.text,
                             "features": [round(float(v), 5) for v in h.features]})
            if not heard:
                rows.append({"set": name, "clip": cid, "label": label, "text": "", "features": None})
            if n % 50 == 0:
                print(f"  {name}: {n}/{len(clips)}", flush=True)
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float) -> dict[str, Any]:
    """Standardise ``x`` and fit a class-balanced logistic regression; mean, scale, coef, intercept."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit((x - mean) / scale, y)
    return {"mean": mean, "scale": scale, "coef": model.coef_[0], "intercept": float(model.intercept_[0])}


C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
TRAIN_SPEAKERS = ("jackson", "yweweler", "george", "lucas")


def cv_group(row: dict[str, Any]) -> int:
    """The cross-validation fold (0-3) of a training row: its ESC-10 fold, its FSDD speaker, or its espeak-ng index."""
    if "esc" in row["set"]:
        return int(row["clip"][0]) - 1
    if "fsdd" in row["set"]:
        return TRAIN_SPEAKERS.index(row["clip"].split("_")[1])
    return int(row["clip"][1:]) % 4


def choose_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, dict[str, float]]:
    """The C of ``C_GRID`` with the lowest class-balanced log loss over 4 grouped folds of the training rows."""
    losses = {}
    for c in C_GRID:
        p = np.zeros(len(y))
        for k in range(4):
            p[groups == k] = logistic_scores(fit_logistic(x[groups != k], y[groups != k], c), x[groups == k])
        weight = np.where(y == 1, 0.5 / np.mean(y == 1), 0.5 / np.mean(y == 0))
        losses[f"{c:g}"] = round(float(-np.mean(weight * np.where(y == 1, np.log(p + 1e-12), np.log(1 - p + 1e-12)))), 5)
    best = min(C_GRID, key=lambda c: losses[f"{c:g}"])
    return best, losses


def logistic_scores(gate: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The fitted gate's speech probability per row."""
    z = ((x - gate["mean"]) / gate["scale"]) @ gate["coef"] + gate["intercept"]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def best_threshold(v: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The threshold on ``v`` (speech above it) with the best balanced accuracy on (v, y), and that accuracy."""
    best = (0.0, -1.0)
    for t in np.unique(v):
        acc = 0.5 * ((v[y == 1] >= t).mean() + (v[y == 0] < t).mean())
        if acc > best[1]:
            best = (float(t), float(acc))
    return best


def report(rows: list[dict[str, Any]], keep: np.ndarray) -> dict[str, Any]:
    """Per set: segments, segments kept, clips with any segment, clips with a kept segment, non-speech texts kept."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["set"] == name]
        seg = [i for i in idx if rows[i]["features"] is not None]
        clips = dict.fromkeys(rows[i]["clip"] for i in idx)
        heard = {rows[i]["clip"] for i in seg}
        kept = {rows[i]["clip"] for i in seg if keep[i]}
        entry = {"clips": len(clips), "segments": len(seg), "segments_kept": int(sum(keep[i] for i in seg)),
                 "clips_with_text": len(heard), "clips_with_kept_text": len(kept)}
        if rows[idx[0]]["label"] == 0:
            entry["kept_texts"] = sorted(rows[i]["text"] for i in seg if keep[i])
        else:
            entry["dropped_texts"] = sorted(rows[i]["text"] for i in seg if not keep[i])
        out[name] = entry
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Collect segment features, fit the gates, report them on held-out data; print and write."""
    parser = argparse.ArgumentParser(prog="python -m bench.speech_gate", description=__doc__.splitlines()[0])
    parser.add_argument("--takes", type=int, default=2, help="FSDD takes per digit and training speaker (0..N-1; held out: 0-2)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the speech model")
    parser.add_argument("--c", type=float, default=None,
                        help="inverse L2 strength of the logistic fit (default: chosen by grouped cross-validation)")
    parser.add_argument("--rows", help="segment rows (JSON) to reuse instead of transcribing; written when missing")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    import json

    from engine.models import GATE_FEATURES as FEATURES
    from engine.models import SPEECH_GATE

    if args.rows and Path(args.rows).is_file():
        rows = json.loads(Path(args.rows).read_text())
    else:
        data = shared_data_dir()
        if data is None:
            raise SystemExit("bench.speech_gate needs ../shared/data (or XMODAL_SHARED_DATA)")
        work = Path(tempfile.mkdtemp(prefix="xmodal-bench-speech-gate-"))
        try:
            sets = clip_lists(data, work, args.takes)
            (enricher,) = make_enrichers(["transcribe"], EnrichOptions(threads=args.threads, speech_gate=False))
            rows = collect(enricher, sets)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if args.rows:
            Path(args.rows).write_text(json.dumps(rows))
    seg = [r for r in rows if r["features"] is not None]
    x = np.asarray([r["features"] for r in seg], dtype=np.float64)
    y = np.asarray([r["label"] for r in seg])
    train = np.asarray([r["set"].startswith("train") for r in seg])
    seg_index = [i for i, r in enumerate(rows) if r["features"] is not None]

    def keep_rows(keep_seg: np.ndarray) -> np.ndarray:
        keep = np.zeros(len(rows), dtype=bool)
        keep[seg_index] = keep_seg
        return keep

    candidates: dict[str, Any] = {"no_gate": {"report": report(rows, keep_rows(np.ones(len(seg), dtype=bool)))}}
    for name in ("vad_max", "vad_mean", "vad_frac", "no_speech_prob", "avg_logprob", "harmonicity", "voiced_frac",
                 "flatness"):
        col = FEATURES.index(name)
        sign = -1.0 if name in ("no_speech_prob", "flatness") else 1.0
        t, acc = best_threshold(sign * x[train, col], y[train])
        keep = sign * x[:, col] >= t
        candidates[f"rule_{name}"] = {"threshold": round(sign * t, 5), "speech_when": "<=" if sign < 0 else ">=",
                                      "train_balanced_accuracy": round(acc, 4),
                                      "test_balanced_accuracy": round(0.5 * (keep[~train & (y == 1)].mean()
                                                                             + (~keep[~train & (y == 0)]).mean()), 4),
                                      "report": report(rows, keep_rows(keep))}
    cv_losses: dict[str, float] = {}
    c = args.c
    if c is None:
        c, cv_losses = choose_c(x[train], y[train], np.asarray([cv_group(r) for r, t in zip(seg, train) if t]))
        print(f"C by grouped 4-fold cross-validation (balanced log loss): {c:g} of {cv_losses}")
    gate = fit_logistic(x[train], y[train], c)
    score = logistic_scores(gate, x)
    keep = score >= 0.5
    candidates["logistic"] = {
        "c": c, "cv_log_loss": cv_losses, "threshold": 0.5,
        "train_balanced_accuracy": round(0.5 * (keep[train & (y == 1)].mean() + (~keep[train & (y == 0)]).mean()), 4),
        "test_balanced_accuracy": round(0.5 * (keep[~train & (y == 1)].mean() + (~keep[~train & (y == 0)]).mean()), 4),
        "coef": dict(zip(FEATURES, np.round(gate["coef"], 4).tolist())),
        "report": report(rows, keep_rows(keep))}
    print(f"segments: {len(seg)} ({int(train.sum())} for training: {int(y[train].sum())} speech, "
          f"{int((1 - y[train]).sum())} not)")
    for name, c in candidates.items():
        r = c["report"]
        print(f"{name}: train {c.get('train_balanced_accuracy', '-')}, test {c.get('test_balanced_accuracy', '-')}; "
              + "; ".join(f"{s} {v['clips_with_kept_text']}/{v['clips']}" for s, v in r.items()))
    for s in ("test_esc_fold_5", "train_esc_folds_1_4"):
        if s in candidates["logistic"]["report"]:
            print(f"logistic keeps on {s}: {candidates['logistic']['report'][s].get('kept_texts')}")
    shipped = logistic_scores({"mean": np.asarray(SPEECH_GATE.mean), "scale": np.asarray(SPEECH_GATE.scale),
                               "coef": np.asarray(SPEECH_GATE.coef), "intercept": SPEECH_GATE.intercept}, x)
    same = bool(np.array_equal(shipped >= SPEECH_GATE.threshold, keep))
    print(f"the shipped gate ({SPEECH_GATE.version}) decides every segment as this fit does: {same} "
          f"(largest score difference {float(np.abs(shipped - score).max()):.4f})")
    constants = ("GATE = SpeechGate(\n    version=GATE_VERSION,\n    names=FEATURES,\n"
                 f"    mean={tuple(round(float(v), 6) for v in gate['mean'])},\n"
                 f"    scale={tuple(round(float(v), 6) for v in gate['scale'])},\n"
                 f"    coef={tuple(round(float(v), 6) for v in gate['coef'])},\n"
                 f"    intercept={round(gate['intercept'], 6)},\n)")
    print(constants)
    payload = {"bench": "speech_gate", "features": list(FEATURES), "segments": len(seg),
               "train_segments": int(train.sum()), "candidates": candidates, "constants": constants,
               "shipped_gate": {"version": SPEECH_GATE.version, "same_decisions": same,
                                "max_score_difference": round(float(np.abs(shipped - score).max()), 5)},
               "threads": args.threads, "machine": machine_info()}
    write_json(args.json_out, payload)
    return payload


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
