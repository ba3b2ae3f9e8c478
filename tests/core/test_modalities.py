"""The one modality registry: its order and tables, registration rules, and every layer reading it."""

from __future__ import annotations

import pytest

from core.errors import UnsupportedModality, XmodalError
from core.modalities import (
    MODALITIES, InvalidModality, Modality, extensions, modality, modality_of_path, register, registered,
)

LIDAR = Modality("lidar", frozenset({".pcd", ".las"}))  # video is built in


def test_builtin_order_and_tables():
    assert MODALITIES == ("image", "text", "audio", "video") and list(MODALITIES) == ["image", "text", "audio", "video"]
    assert repr(MODALITIES) == "('image', 'text', 'audio', 'video')" and MODALITIES[1] == "text" and len(MODALITIES) == 4
    assert modality("text").binary is False and modality("image").binary and modality("audio").binary
    assert extensions("text") == {".txt", ".md"}
    assert extensions() == extensions("image") | extensions("text") | extensions("audio") | extensions("video")
    assert modality("video").towers() == ("image", "audio") and modality("image").towers() == ("image",)


@pytest.mark.parametrize("path, expected", [
    ("a.jpg", "image"), ("/x/B.JPEG", "image"), ("c.tiff", "image"), ("d.wav", "audio"), ("e.Opus", "audio"),
    ("f.aiff", "audio"), ("g.md", "text"), ("h.txt", "text"), ("i.mp4", "video"), ("j.WEBM", "video"), ("k.pcd", None), ("noext", None), (".jpg", None),
])
def test_modality_of_path(path, expected):
    assert modality_of_path(path) == expected


def test_unknown_name_is_an_xmodal_error():
    with pytest.raises(UnsupportedModality, match=r"unknown modality 'smell' \(known: image, text, audio, video\)"):
        modality("smell")
    assert issubclass(UnsupportedModality, XmodalError) and issubclass(InvalidModality, XmodalError)


@pytest.mark.parametrize("entry, message", [
    (Modality("Video"), "lowercase identifier"),
    (Modality("vid'eo"), "lowercase identifier"),  # names go into the catalog's SQL text
    (Modality("image"), "registered already"),
    (Modality("lidar", frozenset({"pcd"})), "start with a dot"),
    (Modality("lidar", frozenset({".PCD"})), "lowercase"),
    (Modality("lidar", frozenset({".pcd", ".ogg"})), "belongs to audio"),
    (Modality("lidar", frozenset({".pcd"}), embedded_as=("depth",)), "embedded as depth, which is not registered"),
])
def test_register_refuses(entry, message):
    with pytest.raises(InvalidModality, match=message):
        register(entry)
    assert MODALITIES == ("image", "text", "audio", "video")


def test_registered_is_live_everywhere_and_restored():
    from engine.models import kinds
    from engine.models.towers import base
    from index import schema

    with registered(LIDAR):
        assert MODALITIES == ("image", "text", "audio", "video", "lidar") and "lidar" in MODALITIES
        assert "lidar" in kinds.MODALITIES and "lidar" in base.MODALITIES and "lidar" in schema.MODALITIES
        assert modality_of_path("scan.PCD") == "lidar" and modality("lidar") is LIDAR
        assert extensions() >= {".pcd", ".las"}
    assert MODALITIES == ("image", "text", "audio", "video") and modality_of_path("scan.pcd") is None
    with pytest.raises(UnsupportedModality):
        modality("lidar")


def test_every_layer_reads_the_one_table():
    from engine.datasets import media
    from engine.query import targets
    from ingest import decode

    assert decode.IMAGE_EXTENSIONS == extensions("image") == media.IMAGE_SUFFIXES
    assert decode.AUDIO_EXTENSIONS == extensions("audio") == media.AUDIO_SUFFIXES
    assert decode.TEXT_EXTENSIONS == extensions("text") and decode.MEDIA_EXTENSIONS == extensions()
    assert ".opus" in decode.AUDIO_EXTENSIONS  # one table: .opus is audio for ingest as it was for the datasets
    assert targets.KINDS is MODALITIES
