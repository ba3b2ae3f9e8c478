"""bench.quality with the tiny-random preset on tiny generated data: stages, directions, outputs."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import _quality_stages as stages
from bench._quality_data import direction
from engine.datasets import Dataset, Record
from bench.quality import Suite, load_suite, main, run
from engine.models import AudioClip

STAGES = {"exact", "ann", "fused", "reranked"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scenes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    payload = main(["--preset", "tiny-random", "--dataset", "scenes", "--scenes", "120", "--max-queries", "10",
                    "--json", str(out / "q.json"), "--md", str(out / "q.md"), "--plots", str(out / "plots")])
    return payload, out


def _figures(stage: dict) -> dict:
    return {k: v for k, v in stage.items() if k.startswith("R@") or k in ("mAP", "curve")}


@pytest.mark.slow  # scenes_run: a bench run over 120 scenes
def test_json_has_every_stage_and_direction(scenes_run):
    payload, out = scenes_run
    written = json.loads((out / "q.json").read_text())
    assert written["preset"] == "tiny-random" and written["protocol"] == "instance"
    assert written["machine"]["date"] and "commit" in written["machine"]
    assert set(written["directions"]) == {"text->image", "image->text"}
    for name, d in written["directions"].items():
        assert set(d["stages"]) == STAGES
        assert 0 < d["queries"] <= 10 and d["corpus"] > 0
        for stage, f in d["stages"].items():
            if f is None:  # only the re-ranker may be missing, and then it says why
                assert stage == "reranked" and "re-ranker unavailable for preset tiny-random" in d["unavailable"][stage]
                continue
            values = [f["R@1"], f["R@5"], f["R@10"], *f["curve"].values()]
            assert all(0.0 <= v <= 1.0 for v in values)
            assert list(f["curve"].values()) == sorted(f["curve"].values())  # recall@k never falls with k
            assert f["ms_per_query"] > 0
    assert "mAP" not in written["directions"]["text->image"]["stages"]["exact"]  # instance level: recall only


@pytest.mark.slow
def test_exact_equals_ann_with_flat_and_fused(scenes_run):
    payload, _ = scenes_run
    assert all("Flat" in i["factory"] and "IVF" not in i["factory"] for i in payload["ann_indexes"].values())
    for d in payload["directions"].values():
        exact = _figures(d["stages"]["exact"])
        assert _figures(d["stages"]["ann"]) == exact
        # one representation per item and a Flat store: grouping and calibrated fusion keep the exact order
        assert _figures(d["stages"]["fused"]) == exact
    assert payload["store"]["failed"] == 0 and payload["store"]["missing_from_store"] == 0


@pytest.mark.slow
def test_markdown_and_plots_are_written(scenes_run):
    payload, out = scenes_run
    table = (out / "q.md").read_text()
    assert "| direction | queries | corpus | stage |" in table and "| text->image |" in table
    assert "re-ranker unavailable for preset tiny-random" in table or "re-ranked | 0." in table
    assert len(payload["plots"]) == 2
    for path in map(Path, payload["plots"]):
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.size[0] > 100 and image.size[1] > 100


def _toy_class_suite() -> Suite:
    """Three colour classes: a coloured image and a tone of a class pitch per record, class captions (audio only in
    the corpus: encoding audio queries one by one is the slow part with the tiny CLAP tower)."""
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    records = []
    for c, (label, rgb) in enumerate(colours.items()):
        for i in range(4):
            pixels = np.clip(np.array(rgb) + rng.integers(-20, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            t = np.arange(8000) / 16000
            tone = AudioClip((0.3 * np.sin(2 * np.pi * (300 + 200 * c + 10 * i) * t)).astype(np.float32), 16000)
            records.append(Record(f"toy:{label}{i}", "test", label, image=Image.fromarray(pixels), audio=tone))
    data = Dataset("toy", tuple(records), {k: (f"something {k}", f"the colour {k}") for k in colours}, protocol="class")
    return Suite("toy", "class", (direction(data, "image", ("text",)), direction(data, "text", ("image", "audio"))),
                 "toy colours")


@pytest.fixture(scope="module")
def toy_run():
    """The toy suite with an IVF index too large for it, and a stand-in re-ranker that keeps the first-stage order."""
    from engine.api.facade import Engine

    first_stage = Engine.search

    def search(self, query, targets=None, k=10, filters=None, depth=100, fusion=None, rerank=None, **options):
        return first_stage(self, query, targets, k, filters, depth, fusion, rerank=False, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "search", search)
        return run(_toy_class_suite(), "tiny-random", factory="IVF64,Flat")  # 12 vectors cannot train 64 lists


@pytest.mark.slow  # toy_run: a bench run over an ingested toy suite
def test_class_protocol_multi_target_and_unbuildable_ann(toy_run):
    assert set(toy_run["directions"]) == {"image->text", "text->image+audio"}
    both = toy_run["directions"]["text->image+audio"]
    assert both["corpus"] == 24 and both["depth"] == 24  # class level: the whole corpus is ranked, for mAP
    for d in toy_run["directions"].values():
        assert d["stages"]["ann"] is None and "IVF64,Flat" in d["unavailable"]["ann"]
        for stage in ("exact", "fused"):
            assert 0.0 <= d["stages"][stage]["mAP"] <= 1.0
    assert toy_run["store"]["items"] == 12 + 12 + 6


@pytest.mark.slow
def test_reranked_stage_is_reported_once_the_engine_reranks(toy_run):
    for d in toy_run["directions"].values():
        assert set(d["unavailable"]) == {"ann"}
        assert _figures(d["stages"]["reranked"]) == _figures(d["stages"]["fused"])


def test_forced_hnsw_index_is_tuned_and_reported():
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((400, 16)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[:30] + 0.05 * rng.standard_normal((30, 16)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = stages.build_ann(corpus, "HNSW32")
    info = stages.describe(index)
    assert info["factory"] == "HNSW32" and "efSearch" in info["params"] and info["tuned_recall_at_10"] >= 0.95
    sims, ms = stages.ann(queries, [(index, np.arange(400))], 400, 10)
    assert np.isfinite(sims).sum(axis=1).tolist() == [10] * 30 and len(ms) == 30
    relevant = np.eye(30, 400, dtype=bool)
    exact, _ = stages.exact(queries, corpus, 10)
    assert stages.figures(sims, relevant, "instance", ms)["R@10"] == stages.figures(exact, relevant, "instance", ms)["R@10"]


def test_missing_shared_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="esc10"):
        load_suite("esc10", tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", "fsdd", "--data", str(tmp_path)])
    assert exc.value.code == 2


def _shared() -> Path:
    path = Path(os.environ.get("XMODAL_SHARED_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"{path} not present (../shared/data holds the real corpora)")
    return path


def test_esc10_suite_is_fold_5_against_ten_captions():
    suite = load_suite("esc10", _shared())
    a2t, t2a = suite.directions
    assert (a2t.name, t2a.name) == ("audio->text", "text->audio")
    assert len(a2t.queries) == 80 and len(a2t.corpus) == 10 and (a2t.relevant.sum(axis=1) == 1).all()
    assert len(t2a.queries) == 10 and (t2a.relevant.sum(axis=1) == 8).all()


def test_fsdd_suite_has_every_pair_of_modalities():
    suite = load_suite("fsdd", _shared())
    names = [d.name for d in suite.directions]
    assert names == ["audio->image", "image->audio", "text->image", "image->text", "text->audio", "audio->text",
                     "text->image+audio"]
    speech = {d.name: d for d in suite.directions}["audio->image"]
    assert len(speech.queries) == 1000 and speech.relevant.any(axis=1).all()
