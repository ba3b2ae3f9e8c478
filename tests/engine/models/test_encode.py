import numpy as np
import pytest

from core.errors import InvalidInput, UnsupportedModality
from engine.models import AudioClip, load_encoder

MODALITIES = ["image", "text", "audio"]


@pytest.mark.parametrize("modality", MODALITIES)
def test_encode_shape_dtype_unit_norm(tiny_encoder, sample_media, modality):
    inputs = sample_media[modality]
    vectors = tiny_encoder.encode(modality, inputs, batch_size=2)
    assert vectors.shape == (len(inputs), tiny_encoder.dim)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("modality", MODALITIES)
def test_batching_does_not_change_vectors(tiny_encoder, sample_media, modality):
    inputs = sample_media[modality][:3]
    one_by_one = tiny_encoder.encode(modality, inputs, batch_size=1)
    together = tiny_encoder.encode(modality, inputs, batch_size=3)
    if modality == "text":  # padding differs by batch but open_clip pads to a fixed context: identical
        np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    else:
        np.testing.assert_allclose(one_by_one, together, atol=1e-4)


@pytest.mark.parametrize("modality", MODALITIES)
def test_bf16_close_to_fp32(tiny_encoder, sample_media, modality):
    inputs = sample_media[modality][:3]
    fp32 = tiny_encoder.encode(modality, inputs, precision="fp32")
    bf16 = tiny_encoder.encode(modality, inputs, precision="bf16")
    assert bf16.dtype == np.float32
    cosine = np.sum(fp32 * bf16, axis=1)
    assert np.all(cosine >= 0.999), cosine


def test_distinct_inputs_give_distinct_vectors(tiny_encoder, sample_media):
    v = tiny_encoder.encode("text", sample_media["text"][:2])
    assert float(v[0] @ v[1]) < 0.9999


def test_empty_input_list(tiny_encoder):
    out = tiny_encoder.encode("text", [])
    assert out.shape == (0, tiny_encoder.dim) and out.dtype == np.float32


def test_seeded_random_weights_are_reproducible(tiny_encoder, sample_media):
    again = load_encoder("tiny-random", modalities=["text"])
    np.testing.assert_array_equal(
        again.encode("text", sample_media["text"][:2]), tiny_encoder.encode("text", sample_media["text"][:2])
    )


@pytest.mark.parametrize(
    "modality, bad",
    [("image", ["not an image"]), ("text", [3]), ("audio", ["x.wav"]), ("audio", [AudioClip(np.zeros(0), 16000)]),
     ("audio", [(np.full(100, np.nan), 16000)]), ("text", "a plain string")],
)
def test_bad_inputs_raise(tiny_encoder, modality, bad):
    with pytest.raises(InvalidInput):
        tiny_encoder.encode(modality, bad)


def test_unknown_modality_and_precision(tiny_encoder):
    with pytest.raises(UnsupportedModality):
        tiny_encoder.encode("video", ["x"])
    with pytest.raises(InvalidInput):
        tiny_encoder.encode("text", ["x"], precision="fp8")
