"""The demo: a small real corpus (shipped as ``data/demo``) plus generated digits and scenes, and queries in every direction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from engine.models.shipped import shipped_dir

DEMO_DIR = shipped_dir("demo") or Path(__file__).resolve().parents[2] / "data" / "demo"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class DemoQuery:
    """One demo query: what it is, its modality and value, and which modalities it searches."""

    label: str
    modality: str
    value: str
    targets: tuple[str, ...]


def build_corpus(folder: Path, n_scenes: int = 12) -> list[Path]:
    """Write generated digit images, scenes (image + sound) and text records; returns the paths to ingest."""
    import soundfile as sf
    from engine.datasets import SceneConfig, esc_class_texts, generate_scenes, load_sklearn_digits

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "digits").mkdir(exist_ok=True)
    (folder / "scenes").mkdir(exist_ok=True)
    digits = load_sklearn_digits(seed=0, size=64).split("test")
    seen: set[str] = set()
    for record in digits:
        if record.label not in seen:
            seen.add(record.label)
            record.load_image().save(folder / "digits" / f"digit_{record.label}.png")
    scenes = generate_scenes(SceneConfig(n_scenes=200, seed=7, image_size=64)).split("test").records[:n_scenes]
    texts = [{"id": f"digit-{d}", "text": f"the number {w}"} for d, w in enumerate(DIGITS)]
    sounds = sorted(p.name.split("__")[0].replace("_", " ") for p in (DEMO_DIR / "sounds").glob("*.ogg"))
    texts += [{"id": f"sound-{i}", "text": esc_class_texts(label.capitalize())[0]} for i, label in enumerate(sounds)]
    for i, scene in enumerate(scenes):
        scene.load_image().save(folder / "scenes" / f"scene_{i:02d}.png")
        clip = scene.load_audio()
        sf.write(folder / "scenes" / f"scene_{i:02d}.wav", clip.samples, clip.sample_rate)
        texts.append({"id": f"scene-{i:02d}", "text": scene.texts[0]})
    with open(folder / "texts.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(t) + "\n" for t in texts)
    return [DEMO_DIR / "sounds", DEMO_DIR / "speech", folder / "digits", folder / "scenes", folder / "texts.jsonl"]


LEGEND = ("Each list is ordered by its first number: \"rerank\" = the fused score's log-odds plus the re-ranker's "
          "bounded correction, \"fused\" = the fusion's score (with the default fusion, the probability of a match); "
          "\"cosine\" is the matched item's raw cosine.")


def result_lines(results: Sequence[Any], short: Callable[[str], str]) -> list[str]:
    """A labelled header and one line per result: the ordering score first, then the cosine, the item and its text."""
    if not results:
        return ["   no results"]
    lines = [f"   {'#':>2} {results[0].ordered_by + ' score':>13}  {'cosine':>6}  item"]
    for rank, r in enumerate(results, 1):
        said = f"  “{r.match.text}”" if r.match.text else ""
        lines.append(f"   {rank:>2}. {r.order_score:12.3f}  {r.first_stage:6.3f}  {short(r.uri)}{said}")
    return lines


def demo_queries(folder: Path) -> list[DemoQuery]:
    """Queries in each direction: text->audio, text->image, image->text, audio->text, image->audio, audio->image."""
    scene_caption = next(json.loads(line)["text"] for line in (folder / "texts.jsonl").read_text().splitlines()
                         if json.loads(line)["id"] == "scene-03")
    return [
        DemoQuery("text -> audio", "text", "a dog barking", ("audio",)),
        DemoQuery("text -> audio", "text", "rain falling", ("audio",)),
        DemoQuery("text -> image", "text", "the number seven", ("image",)),
        DemoQuery("text -> image", "text", scene_caption, ("image",)),
        DemoQuery("image -> text", "image", str(folder / "digits" / "digit_3.png"), ("text",)),
        DemoQuery("audio -> text", "audio", str(DEMO_DIR / "sounds" / "rooster__5-194930-A.ogg"), ("text",)),
        DemoQuery("image -> audio", "image", str(folder / "digits" / "digit_5.png"), ("audio",)),
        DemoQuery("audio -> image", "audio", str(DEMO_DIR / "speech" / "8_theo_0.wav"), ("image",)),
    ]
