"""Hubness in the fitted curves: a representation close to every generic query needs a higher cosine to count."""

import json

import numpy as np
import pytest

from core.errors import InvalidPreset
from engine.models import get_preset
from engine.query import Calibrations, PairFit, Searcher
from engine.query.calibrate import fit_pair, hubness_by_id, hubs_path, load_for_preset, top_mean
from index import Hit


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_fit_pair_learns_that_a_hub_needs_a_higher_cosine():
    rng = np.random.default_rng(0)
    n = 2000
    positives, positive_hubs = rng.normal(0.7, 0.05, n), rng.normal(0.4, 0.05, n)
    # half the non-matches are ordinary, half are hubs: as close as a match, and close to everything
    negatives = np.r_[rng.normal(0.4, 0.05, n), rng.normal(0.7, 0.05, n)]
    negative_hubs = np.r_[rng.normal(0.4, 0.05, n), rng.normal(0.8, 0.05, n)]
    plain = fit_pair(positives, negatives)
    fit = fit_pair(positives, negatives, positive_hubness=positive_hubs, negative_hubness=negative_hubs)
    assert fit.hub < 0 and plain.hub == 0.0
    assert fit.auc > 0.99 > 0.9 > plain.auc
    assert fit.probability(0.7, 0.4) > 0.9 and fit.probability(0.7, 0.8) < 0.1
    assert fit.hub_typical == pytest.approx(np.median(np.r_[positive_hubs, negative_hubs]))
    assert fit.logit(0.7) == pytest.approx(fit.logit(0.7, fit.hub_typical))  # unknown hubness: the typical one


def test_hubness_is_the_mean_of_the_top_k_cosines_to_the_generic_sample():
    rng = np.random.default_rng(1)
    sample, vectors = _unit(rng.normal(size=(40, 8))), _unit(rng.normal(size=(5, 8)))
    cal = Calibrations({"text->image": PairFit(10.0, -5.0, hub=-2.0, hub_typical=0.3)}, hub_samples={"text": sample},
                       hub_k=3)
    expected = [np.sort(sample @ v)[-3:].mean() for v in vectors]
    assert cal.hubness("text", vectors) == pytest.approx(expected, abs=1e-6)
    assert cal.hubness("audio", vectors) is None and cal.uses_hubness
    assert top_mean(np.array([[1.0, 5.0, 3.0]]), 10).tolist() == [3.0]


def test_a_calibration_with_its_generic_sample_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    samples = {"text": _unit(rng.normal(size=(30, 8))), "image": _unit(rng.normal(size=(20, 8)))}
    cal = Calibrations({"text->image": PairFit(10.0, -5.0, 4, 5, 0.9, -3.0, 0.4)}, 0.5, "test", hub_samples=samples,
                       hub_k=4)
    path = tmp_path / "p.calibration.json"
    cal.save(path)
    assert hubs_path(path).name == "p.calibration.hubs.npz" and hubs_path(path).is_file()
    back = Calibrations.load(path)
    assert back == cal and back.hub_k == 4
    for modality, sample in samples.items():
        assert back.hub_samples[modality] == pytest.approx(sample, abs=1e-3)  # stored as float16
    assert json.loads(path.read_text())["hubs"] == {"file": "p.calibration.hubs.npz", "k": 4}


def _write(path, body):
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize("problem", ["no sample", "missing file", "nan", "one row of another width", "bad k"])
def test_curves_that_read_hubness_need_a_sound_sample(tmp_path, problem):
    pairs = {"text->image": {"slope": 10.0, "intercept": -5.0, "hub": -3.0, "hub_typical": 0.4}}
    body = {"format": 1, "pairs": pairs, "hubs": {"file": "c.hubs.npz", "k": 10}}
    good = np.ones((4, 8), dtype=np.float16) / np.sqrt(8)
    if problem == "no sample":
        del body["hubs"]
    elif problem == "nan":
        np.savez(tmp_path / "c.hubs.npz", text=np.full((4, 8), np.nan, dtype=np.float16))
    elif problem == "one row of another width":
        np.savez(tmp_path / "c.hubs.npz", text=good, image=np.ones((4, 6), dtype=np.float16))
    elif problem == "bad k":
        np.savez(tmp_path / "c.hubs.npz", text=good)
        body["hubs"]["k"] = 0
    with pytest.raises(InvalidPreset):
        Calibrations.load(_write(tmp_path / "c.json", body))


def _hit(item: int, rep: int) -> Hit:
    return Hit(rep, item, f"/m/{item}", "image", "image", "image", None, None, "ok")


class _Catalog:
    def __init__(self, vectors: dict[int, np.ndarray]) -> None:
        self.vectors = vectors

    def vectors_for(self, model: str, ids: np.ndarray) -> np.ndarray:
        return np.stack([self.vectors[int(i)] for i in ids])


class _Store:
    def __init__(self, vectors: dict[int, np.ndarray]) -> None:
        self.catalog = _Catalog(vectors)


def test_search_ranks_a_hub_below_a_match_of_the_same_cosine():
    """Two image hits at cosine 0.8 for a text query: the one sitting among the generic text queries (a hub) ranks
    second and is weak; the other keeps a confident probability."""
    rng = np.random.default_rng(3)
    sample = _unit(rng.normal(size=(50, 16)) * 0.2 + np.eye(16)[0])  # generic text queries around one direction
    hub_vector, other = np.eye(16, dtype=np.float32)[0], np.eye(16, dtype=np.float32)[5]
    fit = PairFit(30.0, -20.0, hub=-10.0, hub_typical=0.3)
    cal = Calibrations({"text->image": fit}, hub_samples={"text": sample}, hub_k=5)
    store = _Store({10: hub_vector, 20: other})
    searcher = Searcher(store=store, model="m", calibrations=cal)  # type: ignore[arg-type]
    results = searcher._fuse({"image": [(_hit(1, 10), 0.8), (_hit(2, 20), 0.8)]}, "text", "probability", 2)
    assert [r.item_id for r in results] == [2, 1]
    assert [r.weak for r in results] == [False, True]
    hubs = hubness_by_id(cal, searcher.store, "m", "text", [10, 20])
    assert hubs[10] > 0.8 > 0.3 > hubs[20]
    assert results[1].probability == pytest.approx(float(fit.probability(0.8, hubs[10])), abs=1e-9)


def test_without_hubness_in_the_curves_no_vector_is_read():
    cal = Calibrations({"text->image": PairFit(30.0, -20.0)})
    assert hubness_by_id(cal, None, "m", "text", [1, 2]) == {}  # a store of None would raise if it were read
    assert hubness_by_id(None, None, "m", "text", [1, 2]) == {}


def test_the_shipped_calibration_reads_hubness_against_its_own_sample():
    preset = get_preset("xmodal-mini")
    cal = load_for_preset(preset)
    assert cal is not None and cal.uses_hubness
    for modality in ("image", "text", "audio"):
        sample = cal.hub_samples[modality]
        assert 0 < len(sample) <= 512 and np.allclose(np.linalg.norm(sample, axis=1), 1.0, atol=1e-2)
    assert hubs_path(f"{preset.path.parent}/xmodal-mini.calibration.json").is_file()
