"""Image loading, processing and timm encoders."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from modalities import MediaError
from modalities.image import ImageEncoder, ImageEncoderConfig, ImageProcessor, load_image
from modalities.record import get_modality


def _png_bytes(colour=(255, 0, 0), size=(10, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_load_image_from_every_source(tmp_path):
    data = _png_bytes()
    (tmp_path / "a.png").write_bytes(data)
    sources = [str(tmp_path / "a.png"), tmp_path / "a.png", data, {"bytes": data, "path": None},
               {"bytes": None, "path": "a.png"}, np.full((6, 10, 3), [255, 0, 0], np.uint8), Image.open(io.BytesIO(data))]
    for src in sources:
        im = load_image(src, root=tmp_path)
        assert im.mode == "RGB" and im.size == (10, 6) and im.getpixel((0, 0)) == (255, 0, 0)


def test_load_image_errors_are_clear(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(MediaError, match="unreadable image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(MediaError, match="cannot read an image from a int"):
        load_image(3)


def test_processor_resizes_and_normalises():
    proc = ImageProcessor(image_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = proc([_png_bytes((255, 0, 0), (16, 16)), _png_bytes((0, 0, 0), (4, 4))])
    assert x.shape == (2, 3, 8, 8)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    torch.testing.assert_close(x[1], torch.full((3, 8, 8), -1.0))
    assert ImageProcessor.from_dict(proc.to_dict()).config == proc.config


@pytest.mark.parametrize(
    "model_name,kwargs,tokens",
    [
        ("vit_tiny_patch16_224", {"patch_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2}, 9),
        ("resnet10t", {}, 4),  # a CNN: its feature map becomes tokens
    ],
)
def test_timm_encoders_return_spatial_tokens(model_name, kwargs, tokens):
    enc = ImageEncoder(ImageEncoderConfig(model_name=model_name, image_size=48 if "vit" in model_name else 64,
                                          timm_kwargs=kwargs))
    size = enc.config.image_size
    out = enc(torch.randn(2, 3, size, size))
    assert out.shape == (2, tokens, enc.out_dim) and enc.num_tokens == tokens


def test_modality_registry():
    assert get_modality("image").input_key == "pixel_values"
    with pytest.raises(KeyError, match="unknown modality 'smell'"):
        get_modality("smell")
