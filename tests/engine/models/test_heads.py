import pytest
import torch

from core.errors import InvalidPreset
from engine.models import Head, HeadConfig


@pytest.mark.parametrize(
    "config",
    [HeadConfig("identity", 32, 32), HeadConfig("linear", 48, 32), HeadConfig("mlp", 48, 32, hidden_dim=64)],
)
def test_head_save_load_identical(tmp_path, config):
    torch.manual_seed(0)
    head = Head(config).eval()
    x = torch.randn(7, config.in_dim)
    out = head(x)
    assert out.shape == (7, config.out_dim)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(7))
    head.save(tmp_path / "head")
    assert (tmp_path / "head" / "config.json").is_file()
    assert (tmp_path / "head" / "model.safetensors").is_file()
    loaded = Head.load(tmp_path / "head")
    assert loaded.config == config
    assert torch.equal(loaded(x), out)


def test_identity_head_needs_equal_dims():
    with pytest.raises(InvalidPreset):
        HeadConfig("identity", 32, 64)


def test_unknown_head_kind():
    with pytest.raises(InvalidPreset):
        HeadConfig("transformer", 8, 8)
