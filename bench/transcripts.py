"""``python -m bench.transcripts``: what speech transcripts add, what they cost, and what they leave alone.

One store of held-out data (the shipped ``xmodal-mini`` by default): FSDD spoken digits of the held-out speakers
nicolas and theo, scikit-learn digit images of the test split, ESC-10 fold 5 clips, the ten ESC class captions as
text items and ten generated spoken sentences. It is searched through ``Engine`` (the default hybrid mode) once before transcription and once after
``Engine.enrich(["transcribe"])`` (Whisper tiny.en, VAD on, the speech gate on unless ``--no-speech-gate``), in one run:
- digits, class-level mAP over the whole ranking: speech->image (query clips transcribed too, their transcript fused
  with the acoustic vector at several weights; 0 = acoustic only), image->speech and text->speech (the digit words);
- ESC-10 fold 5: each clip's nearest class caption (accuracy) and text->clip mAP, with and without transcripts, and
  how many clips got any transcript (the VAD check); how many ESC, FSDD and sentence clips kept a transcript, and the
  segments the speech gate dropped with their scores;
- ten sentences spoken by espeak-ng, each looked for by a short description of what it says: R@1 and mAP;
- cost: transcription real-time factor (CPU and wall seconds per second of audio) on the short FSDD clips, the 5 s
  ESC clips and about half a minute of continuous generated speech (espeak-ng), with the threads stated.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import machine_info, write_json
from engine.api import Engine
from engine.datasets import esc_class_texts, load_digits_trimodal, load_esc, shared_data_dir
from engine.models import AudioClip, EnrichOptions, make_enrichers
from engine.query import TRANSCRIPT_WEIGHT, Filters, QueryPart, SearchRequest, SpeechQueries, as_parts
from ingest import IngestOptions

WEIGHTS = (0.0, 0.5, 1.0)  # query transcript weight, of the audio part's
SENTENCES = (  # (what is said, how someone would look for it), spoken by espeak-ng
    ("the ferry to the island leaves at seven in the morning", "when does the boat to the island leave"),
    ("please remember to water the tomato plants on the balcony", "watering the tomatoes"),
    ("the quarterly budget meeting has moved to thursday afternoon", "budget meeting moved"),
    ("my grandmother baked an apple pie for the birthday party", "grandma's apple pie"),
    ("the train to berlin is delayed by forty minutes", "delayed train to Berlin"),
    ("turn left at the bakery and the museum is on your right", "directions to the museum"),
    ("the doctor said to take two tablets after every meal", "medicine instructions from the doctor"),
    ("our football team won the championship final yesterday", "football championship win"),
    ("the password for the guest wifi is written on the fridge", "guest wifi password"),
    ("a storm warning has been issued for the northern coast", "storm warning on the coast"),
)
PARAGRAPH = (
    "Good morning and welcome to the harbour report. The ferry to the island leaves at seven and returns at noon. "
    "Fishing boats came in early because of the wind from the north. The lighthouse keeper says the lamp was "
    "repaired on Tuesday, and the old bell on the pier will ring again this weekend. Visitors should bring warm "
    "coats, since the forecast speaks of rain in the afternoon and a cold night. The market near the church sells "
    "bread, cheese and apples until four. That is all for today; the next report follows tomorrow at eight."
)


class CachedTranscripts:
    """The ``transcribe`` enricher's ``text`` for queries, remembered per clip so several weights cost one pass; the
    segments the speech gate dropped are remembered too (``dropped``)."""

    def __init__(self, enricher: Any) -> None:
        self.enricher = enricher
        self.seen: dict[str, tuple[str, list[tuple[str, float]]]] = {}

    def _heard(self, clip: AudioClip) -> tuple[str, list[tuple[str, float]]]:
        key = hashlib.sha1(np.ascontiguousarray(clip.samples).tobytes() + str(clip.sample_rate).encode()).hexdigest()
        if key not in self.seen:
            heard = self.enricher.heard(to_16k(clip))
            self.seen[key] = (" ".join(h.text for h in heard if h.kept),
                              [(h.text, round(float(h.score), 3)) for h in heard if not h.kept])
        return self.seen[key]

    def text(self, clip: AudioClip) -> str:
        """The clip's transcript (computed once per distinct clip)."""
        return self._heard(clip)[0]

    def dropped(self, clip: AudioClip) -> list[tuple[str, float]]:
        """(text, gate score) of the clip's segments the speech gate dropped."""
        return self._heard(clip)[1]


def to_16k(clip: AudioClip) -> np.ndarray:
    """A mono clip's samples at 16 kHz (what the enricher's ``heard`` takes)."""
    import soxr

    if clip.sample_rate == 16_000:
        return np.asarray(clip.samples, dtype=np.float32)
    return np.asarray(soxr.resample(clip.samples, clip.sample_rate, 16_000), dtype=np.float32)


