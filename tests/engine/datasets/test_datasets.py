import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from engine.datasets import (
    Dataset, FsddSplit, Record, load_coco, load_digits_trimodal, load_esc, load_flickr, load_fsdd, load_manifest,
    load_sklearn_digits, merge,
)
from engine.models import AudioClip
from ingest import ManifestError


def shared_data() -> Path:
    return Path(os.environ.get("XMODAL_SHARED_DATA") or Path(__file__).resolve().parents[3].parent / "shared" / "data")


def corpus(name: str) -> Path:
    path = shared_data() / name
    if not path.is_dir():
        pytest.skip(f"{path} not present (../shared/data holds the real corpora)")
    return path


@pytest.fixture()
def toy() -> Dataset:
    clip = AudioClip(np.zeros(800, dtype=np.float32), 8000)
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    records = (
        Record("a", "train", "cat", image=image, texts=("a cat", "one cat")),
        Record("b", "train", "dog", image=image, audio=clip, texts=("a dog",)),
        Record("c", "test", "cat", image=image, audio=clip, texts=("cat again",)),
        Record("d", "test", "dog", audio=clip),
        Record("e", "test", None, image=image),
    )
    return Dataset("toy", records, {"cat": ("a cat", "meow"), "dog": ("a dog",)})


def test_records_and_splits(toy):
    assert len(toy) == 5 and toy.splits == ("train", "test") and toy.labels == ("cat", "dog")
    assert toy.modalities() == ("image", "text", "audio")
    assert [r.id for r in toy.split("test")] == ["c", "d", "e"]
    assert toy["b"].load_audio().sample_rate == 8000 and toy["a"].load_image().size == (8, 8)
    with pytest.raises(ValueError, match="no split"):
        toy.split("val")
    with pytest.raises(ValueError, match="no audio"):
        toy["a"].load_audio()
    with pytest.raises(ValueError, match="duplicate"):
        Dataset("x", (Record("a", "train"), Record("a", "test")))


def test_instance_pairs_and_retrieval(toy):
    pairs = toy.pairs("image", "text", split="train")
    assert [(p.a.id, p.b.id, p.b.content) for p in pairs] == [("a", "a#0", "a cat"), ("a", "a#1", "one cat"), ("b", "b#0", "a dog")]
    task = toy.retrieval("text", "image")  # eval split: test
    assert [q.id for q in task.queries] == ["c#0"] and [c.id for c in task.corpus] == ["c", "e"]
    assert task.relevant == {"c#0": frozenset({"c"})}
    assert task.relevance_matrix().tolist() == [[True, False]]
    # image -> text: the uncaptioned image "e" has nothing relevant and is dropped
    assert [q.id for q in toy.retrieval("image", "text").queries] == ["c"]
    with pytest.raises(ValueError, match="different"):
        toy.retrieval("image", "image")


def test_class_pairs_and_retrieval(toy):
    task = toy.retrieval("audio", "text", protocol="class")
    assert [c.id for c in task.corpus] == ["c#0", "class:cat#0", "class:cat#1", "class:dog#0"]
    assert task.relevant["d"] == {"class:dog#0"} and task.relevant["c"] == {"c#0", "class:cat#0", "class:cat#1"}
    short = toy.retrieval("audio", "text", protocol="class", texts_per_class=1)
    assert [c.id for c in short.corpus] == ["c#0", "class:cat#0", "class:dog#0"]
    image_to_audio = toy.retrieval("image", "audio", protocol="class")
    assert [q.id for q in image_to_audio.queries] == ["c"]  # "e" has no label
    pairs = toy.pairs("audio", "text", split="test", protocol="class", seed=3)
    assert [p.a.id for p in pairs] == ["c", "d"] and all(p.a.label == p.b.label for p in pairs)
    assert pairs == toy.pairs("audio", "text", split="test", protocol="class", seed=3)
    with pytest.raises(ValueError, match="protocol"):
        toy.pairs("audio", "text", protocol="semantic")


