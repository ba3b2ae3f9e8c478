"""A new modality is one registry entry: the CLI's choices, the server's validation and path lookup all see it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from core.errors import InvalidInput
from core.modalities import Modality, modality_of_path, registered

LIDAR = Modality("lidar", frozenset({".pcd", ".las"}))  # video is built in


def _pull(argv: list[str]):
    from engine.cli import build_parser

    return build_parser("models").parse_args(["models", "pull", "tiny-random", *argv])


def test_cli_sees_a_registered_modality(capsys):
    from engine.cli import build_parser
    from engine.cli.search import modality_list

    parser = build_parser("models")  # built before the registration: its choices are read live
    with registered(LIDAR):
        assert _pull(["--modality", "lidar"]).modality == ["lidar"]
        assert parser.parse_args(["models", "pull", "p", "--modality", "lidar"]).modality == ["lidar"]
        assert modality_list("image, lidar", "--targets") == ["image", "lidar"]
        search_help = build_parser("search")._subparsers._group_actions[0].choices["search"].format_help()
        assert "image,text,audio,video,lidar" in search_help
    with pytest.raises(SystemExit):
        _pull(["--modality", "lidar"])
    assert "invalid choice: 'lidar'" in capsys.readouterr().err
    with pytest.raises(InvalidInput, match="--targets: unknown modality 'lidar'"):
        modality_list("lidar", "--targets")


def test_server_validation_sees_a_registered_modality():
    from engine.server.request import SearchIn

    body = {"text": "a cat", "targets": ["lidar"], "indexes": ["lidar", "text"], "filters": {"modalities": ["lidar"]}}
    with registered(LIDAR):
        job = SearchIn.model_validate(body).job(None)
        assert job.targets == ("lidar",) and job.indexes == ("lidar", "text")
        assert job.filters.modalities == ("lidar",)
    with pytest.raises(ValidationError) as refused:
        SearchIn.model_validate(body)
    assert {e["loc"][0] for e in refused.value.errors()} == {"targets", "indexes", "filters"}
    assert all("should be one of image, text, audio, video" in e["msg"] for e in refused.value.errors())


def test_paths_and_scans_see_a_registered_modality():
    from engine.api.facade import scan_modalities

    def scan(*paths: str, captions: bool = False):
        files = [SimpleNamespace(path=p, captions=captions) for p in paths]
        return scan_modalities(SimpleNamespace(records=[], listings=[], files=files))

    assert scan("a.jpg") == ["image"] and scan("a.jpg", captions=True) == ["text", "image"]
    assert scan("a.md", "b.wav") == ["text", "audio"] and scan("a.xyz") == ["text", "image", "audio"]
    assert scan("a.mp4") == ["image", "audio"]  # a video needs the towers of its frames and soundtrack
    with registered(LIDAR):
        assert modality_of_path("scan.las") == "lidar"
        assert scan("a.pcd", "b.png") == ["image", "lidar"]
        assert scan("a.xyz") == ["text", "image", "audio", "lidar"]  # an unknown suffix may be any kind
    assert modality_of_path("scan.las") is None and scan("a.pcd") == ["text", "image", "audio"]