def write_corpus(folder: Path, data: Path, per_digit: int, takes: int, esc_clips: int) -> dict[str, Any]:
    """Lay the corpus out under ``folder``: labels per file path, the folders to ingest, and the query lists."""
    dirs = {n: folder / n for n in ("speech", "digits", "sounds", "captions", "sentences")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    labels: dict[str, str] = {}
    digits = load_digits_trimodal(data / "fsdd").split("test")
    counts: dict[str, int] = defaultdict(int)
    for record in digits.records:
        if record.image is not None:
            if counts[str(record.label)] >= per_digit:
                continue
            counts[str(record.label)] += 1
            path = dirs["digits"] / f"{record.id.replace(':', '_')}.png"
            record.load_image().save(path)
        else:
            if int(Path(str(record.audio)).stem.split("_")[-1]) >= takes:
                continue
            path = dirs["speech"] / Path(str(record.audio)).name
            shutil.copyfile(str(record.audio), path)
        labels[str(path)] = str(record.label)
    esc = load_esc(data / "esc10").split("test")
    per_class: dict[str, int] = defaultdict(int)
    for record in esc.records:
        if per_class[str(record.label)] >= esc_clips:
            continue
        per_class[str(record.label)] += 1
        path = dirs["sounds"] / Path(str(record.audio)).name
        shutil.copyfile(str(record.audio), path)
        labels[str(path)] = str(record.label)
    if shutil.which("espeak-ng"):
        for i, (said, _) in enumerate(SENTENCES):
            path = dirs["sentences"] / f"sentence_{i:02d}.wav"
            subprocess.run(["espeak-ng", "-w", str(path), said], check=True, capture_output=True, timeout=60)
            labels[str(path)] = f"sentence:{i}"
    captions = {}
    for label in sorted(per_class):
        path = dirs["captions"] / f"{label.replace(' ', '_').lower()}.txt"
        path.write_text(esc_class_texts(label)[0] + "\n", encoding="utf-8")
        labels[str(path)] = label
        captions[str(path)] = esc_class_texts(label)[0]
    return {"labels": labels, "dirs": dirs, "digit_texts": digits.class_texts, "esc_texts": esc.class_texts,
            "paths": [dirs[n] for n in ("speech", "digits", "sounds", "captions", "sentences")]}


def files(corpus: dict[str, Any], name: str) -> list[str]:
    """The corpus files of one folder, sorted."""
    return sorted(str(p) for p in corpus["dirs"][name].iterdir())


def average_precision(ranked: list[bool], relevant: int) -> float:
    """Average precision of one ranking (relevant items never returned add zero)."""
    hits = np.asarray(ranked, dtype=np.float64)
    if not relevant or not hits.size:
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float((precision * hits).sum() / relevant)


def class_map(engine: Engine, queries: list[tuple[Any, str]], corpus: dict[str, Any], target: str, glob: str,
              mode: str = "hybrid") -> float:
    """Class-level mAP of ``queries`` ((query, label)) over the items of kind ``target`` under ``glob``."""
    return map_and_r1(engine, queries, corpus, target, glob, mode)[0]


def map_and_r1(engine: Engine, queries: list[tuple[Any, str]], corpus: dict[str, Any], target: str, glob: str,
               mode: str = "hybrid") -> tuple[float, float]:
    """mAP and R@1 of ``queries`` ((query, label)) over the items of kind ``target`` in the folder ``glob``."""
    labels = corpus["labels"]
    pool = [u for u in labels if Path(u).parent.name == glob]
    aps, first = [], []
    for query, label in queries:
        request = SearchRequest(tuple(as_parts(query)), (target,), len(pool), Filters(uri_glob=f"*/{glob}/*"),
                                max(100, len(pool)), rerank=False, mode=mode)
        hits = engine.run_search(request).results
        ranked = [labels.get(h.uri) == label for h in hits]
        aps.append(average_precision(ranked, sum(labels[u] == label for u in pool)))
        first.append(bool(ranked and ranked[0]))
    return round(float(np.mean(aps)), 4), round(float(np.mean(first)), 4)


def sentence_figures(engine: Engine, corpus: dict[str, Any]) -> dict[str, Any]:
    """Spoken sentences found by a short description of what they say: R@1 and mAP, hybrid and vector mode."""
    queries = [(q, f"sentence:{i}") for i, (_, q) in enumerate(SENTENCES)]
    if not corpus["dirs"]["sentences"].exists() or not any(corpus["dirs"]["sentences"].iterdir()):
        return {}
    out = {}
    for mode in ("hybrid", "vector"):
        found = map_and_r1(engine, queries, corpus, "audio", "sentences", mode)
        out[mode] = {"map": found[0], "r1": found[1]}
    return out


def esc_figures(engine: Engine, corpus: dict[str, Any]) -> dict[str, float]:
    """ESC-10: each clip's nearest class caption (accuracy) and text->clip mAP over the class texts."""
    labels = corpus["labels"]
    clips = files(corpus, "sounds")
    right = 0
    for clip in clips:
        hits = engine.search(QueryPart("audio", _clip(clip)), targets=["text"], k=1, rerank=False,
                             filters=Filters(uri_glob="*/captions/*"))
        right += bool(hits) and labels.get(hits[0].uri) == labels[clip]
    texts = [(t, label) for label, ts in corpus["esc_texts"].items() for t in ts]
    return {"caption_accuracy": round(right / len(clips), 4), "text_to_clip_map": class_map(engine, texts, corpus,
                                                                                             "audio", "sounds")}


def digit_figures(engine: Engine, corpus: dict[str, Any], weights: tuple[float, ...]) -> dict[str, Any]:
    """Digit mAPs: speech->image (per query transcript weight, when the store is transcribed), image->speech,
    text->speech (hybrid and vector mode)."""
    labels = corpus["labels"]
    speech = [(QueryPart("audio", _clip(p)), labels[p]) for p in files(corpus, "speech")]
    images = [(QueryPart("image", p), labels[p]) for p in files(corpus, "digits")]
    texts = [(t, label) for label, ts in corpus["digit_texts"].items() for t in ts]
    out: dict[str, Any] = {"speech_to_image": {}}
    for weight in weights:
        if engine.speech is not None:
            engine.speech.weight = weight
        out["speech_to_image"][f"transcript_weight_{weight:g}"] = class_map(engine, speech, corpus, "image", "digits")
        if engine.speech is None:
            break  # not transcribed: the weight changes nothing
    if engine.speech is not None:
        engine.speech.weight = TRANSCRIPT_WEIGHT  # the library's default for everything measured after this
    out["image_to_speech"] = class_map(engine, images, corpus, "audio", "speech")
    out["text_to_speech"] = class_map(engine, texts, corpus, "audio", "speech")
    out["text_to_speech_vector_mode"] = class_map(engine, texts, corpus, "audio", "speech", mode="vector")
    return out


def audio_seconds(paths: list[str]) -> float:
    """Total duration of audio files."""
    import soundfile as sf

    return float(sum(sf.info(p).duration for p in paths))


def rtf(enricher: Any, paths: list[str]) -> dict[str, float]:
    """Transcription of ``paths`` file by file (as the ingest pass reads them: 16 kHz mono): CPU and wall seconds per
    second of audio, and how many got any text."""
    import soundfile as sf
    import soxr

    clips = []
    for p in paths:
        samples, rate = sf.read(p, dtype="float32", always_2d=True)
        clips.append(AudioClip(np.asarray(soxr.resample(samples.mean(axis=1), rate, 16_000), dtype=np.float32), 16_000))
    seconds = sum(c.duration for c in clips)
    cpu, wall = time.process_time(), time.perf_counter()
    texts = [enricher.text(c) for c in clips]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"files": len(paths), "audio_s": round(seconds, 1), "cpu_rtf": round(cpu / seconds, 4),
            "wall_rtf": round(wall / seconds, 4), "with_text": sum(bool(t) for t in texts)}


