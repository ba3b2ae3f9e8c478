import pytest

from engine.cli import main
from engine.api.demo import DEMO_DIR, build_corpus, demo_queries


def test_demo_corpus_is_shipped_with_attribution():
    assert len(list((DEMO_DIR / "sounds").glob("*.ogg"))) == 10
    assert len(list((DEMO_DIR / "speech").glob("*.wav"))) == 10
    readme = (DEMO_DIR / "README.md").read_text()
    for clip in (DEMO_DIR / "sounds").glob("*.ogg"):
        assert clip.name in readme  # every shipped clip is credited
    assert "CC BY-SA 4.0" in readme and "CC BY 3.0" in readme


@pytest.mark.slow
def test_demo_runs_every_direction(tmp_path, capsys):
    assert main(["demo", "--store", str(tmp_path / "demo"), "--preset", "tiny-random", "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert ", 0 failed" in out
    queries = demo_queries(tmp_path / "demo" / "generated")
    assert {q.label for q in queries} == {"text -> audio", "text -> image", "image -> text", "audio -> text",
                                          "image -> audio", "audio -> image"}
    for query in queries:
        assert f"{query.label}:" in out
    assert out.count("   1. ") == len(queries)  # every query returned results


def test_build_corpus_is_deterministic(tmp_path):
    a = build_corpus(tmp_path / "a")
    b = build_corpus(tmp_path / "b")
    assert (a[-1].read_bytes() == b[-1].read_bytes())
    assert sorted(p.name for p in (tmp_path / "a" / "digits").iterdir()) == [f"digit_{d}.png" for d in range(10)]
