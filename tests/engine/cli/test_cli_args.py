"""CLI numbers have ranges (and the library refuses absurd ones too), -v works after the subcommand, --version,
defaults in help, and the re-ranker note stays off stderr unless -v."""

from __future__ import annotations

import json
import logging
from importlib.metadata import version

import pytest

from engine.cli import build_parser, main
from core.errors import InvalidInput
from engine.query.limits import MAX_DEPTH, MAX_K, check_search_bounds


@pytest.mark.parametrize("argv, says", [
    (["search", "q", "--k", "0"], "argument -k/--k: 0 is out of range: from 1 to 1000"),
    (["search", "q", "-k", "0"], "argument -k/--k: 0 is out of range"),
    (["search", "q", "--k", "1000000000"], "argument -k/--k: 1000000000 is out of range"),
    (["search", "q", "--depth", "300000000"], "argument --depth: 300000000 is out of range: from 1 to 10000"),
    (["search", "q", "--rerank-depth", "0"], "argument --rerank-depth: 0 is out of range"),
    (["search", "q", "--text-weight", "nan"], "argument --text-weight: nan is out of range"),
    (["demo", "--k", "-3"], "argument -k/--k: -3 is out of range"),
    (["ingest", "x", "--workers", "100000"], "argument --workers: 100000 is out of range: from 0 to 64"),
    (["ingest", "x", "--max-image-pixels", "0"], "argument --max-image-pixels: 0 is out of range: 1 or more"),
    (["serve", "--threads", "0"], "argument --threads: 0 is out of range"),
    (["serve", "--max-upload-mb", "inf"], "argument --max-upload-mb: inf is out of range"),
])
def test_out_of_range_numbers_exit_2(argv, says, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert says in capsys.readouterr().err


def test_library_refuses_absurd_search_sizes():
    check_search_bounds(MAX_K, MAX_DEPTH, 1000)
    for k, depth, rerank_depth in [(0, 10, None), (10**9, 10, None), (10, 3 * 10**8, None), (10, 10, 10**6),
                                   (True, 10, None), (2.5, 10, None), (2**64, 10, None)]:
        with pytest.raises(InvalidInput):
            check_search_bounds(k, depth, rerank_depth)


def test_engine_search_refuses_before_allocating(tmp_path, tiny_encoder):
    from engine.api.facade import Engine
    from index import open_store

    engine = Engine(open_store(tmp_path / "store"), tiny_encoder)
    try:
        for kwargs in ({"k": 1_000_000_000}, {"depth": 300_000_000}, {"rerank_depth": 10**7}):
            with pytest.raises(InvalidInput, match="must be an integer from 1 to"):
                engine.search("a dog", **kwargs)
    finally:
        engine.close()


@pytest.mark.parametrize("argv", [["-v", "models"], ["models", "-v"], ["models", "--verbose"]])
def test_verbose_before_or_after_the_subcommand(argv):
    assert build_parser(argv[0] if argv[0] != "-v" else argv[1]).parse_args(argv).verbose is True


def test_not_verbose_by_default():
    assert build_parser("models").parse_args(["models"]).verbose is False
    assert build_parser().parse_args(["search", "q"]).verbose is False


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"xmodal {version('xmodal')}\n"


@pytest.mark.parametrize("command, shown", [
    ("search", ["number of results (1 to 1000) (default: 10)", "(1 to 10000) (default: 100)"]),
    ("ingest", ["(1 to 4096) (default: 32)", "(0: in-process; at most 64)", "else one) (default: 1)"]),
    ("demo", ["(default: 3)"]),
    ("serve", ["TCP port (default 8000)"]),  # serve writes its defaults into its help itself
])
def test_help_shows_defaults(command, shown, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in shown:
        assert text in out


def test_rerank_note_only_with_verbose(tiny_store, capsys, caplog):
    store = tiny_store.store  # searched only
    assert main(["search", "a dog", "--store", str(store), "--k", "2"]) == 0
    captured = capsys.readouterr()
    assert "note:" not in captured.err and "no attention re-ranker" not in captured.err and "2. " in captured.out
    with caplog.at_level(logging.INFO, logger="engine.cli.search"):
        assert main(["search", "a dog", "--store", str(store), "--k", "2", "-v"]) == 0
    assert any("no attention re-ranker" in r.getMessage() for r in caplog.records)


def test_short_k_is_the_number_of_results(tiny_store, capsys):
    assert main(["search", "a dog", "--store", str(tiny_store.store), "-k", "2", "--json", "--all"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
