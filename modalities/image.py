"""The image modality: loading (PIL), processing (resize + normalise) and encoding (any timm model).

The encoder returns one embedding per spatial token, so a composed model can splice the tokens
of each image into the language model's sequence, LLaVA-style.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from modalities import MediaError, resolve_path
from modalities.record import MODALITIES, Modality

PLACEHOLDER = "<image>"

ImageLike = Any  # a path, bytes, a {"bytes"|"path"} dict (HF `Image` feature), an array or a PIL image

# Files and bytes larger than this are refused before decoding (a decompression bomb: a tiny PNG whose
# header claims 20000×20000 would take 1.2 GB). 8192×8192 is far above what any VLM processor keeps.
MAX_IMAGE_PIXELS = 8192 * 8192


def load_image(src: ImageLike, root: str | Path | None = None, max_pixels: int | None = MAX_IMAGE_PIXELS) -> Image.Image:
    """Read an image into RGB. Relative paths resolve against ``root``; a file or bytes of more than
    ``max_pixels`` pixels (None: PIL's own limit only) and every other failure raise MediaError."""
    try:
        if isinstance(src, Image.Image):
            return src.convert("RGB")
        if isinstance(src, dict):  # the HF datasets `Image` feature
            if src.get("bytes") is not None:
                return load_image(src["bytes"], max_pixels=max_pixels)
            return load_image(src.get("path"), root, max_pixels)
        if isinstance(src, (bytes, bytearray)):
            with Image.open(io.BytesIO(src)) as im:
                return _decode(im, max_pixels)
        if isinstance(src, np.ndarray):
            array = src if src.dtype == np.uint8 else np.clip(src * 255.0, 0, 255).astype(np.uint8)
            return Image.fromarray(array).convert("RGB")
        if isinstance(src, (str, Path)):
            path = resolve_path(src, root)
            with Image.open(path) as im:
                return _decode(im, max_pixels)
    except FileNotFoundError as e:
        raise MediaError(f"image file not found: {e.filename}") from None
    except Image.DecompressionBombError as e:  # PIL's own hard limit, checked when it reads the header
        raise MediaError(f"image too large, refused before decoding ({e})") from None
    except MediaError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, TypeError) as e:
        raise MediaError(f"unreadable image ({type(e).__name__}: {e})") from None
    raise MediaError(f"cannot read an image from a {type(src).__name__}")


def _decode(im: Image.Image, max_pixels: int | None) -> Image.Image:
    """Decode an opened image (only its header is read so far) unless it claims more than ``max_pixels``."""
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        raise MediaError(f"image too large: {width}×{height} = {width * height:,} pixels, over the limit of "
                         f"{max_pixels:,} (a decompression bomb? raise data.max_image_pixels if it is genuine)")
    return im.convert("RGB")


@dataclass
class ImageProcessorConfig:
    image_size: int = 48  # square side the image is resized to
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)  # per-channel normalisation (timm's pretrained_cfg for real encoders)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    resample: str = "bilinear"  # PIL resampling filter name


class ImageProcessor:
    """Turns images into a normalised ``[N, 3, S, S]`` float tensor."""

    def __init__(self, config: ImageProcessorConfig | None = None, **kwargs):
        self.config = config or ImageProcessorConfig(**kwargs)
        c = self.config
        self._mean = torch.tensor(c.mean).view(3, 1, 1)
        self._std = torch.tensor(c.std).view(3, 1, 1)
        self._resample = Image.Resampling[c.resample.upper()]

    def __call__(self, images: list[ImageLike], root: str | Path | None = None) -> torch.Tensor:
        s = self.config.image_size
        tensors = []
        for img in images:
            im = load_image(img, root)
            if im.size != (s, s):
                im = im.resize((s, s), self._resample)
            t = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
            tensors.append((t - self._mean) / self._std)
        if not tensors:
            return torch.zeros(0, 3, s, s)
        return torch.stack(tensors)

    def to_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_dict(cls, d: dict) -> "ImageProcessor":
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(ImageProcessorConfig(**d))


@dataclass
class ImageEncoderConfig:
    model_name: str = "vit_tiny_patch16_224"  # any timm model name
    image_size: int = 48
    timm_kwargs: dict = field(default_factory=dict)  # constructor overrides, e.g. {"patch_size": 12, "depth": 3}


class ImageEncoder(nn.Module):
    """A timm backbone returning spatial tokens ``[N, tokens, dim]`` (prefix/CLS tokens dropped)."""

    def __init__(self, config: ImageEncoderConfig, pretrained: bool = False):
        super().__init__()
        import timm  # heavy; imported on use

        self.config = config
        kwargs = dict(config.timm_kwargs)
        if "vit" in config.model_name or "deit" in config.model_name:
            kwargs.setdefault("img_size", config.image_size)
        self.backbone = timm.create_model(config.model_name, pretrained=pretrained, num_classes=0, **kwargs)
        self.num_prefix_tokens = int(getattr(self.backbone, "num_prefix_tokens", 0))
        self.out_dim = int(self.backbone.num_features)
        with torch.no_grad():
            probe = self.forward(torch.zeros(1, 3, config.image_size, config.image_size))
        self.num_tokens = int(probe.shape[1])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_features(pixel_values)
        if feats.ndim == 4:  # CNN feature map [N, C, H, W] -> tokens
            return feats.flatten(2).transpose(1, 2)
        return feats[:, self.num_prefix_tokens :]

    def processor_config(self) -> ImageProcessorConfig:
        """Preprocessing that travels with the encoder's weights."""
        cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
        return ImageProcessorConfig(
            image_size=self.config.image_size,
            mean=tuple(cfg.get("mean", (0.5, 0.5, 0.5))),
            std=tuple(cfg.get("std", (0.5, 0.5, 0.5))),
        )


MODALITIES.register("image", Modality(
    name="image", column="images", load=load_image, processor_kwarg="images", hf_subprocessor="image_processor",
    input_key="pixel_values", input_prefixes=("pixel_", "image_"),  # pixel_: also Idefics3's pixel_attention_mask
    load_options=("max_pixels",),
    token_id_attr="image_token_id", hf_encode_method="get_image_features", order=0, world="shapes",
    placeholder=PLACEHOLDER, encoder_config=ImageEncoderConfig, encoder=ImageEncoder, processor=ImageProcessor,
))  # fmt: skip
