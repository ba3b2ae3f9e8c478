"""Per-pair score calibration (cosine -> probability of a match), probability fusion and result-kind planning."""

import json

import numpy as np
import pytest

from core.errors import InvalidInput, InvalidPreset
from engine.query import Calibrations, Filters, PairFit, Searcher, plan_search
from engine.query.calibrate import auc, calibration_path, fit_pair, load_for_preset, sigmoid
from engine.models import get_preset
from index import Hit


def test_fit_pair_puts_the_half_way_point_between_matches_and_non_matches():
    rng = np.random.default_rng(0)
    positives, negatives = rng.normal(0.8, 0.05, 500), rng.normal(0.2, 0.05, 5000)
    fit = fit_pair(positives, negatives)
    cut = -fit.intercept / fit.slope
    assert 0.4 < cut < 0.6
    assert fit.probability(0.8) > 0.95 and fit.probability(0.2) < 0.05
    assert fit.auc == pytest.approx(1.0, abs=1e-3) and (fit.positives, fit.negatives) == (500, 5000)


def test_an_untrustworthy_pair_gets_a_flat_curve():
    rng = np.random.default_rng(1)
    overlapping = fit_pair(rng.normal(0.45, 0.1, 500), rng.normal(0.40, 0.1, 5000))
    separable = fit_pair(rng.normal(0.8, 0.05, 500), rng.normal(0.2, 0.05, 5000))
    assert overlapping.slope < separable.slope / 5
    assert overlapping.probability(0.6) < 0.8  # even a high score of a weak pair stays unsure
    assert 0.5 < overlapping.auc < 0.7


def test_auc_counts_ties_half():
    assert auc(np.array([1.0, 2.0]), np.array([0.0, 0.5])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5


def test_fit_pair_needs_both_classes():
    with pytest.raises(ValueError):
        fit_pair(np.array([]), np.array([0.1, 0.2]))


def test_sigmoid_is_stable():
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]


def test_calibrations_round_trip_and_kind_fallback(tmp_path):
    cal = Calibrations({"text->image": PairFit(10.0, -5.0), "text->text:caption": PairFit(20.0, -12.0)}, 0.5, "test")
    path = tmp_path / "p.calibration.json"
    cal.save(path)
    back = Calibrations.load(path)
    assert back == cal
    assert back.fit_for("text", "text", "caption") == PairFit(20.0, -12.0)
    assert back.fit_for("text", "image", "image") == PairFit(10.0, -5.0)  # no kind-specific fit: the pair's
    assert back.fit_for("text", "text", "text") is None and back.fit_for("audio", "image") is None


@pytest.mark.parametrize("body", ["{", json.dumps({"format": 99, "pairs": {}}),
                                  json.dumps({"format": 1, "pairs": {"a->b": {"slope": "x"}}}),
                                  json.dumps({"format": 1, "pairs": {"a->b": {"slope": float("nan"), "intercept": 0}}})])
def test_a_bad_calibration_file_is_a_preset_error(tmp_path, body):
    path = tmp_path / "bad.calibration.json"
    path.write_text(body)
    with pytest.raises(InvalidPreset):
        Calibrations.load(path)


def test_the_shipped_preset_carries_its_calibration():
    preset = get_preset("xmodal-mini")
    cal = load_for_preset(preset)
    assert cal is not None and calibration_path(preset.path).is_file()
    for q in ("image", "text", "audio"):
        for t in ("image", "text", "audio"):
            fit = cal.fit_for(q, t)
            assert fit is not None and fit.slope > 0 and fit.auc > 0.8  # against each query's best non-matches
    assert load_for_preset(get_preset("tiny-random")) is None


def _hit(item: int, kind: str, modality: str, item_modality: str) -> Hit:
    return Hit(item * 10, item, f"/m/{item}", item_modality, kind, modality, None, None, "ok")


class _Background:
    def __init__(self, mean: float, std: float) -> None:
        self.mean, self.std = mean, std


def test_probability_fusion_does_not_let_a_narrow_background_lead():
    """The issue's case: audio->image at cosine 0.43 over a narrow background (z 2.7) against audio->audio at
    0.88 over a wide one (z 2.2). Z-scores put the photo first; probabilities put the dog bark first."""
    cal = Calibrations({"audio->image": PairFit(20.0, -9.2), "audio->audio": PairFit(25.0, -14.7)})
    searcher = Searcher(store=None, model="m", calibrations=cal)  # type: ignore[arg-type]
    backgrounds = {"image": _Background(0.30, 0.05), "audio": _Background(0.40, 0.22)}
    searcher.calibration = lambda q, t: backgrounds[t]  # type: ignore[method-assign]
    lists = {"image": [(_hit(1, "image", "image", "image"), 0.435), (_hit(2, "image", "image", "image"), 0.40)],
             "audio": [(_hit(3, "audio-segment", "audio", "audio"), 0.88), (_hit(4, "audio-segment", "audio", "audio"), 0.86)]}
    z = searcher._fuse(lists, "audio", "calibrated", 4)
    assert [r.item_id for r in z][:2] == [1, 3]  # today's failure, reproduced
    p = searcher._fuse(lists, "audio", "probability", 4)
    assert [r.item_id for r in p] == [3, 4, 1, 2]
    assert [r.weak for r in p] == [False, False, True, True]
    assert all(0.0 <= r.score <= 1.0 and r.score == r.probability for r in p)
    assert z[0].probability == pytest.approx(float(sigmoid(20.0 * 0.435 - 9.2)))  # every fusion reports it


def test_probability_fusion_without_a_fit_falls_back_to_background_scores():
    searcher = Searcher(store=None, model="m", calibrations=None)  # type: ignore[arg-type]
    searcher.calibration = lambda q, t: _Background(0.0, 0.1)  # type: ignore[method-assign]
    lists = {"image": [(_hit(1, "image", "image", "image"), 0.5)], "text": [(_hit(2, "text", "text", "text"), 0.3)]}
    results = searcher._fuse(lists, "text", "probability", 2)
    assert [r.item_id for r in results] == [1, 2]
    assert results[0].score == pytest.approx(5.0) and results[0].probability is None and not results[0].weak


def test_plan_search_targets_are_result_kinds_over_every_index():
    available = ["image", "text", "audio"]
    searched, filters = plan_search(available, ["image"], None, Filters())
    assert searched == available and filters.modalities == ("image",)
    searched, filters = plan_search(available, None, ["image"], Filters(uri_glob="*.jpg"))
    assert searched == ["image"] and filters == Filters(uri_glob="*.jpg")
    searched, filters = plan_search(available, ["image", "image", "audio"], None, Filters(("audio", "text")))
    assert filters.modalities == ("audio",)
    assert plan_search(available, ["image"], None, Filters(("text",))) is None
    assert plan_search(["image"], None, ["audio"], Filters()) == ([], Filters())
    with pytest.raises(InvalidInput, match="lidar"):
        plan_search(available, ["lidar"], None, Filters())
    with pytest.raises(InvalidInput, match="indexes"):
        plan_search(available, None, ["pixels"], Filters())