def paragraph(folder: Path) -> list[str]:
    """Half a minute of continuous generated speech (espeak-ng), or nothing where espeak-ng is missing."""
    if shutil.which("espeak-ng") is None:
        return []
    path = folder / "paragraph.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), PARAGRAPH], check=True, capture_output=True, timeout=60)
    return [str(path)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build the store, measure without transcripts, transcribe, measure again, time transcription; print and write."""
    parser = argparse.ArgumentParser(prog="python -m bench.transcripts", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xmodal-mini", help="preset to ingest and query with")
    parser.add_argument("--per-digit", type=int, default=10, help="digit images per digit")
    parser.add_argument("--takes", type=int, default=3, help="FSDD takes per digit and held-out speaker")
    parser.add_argument("--esc-clips", type=int, default=8, help="ESC-10 fold 5 clips per class (at most 8)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the speech model")
    parser.add_argument("--weights", default=",".join(f"{w:g}" for w in WEIGHTS),
                        help="query transcript weights compared for speech->image")
    parser.add_argument("--no-speech-gate", action="store_true",
                        help="transcribe without the speech gate (items and queries)")
    parser.add_argument("--json", dest="json_out", help="write results to this JSON file")
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench.transcripts needs ../shared/data (or XMODAL_SHARED_DATA)")
    weights = tuple(float(w) for w in args.weights.split(","))
    work = Path(tempfile.mkdtemp(prefix="xmodal-bench-transcripts-"))
    try:
        corpus = write_corpus(work / "corpus", data, args.per_digit, args.takes, args.esc_clips)
        engine = Engine.open(work / "store", args.preset)
        summary = engine.ingest(corpus["paths"], IngestOptions(workers=0), enrich=())
        print(f"store: {summary.added} items ({len(files(corpus, 'speech'))} spoken digits, "
              f"{len(files(corpus, 'digits'))} digit images, {len(files(corpus, 'sounds'))} ESC-10 clips)", flush=True)
        before = {"digits": digit_figures(engine, corpus, weights), "esc10": esc_figures(engine, corpus),
                  "sentences": sentence_figures(engine, corpus)}
        print(f"without transcripts: {before}", flush=True)
        options = EnrichOptions(threads=args.threads, speech_gate=not args.no_speech_gate)
        cpu, wall = time.process_time(), time.perf_counter()
        enriched = engine.enrich(["transcribe"], enrich_options=options).enriched["transcribe"]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        transcribed_s = audio_seconds(files(corpus, "speech") + files(corpus, "sounds") + files(corpus, "sentences"))
        (enricher,) = make_enrichers(["transcribe"], options)
        cache = CachedTranscripts(enricher)
        engine.speech = SpeechQueries(lambda: cache)
        after = {"digits": digit_figures(engine, corpus, weights), "esc10": esc_figures(engine, corpus),
                 "sentences": sentence_figures(engine, corpus)}
        print(f"with transcripts:    {after}", flush=True)
        esc_heard = {Path(p).name: t for p in files(corpus, "sounds") if (t := cache.text(_clip(p)))}
        fsdd_heard = {Path(p).name: cache.text(_clip(p)) for p in files(corpus, "speech")}
        gate = {"on": not args.no_speech_gate, "version": enricher.version.rsplit(",", 1)[-1],
                "clips_with_transcript": {n: sum(bool(cache.text(_clip(p))) for p in files(corpus, n))
                                          for n in ("sounds", "speech", "sentences")},
                "clips": {n: len(files(corpus, n)) for n in ("sounds", "speech", "sentences")},
                "dropped": {Path(p).name: d for n in ("sounds", "speech", "sentences") for p in files(corpus, n)
                            if (d := cache.dropped(_clip(p)))}}
        cost = {"ingest_pass": {"items": enriched.items, "with_text": enriched.with_text,
                                "segments": enriched.segments, "failed": len(enriched.failures),
                                "audio_s": round(transcribed_s, 1), "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                                "cpu_rtf": round(cpu / transcribed_s, 4), "wall_rtf": round(wall / transcribed_s, 4)},
                "fsdd_clips": rtf(enricher, files(corpus, "speech")[:20]),
                "esc10_clips": rtf(enricher, files(corpus, "sounds")[:20]),
                "continuous_speech": rtf(enricher, paragraph(work)) if shutil.which("espeak-ng") else None}
        word = {label: texts[0] for label, texts in corpus["digit_texts"].items()}  # the bare word comes first
        digit_heard = sum(word[corpus["labels"][p]] in fsdd_heard[Path(p).name].lower() for p in files(corpus, "speech"))
        vad = {"esc10_clips": len(files(corpus, "sounds")), "with_any_transcript": len(esc_heard),
               "transcripts": esc_heard}
        print(f"ESC-10 clips with any transcript (VAD check): {len(esc_heard)} of {len(files(corpus, 'sounds'))}: "
              f"{esc_heard}")
        print(f"FSDD clips whose transcript has their digit word: {digit_heard} of {len(fsdd_heard)}")
        print(f"speech gate ({gate['version']}): clips with a transcript {gate['clips_with_transcript']} of "
              f"{gate['clips']}; dropped segments: {gate['dropped']}")
        print(f"cost ({args.threads} thread(s), busy shared machine): {cost}")
        engine.close()
        payload = {"bench": "transcripts", "preset": args.preset, "threads": args.threads, "items": summary.added,
                   "query_transcript_weight": TRANSCRIPT_WEIGHT,
                   "without_transcripts": before, "with_transcripts": after, "esc10_vad": vad,
                   "fsdd_digit_word_heard": {"right": digit_heard, "clips": len(fsdd_heard)},
                   "fsdd_transcripts": fsdd_heard, "speech_gate": gate, "cost": cost, "machine": machine_info()}
        write_json(args.json_out, payload)
        return payload
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _clip(path: str) -> AudioClip:
    """An audio file decoded to a mono clip at its own rate (queries are passed decoded, so the transcript cache
    knows them again)."""
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return AudioClip(samples.mean(axis=1), rate)


if __name__ == "__main__":
    from bench._main import run_main

    raise SystemExit(run_main(main))