def test_merge_keeps_records_and_class_texts(toy):
    other = Dataset("o", (Record("z", "test", "cat", audio=AudioClip(np.ones(10, np.float32), 100)),), {"cat": ("purr",)})
    merged = merge("m", toy, other)
    assert len(merged) == 6 and merged.class_texts["cat"] == ("a cat", "meow", "purr") and merged.protocol == "class"


def test_records_pickle_for_worker_processes():
    digits = load_sklearn_digits(size=16)
    record = pickle.loads(pickle.dumps(digits.records[0]))
    assert record.load_image().size == (16, 16)


def test_sklearn_digits_split_is_seeded_and_stratified():
    a, b, c = load_sklearn_digits(seed=0), load_sklearn_digits(seed=0), load_sklearn_digits(seed=1)
    assert len(a) == 1797 and a.labels == tuple(str(d) for d in range(10))
    assert [r.split for r in a] == [r.split for r in b] != [r.split for r in c]
    test = a.split("test")
    assert 440 <= len(test) <= 460 and len({r.label for r in test}) == 10
    image = a.records[0].load_image()
    assert image.size == (32, 32) and image.mode == "RGB"
    assert np.asarray(image).min() < 60 and np.asarray(image).max() > 200  # ink on paper
    assert a.class_texts["7"][0] == "seven"


def test_flickr_loader(tmp_path):
    (tmp_path / "Images").mkdir()
    for name in ("1.jpg", "2.jpg"):
        Image.new("RGB", (4, 4)).save(tmp_path / "Images" / name)
    (tmp_path / "captions.txt").write_text("image,caption\n1.jpg,one\n1.jpg,uno\n2.jpg,two\n")
    (tmp_path / "test.txt").write_text("2.jpg\n")
    (tmp_path / "train.txt").write_text("1.jpg\n")
    data = load_flickr(tmp_path / "captions.txt", split_lists={"train": tmp_path / "train.txt", "test": tmp_path / "test.txt"})
    assert [(r.id, r.split, r.texts) for r in data] == [("flickr:1", "train", ("one", "uno")), ("flickr:2", "test", ("two",))]
    assert data.records[0].load_image().size == (4, 4)
    hashed = load_flickr(tmp_path / "captions.txt", val_fraction=0.0, test_fraction=0.0)
    assert {r.split for r in hashed} == {"train"}


