"""Scores shown are the scores that order the list, and every number is labelled (demo, search table, --json)."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from engine.api.demo import LEGEND, result_lines
from engine.query.search import Match, Result

ROOT = Path(__file__).resolve().parents[3]
ROW = re.compile(r"^\s+(\d+)\.\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(\S+)")


def _result(item: int, score: float, cosine: float, rerank: float | None = None) -> Result:
    match = Match(item, "text", "text", None, f"text {item}", cosine, 0)
    return Result(item, f"/x/{item}.txt", "text", score, cosine, match, rerank_score=rerank)


def test_result_lines_put_the_ordering_score_first_with_a_label():
    reranked = [_result(1, 0.2, 0.30, 2.5), _result(2, 0.9, 0.80, 2.4)]  # re-ranked: cosine not monotonic
    lines = result_lines(reranked, str)
    assert "rerank score" in lines[0] and "cosine" in lines[0]
    rows = [ROW.match(line).groups() for line in lines[1:]]
    assert [float(r[1]) for r in rows] == [2.5, 2.4] and [float(r[2]) for r in rows] == [0.3, 0.8]
    fused = result_lines([_result(3, 1.7, 0.5)], str)
    assert "fused score" in fused[0] and float(ROW.match(fused[1]).group(2)) == 1.7
    assert result_lines([], str) == ["   no results"]
    assert "rerank" in LEGEND and "fused" in LEGEND and "cosine" in LEGEND


def test_order_score_is_the_rerank_score_when_reranked():
    assert _result(1, 0.5, 0.1, 3.0).order_score == 3.0 and _result(1, 0.5, 0.1, 3.0).ordered_by == "rerank"
    assert _result(1, 0.5, 0.1).order_score == 0.5 and _result(1, 0.5, 0.1).ordered_by == "fused"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


@pytest.mark.slow
def test_demo_prints_non_increasing_ordering_scores_and_right_top1(tmp_path):
    """The real demo with the shipped model: every list ordered by its printed first number, and the queries the
    demo README says are right are right at top-1."""
    out = subprocess.run([sys.executable, "-m", "engine", "demo", "--store", str(tmp_path / "demo")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, preexec_fn=_limit_memory, check=True).stdout
    blocks = [b for b in out.split("\n\n") if "->" in b.split("\n")[0]]
    assert len(blocks) == 8
    top1 = {}
    for block in blocks:
        lines = block.strip("\n").split("\n")
        assert "score" in lines[1] and "cosine" in lines[1]  # the labelled header
        rows = [ROW.match(line).groups() for line in lines[2:]]
        scores = [float(r[1]) for r in rows]
        assert scores == sorted(scores, reverse=True), block
        top1[lines[0]] = rows[0][3]
    expected = {
        "text -> audio: 'a dog barking'": "sounds/dog_bark__5-203128-A.ogg",
        "text -> audio: 'rain falling'": "sounds/rain__5-181766-A.ogg",
        "text -> image: 'the number seven'": "digits/digit_7.png",
        "text -> image: 'there is a yellow block below a blue disk'": "scenes/scene_03.png",
        "image -> text: 'digits/digit_3.png'": "texts.jsonl#digit-3",
        "audio -> text: 'sounds/rooster__5-194930-A.ogg'": "texts.jsonl#sound-8",
    }
    for query, item in expected.items():
        assert top1[query] == item, (query, top1[query])
