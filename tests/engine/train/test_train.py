import numpy as np
import pytest
import torch

from engine.models import AudioClip, Head, HeadConfig, SmallAudioCNN, SmallAudioConfig
from engine.train import ContrastiveLoss, PairSet, SharedSpace, TensorCache, TowerInputs, TrainConfig, batched, evaluate, group_ids, train


def _toy(n: int, seed: int) -> PairSet:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 8, generator=gen)
    proj_a = torch.randn(8, 20, generator=torch.Generator().manual_seed(1))
    proj_b = torch.randn(8, 12, generator=torch.Generator().manual_seed(2))
    a = z @ proj_a + 0.05 * torch.randn(n, 20, generator=gen)
    b = z @ proj_b + 0.05 * torch.randn(n, 12, generator=gen)
    return PairSet("toy", TowerInputs("image", {"features": a}, True), TowerInputs("text", {"features": b}, True), torch.arange(n))


def _space(seed: int = 0) -> SharedSpace:
    torch.manual_seed(seed)
    return SharedSpace({"image": Head(HeadConfig("linear", 20, 16)), "text": Head(HeadConfig("mlp", 12, 16, 32))})


def test_loss_prefers_aligned_pairs():
    loss = ContrastiveLoss()
    a = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    assert loss(a, a) < loss(a, a.roll(1, dims=0))
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.isfinite(loss(a, a, groups))


@pytest.mark.slow  # trains twice to compare
def test_training_learns_and_is_reproducible():
    train_set, val_set = _toy(600, 0), _toy(200, 1)
    model = _space()
    before = np.mean(evaluate(model, [val_set])["toy"])
    report = train(model, [train_set], [val_set], TrainConfig(epochs=15, batch_size=64, lr=5e-3, augment=False))
    after = np.mean(evaluate(model, [val_set])["toy"])
    assert before < 0.1 and after > 0.9
    assert report.best_score == pytest.approx(after)
    again = _space()
    train(again, [train_set], [val_set], TrainConfig(epochs=15, batch_size=64, lr=5e-3, augment=False))
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)


def test_early_stopping_keeps_best():
    train_set, val_set = _toy(300, 0), _toy(100, 1)
    report = train(_space(), [train_set], [val_set], TrainConfig(epochs=30, batch_size=64, patience=2, augment=False))
    assert len(report.history) < 30 or report.best_epoch == 29
    assert report.best_score == max(h["val_score"] for h in report.history)


def test_without_validation_pairs_the_lowest_loss_epoch_is_best():
    report = train(_space(), [_toy(300, 0)], [], TrainConfig(epochs=4, batch_size=64, patience=2, augment=False))
    losses = [h["loss"] for h in report.history]
    assert report.best_epoch == int(np.argmin(losses)) and report.best_score == pytest.approx(-min(losses))


def test_trainable_tower_one_epoch_smoke(tmp_path):
    rng = np.random.default_rng(0)
    tower = SmallAudioCNN(SmallAudioConfig(channels=(8, 16), out_dim=16, clip_seconds=0.5))
    clips = [AudioClip(rng.standard_normal(8000).astype(np.float32), 16000) for _ in range(16)]
    cache = TensorCache(tmp_path / "cache")
    key = cache.key(what="mels", n=16)
    mels = cache.get_or_make(key, lambda: batched(tower.preprocessor, clips, 8))
    assert (tmp_path / "cache" / f"{key}.pt").is_file()
    assert torch.equal(cache.get_or_make(key, lambda: pytest.fail("cache miss"))["mel"], mels["mel"])
    labels = group_ids([i % 4 for i in range(16)])
    text = torch.randn(4, 10)[labels]
    pairs = PairSet("a-t", TowerInputs("audio", mels), TowerInputs("text", {"features": text}, True), labels)
    model = SharedSpace({"audio": Head(HeadConfig("linear", 16, 8)), "text": Head(HeadConfig("linear", 10, 8))},
                        towers={"audio": tower})
    before = [p.detach().clone() for p in tower.parameters()]
    report = train(model, [pairs], [pairs], TrainConfig(epochs=1, batch_size=8))
    assert len(report.history) == 1 and np.isfinite(report.history[0]["loss"])
    assert any(not torch.equal(b, p) for b, p in zip(before, tower.parameters()))