def test_manifest_loader(tmp_path):
    Image.new("RGB", (6, 5)).save(tmp_path / "a.png")
    soundfile.write(tmp_path / "b.wav", np.zeros(1600, dtype=np.float32), 16000)
    lines = [
        {"path": "a.png", "caption": "first", "label": "x", "split": "test"},
        {"path": "b.wav", "captions": ["noise", "hiss"]},
        {"path": "a.png", "caption": "second"},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    data = load_manifest(tmp_path / "m.jsonl")
    a, b = data.records
    assert a.texts == ("first", "second") and a.label == "x" and a.split == "test" and a.load_image().size == (6, 5)
    assert b.texts == ("noise", "hiss") and b.image is None and b.load_audio().sample_rate == 16000
    assert [(p.a.id, p.b.content) for p in data.pairs("image", "text", split="test")] == [("m:a.png", "first"), ("m:a.png", "second")]
    (tmp_path / "remote.csv").write_text("url,caption\nhttps://example.com/x.jpg,remote\n")
    with pytest.raises(ManifestError, match="local files only"):
        load_manifest(tmp_path / "remote.csv")
    (tmp_path / "odd.csv").write_text("path,caption\nthing.xyz,what\n")
    with pytest.raises(ManifestError, match="image or audio"):
        load_manifest(tmp_path / "odd.csv")


def test_manifest_rows_sharing_an_id_merge_media_or_refuse(tmp_path):
    Image.new("RGB", (6, 5)).save(tmp_path / "a.png")
    Image.new("RGB", (3, 3)).save(tmp_path / "c.png")
    soundfile.write(tmp_path / "b.wav", np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "both.csv").write_text("id,path,caption\nk,a.png,a scene\nk,b.wav,its sound\nk,,more text\n")
    (record,) = load_manifest(tmp_path / "both.csv").records
    assert record.texts == ("a scene", "its sound", "more text")
    assert record.load_image().size == (6, 5) and record.load_audio().sample_rate == 16000
    (tmp_path / "clash.csv").write_text("id,path,caption\nk,a.png,one\nk,c.png,two\n")
    with pytest.raises(ManifestError, match=r"already has image .*a\.png.*line 2.*c\.png"):
        load_manifest(tmp_path / "clash.csv")


# --- real corpora under ../shared/data (skipped when absent) ---


def test_esc10():
    data = load_esc(corpus("esc10"))
    assert len(data) == 400 and len(data.labels) == 10
    assert sorted({r.meta["fold"] for r in data}) == [1, 2, 3, 4, 5]
    assert all(sum(r.label == label for r in data) == 40 for label in data.labels)
    assert {r.split for r in data if r.meta["fold"] == 5} == {"test"} and len(data.split("test")) == 80
    assert data.class_texts["Dog bark"][0] == "the sound of a dog barking"
    folds: dict[str | None, set[int]] = {}
    for r in data:  # clips of one source recording share a fold
        folds.setdefault(r.group, set()).add(r.meta["fold"])
    assert all(len(f) == 1 for f in folds.values())
    clip = data.split("test").records[0].load_audio()
    assert clip.sample_rate == 44100 and clip.samples.ndim == 1 and abs(clip.duration - 5.0) < 0.01
    task = data.retrieval("audio", "text", texts_per_class=1)
    assert len(task.queries) == 80 and len(task.corpus) == 10
    assert task.relevance_matrix().sum(axis=1).tolist() == [1] * 80


def test_fsdd_splits():
    root = corpus("fsdd")
    takes = load_fsdd(root)
    assert len(takes) == 3000 and takes.labels == tuple(str(d) for d in range(10))
    assert len(takes.split("test")) == 300 and all(r.meta["take"] < 5 for r in takes.split("test"))
    speakers = load_fsdd(root, FsddSplit(by="speakers", test_speakers=("theo",)))
    assert len(speakers.split("test")) == 500 and {r.group for r in speakers.split("test")} == {"theo"}
    assert "theo" not in {r.group for r in speakers.split("train")}
    clip = takes.records[0].load_audio()
    assert clip.sample_rate == 8000 and clip.samples.dtype == np.float32


def test_coco_mini():
    data = load_coco(corpus("coco-mini"), name="coco-mini")
    assert len(data) == 239 and len(data.split("train")) == 80 and len(data.split("val")) == 159
    captioned = [r for r in data if r.texts]
    assert len(captioned) == 159 and all(len(r.texts) == 5 for r in captioned)
    uncaptioned = [r for r in data if not r.texts]
    assert len(uncaptioned) == 80 and {r.split for r in uncaptioned} == {"val"}
    assert data.eval_split == "val"
    t2i = data.retrieval("text", "image")
    assert len(t2i.queries) == 79 * 5 and len(t2i.corpus) == 159  # uncaptioned val images stay as distractors
    assert len(data.retrieval("image", "text").queries) == 79
    assert len(data.pairs("image", "text", split="train")) == 400
    assert data.records[0].load_image().mode == "RGB"


def test_trimodal_digits():
    data = load_digits_trimodal(corpus("fsdd"), test_speakers=("nicolas", "theo"))
    assert data.modalities() == ("image", "text", "audio")
    test = data.split("test")
    speech = [r for r in test if r.audio is not None]
    assert len(speech) == 1000 and {r.group for r in speech} == {"nicolas", "theo"}
    task = data.retrieval("audio", "image")
    assert len(task.queries) == 1000 and all(len(task.relevant[q.id]) >= 40 for q in task.queries[:20])
    text = data.retrieval("text", "audio", texts_per_class=1)
    assert [q.content for q in text.queries] == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
