import argparse
import json

import pytest

from engine.cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in _subcommands(build_parser()):
        assert name in out


@pytest.mark.parametrize("name", sorted(_subcommands(build_parser())))
def test_every_command_has_help(name, capsys):
    sub = _subcommands(build_parser())[name]
    assert sub.description and len(sub.description) > 20
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip()
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{name} {action.option_strings} has no help text"


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    report = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert report["tiny-random"]["ready"] is True
    assert report["clip-vit-b32"]["ready"] is False  # no pretrained weights on an offline machine
    tower = [c for c in report["clip-vit-b32"]["components"] if c["part"] == "tower" and c["modality"] == "image"][0]
    assert tower["available"] is False and "missing" in tower["detail"]


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-random  (dim 64, ready)" in out
    assert "clip-vit-b32  (dim 512, weights missing: `xmodal models pull clip-vit-b32`)" in out


def test_library_errors_become_exit_codes(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken.json").write_text('{"name": "broken", "dim": 4, "towers": {"smell": {}}}')
    monkeypatch.setenv("XMODAL_PRESET_PATH", str(tmp_path))
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xmodal: error:") and "smell" in err and "Traceback" not in err


def test_ingest_errors_are_mapped(tmp_path, capsys):
    code = main(["ingest", str(tmp_path / "does-not-exist"), "--store", str(tmp_path / "s"), "--preset", "tiny-random"])
    assert code == 6
    err = capsys.readouterr().err
    assert "no such file or directory" in err and "Traceback" not in err
