"""Loaders for labelled audio: ESC-style class folders split by fold, and FSDD spoken digits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.datasets.base import Dataset, Record

_ESC_FOLDER = re.compile(r"^(\d+) - (.+)$")
_ESC_FILE = re.compile(r"^(\d+)-([^-]+)-([A-Za-z]+)$")
_FSDD_FILE = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)$")

# What each ESC-10 class sounds like, as a caption; other classes fall back to "the sound of <label>".
_ESC_PHRASES = {
    "dog bark": "a dog barking", "rain": "rain", "sea waves": "sea waves", "baby cry": "a baby crying",
    "clock tick": "a clock ticking", "person sneeze": "a person sneezing", "helicopter": "a helicopter",
    "chainsaw": "a chainsaw", "rooster": "a rooster crowing", "fire crackling": "a fire crackling",
}

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def esc_class_texts(label: str) -> tuple[str, ...]:
    """Caption texts for an ESC class, canonical first: ``("the sound of a dog barking", "a dog barking", "dog bark")``."""
    phrase = _ESC_PHRASES.get(label.lower(), label.lower())
    return tuple(dict.fromkeys((f"the sound of {phrase}", phrase, label.lower())))


def digit_texts(digit: int) -> tuple[str, ...]:
    """Texts for a digit class, the bare word first: ``("seven", "the number seven", "the digit seven")``."""
    word = DIGIT_WORDS[digit]
    return (word, f"the number {word}", f"the digit {word}")


def load_esc(root: str | Path, name: str = "esc10", test_folds: tuple[int, ...] = (5,),
             val_folds: tuple[int, ...] = ()) -> Dataset:
    """ESC layout ``NNN - Class name/F-SOURCE-T.ogg``: label from the folder, split by fold (default test 5, train 1-4)."""
    root = Path(root)
    records, class_texts = [], {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        match = _ESC_FOLDER.match(folder.name)
        if not match:
            continue
        label = match.group(2)
        class_texts[label] = esc_class_texts(label)
        for clip in sorted(folder.glob("*.ogg")):
            parts = _ESC_FILE.match(clip.stem)
            if not parts:
                raise ValueError(f"{clip}: ESC clip names are FOLD-SOURCEID-TAKE.ogg")
            fold = int(parts.group(1))
            split = "test" if fold in test_folds else "val" if fold in val_folds else "train"
            meta = {"fold": fold, "source": parts.group(2), "take": parts.group(3), "class_id": int(match.group(1))}
            records.append(Record(f"{name}:{clip.stem}", split, label, audio=clip, group=parts.group(2), meta=meta))
    if not records:
        raise FileNotFoundError(f"no ESC class folders ('NNN - Class name/*.ogg') under {root}")
    return Dataset(name, tuple(records), class_texts, protocol="class")


@dataclass(frozen=True)
class FsddSplit:
    """FSDD split: ``"takes"`` (official: takes below ``test_takes`` are test) or ``"speakers"`` (held-out speakers)."""

    by: str = "takes"
    test_takes: int = 5
    test_speakers: tuple[str, ...] = ("nicolas", "theo")


def load_fsdd(root: str | Path, split: FsddSplit = FsddSplit(), name: str = "fsdd") -> Dataset:
    """FSDD ``recordings/{digit}_{speaker}_{take}.wav``; label is the digit (``"0"``..``"9"``), group the speaker."""
    if split.by not in ("takes", "speakers"):
        raise ValueError(f"FsddSplit.by must be 'takes' or 'speakers', got {split.by!r}")
    root = Path(root)
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    records = []
    for wav in sorted(folder.glob("*.wav")):
        parts = _FSDD_FILE.match(wav.stem)
        if not parts:
            raise ValueError(f"{wav}: FSDD file names are DIGIT_SPEAKER_TAKE.wav")
        digit, speaker, take = parts.group(1), parts.group(2), int(parts.group(3))
        test = take < split.test_takes if split.by == "takes" else speaker in split.test_speakers
        records.append(Record(f"{name}:{wav.stem}", "test" if test else "train", digit, audio=wav, group=speaker,
                              meta={"speaker": speaker, "take": take}))
    if not records:
        raise FileNotFoundError(f"no FSDD recordings under {folder}")
    class_texts = {str(d): digit_texts(d) for d in range(10)}
    return Dataset(name, tuple(records), class_texts, protocol="class")
