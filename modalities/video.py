"""The video modality: loading a clip as a few RGB frames sampled evenly across it.

Video models see a handful of frames, not every frame, so ``load_video`` decodes only those
(with decord, which seeks) and returns them as one ``[T, H, W, 3]`` uint8 array, whatever the
source: a file, encoded bytes, an HF-style dict, an array or a list of frames.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalities import MediaError, resolve_path
from modalities.image import load_image
from modalities.record import MODALITIES, Modality

VideoLike = Any  # a path, bytes, a {"bytes"|"path"} dict, a [T, H, W, 3] array/tensor or a list of frames


def sample_indices(total: int, num_frames: int) -> np.ndarray:
    """``min(num_frames, total)`` increasing frame indices spread evenly from the first frame to the last."""
    count = min(num_frames, total)
    return np.linspace(0, total - 1, count).round().astype(np.int64)


def load_video(src: VideoLike, root: str | Path | None = None, num_frames: int = 8) -> np.ndarray:
    """Read ``min(num_frames, total frames)`` frames, evenly spread over the clip, as ``[T, H, W, 3]`` uint8.

    Relative paths resolve against ``root``; every failure raises MediaError.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if isinstance(src, dict):  # HF-style {"bytes"|"path"} dict
        if src.get("bytes") is not None:
            return load_video(src["bytes"], root, num_frames)
        if src.get("path") is not None:
            return load_video(src["path"], root, num_frames)
        raise MediaError(f"video dict has neither 'bytes' nor 'path' set (keys: {sorted(src)})")
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(src)), f"{len(src)} bytes", num_frames)
    if isinstance(src, (str, Path)):
        path = resolve_path(src, root)
        if not path.exists():
            raise MediaError(f"video file not found: {path}")
        return _decode(str(path), str(path), num_frames)
    if isinstance(src, torch.Tensor):
        src = src.detach().cpu().numpy()
    if isinstance(src, np.ndarray):
        frames = _as_uint8(src)
    elif isinstance(src, (list, tuple)):
        frames = _stack(src, root)
    else:
        raise MediaError(f"cannot read a video from a {type(src).__name__}")
    if frames.shape[0] == 0:
        raise MediaError("empty video: it holds no frames")
    return frames[sample_indices(frames.shape[0], num_frames)]


def write_video(path: str | Path, frames: Any, fps: float) -> Path:
    """Write ``frames`` (``[T, H, W, 3]`` uint8, or a list of frames) as H.264 MP4 with PyAV.

    H and W must be even (yuv420p). torchvision 0.29 no longer has ``torchvision.io.write_video``,
    hence PyAV (``av``, a test extra) directly.
    """
    import av  # test/synthetic-data dependency; imported on use

    frames = _stack(frames, None) if isinstance(frames, (list, tuple)) else _as_uint8(np.asarray(frames))
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError("cannot write a video with no frames")
    if h % 2 or w % 2:
        raise ValueError(f"H.264 (yuv420p) needs an even frame size, got {h}x{w}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush
    return path


def _decode(file: Any, what: str, num_frames: int) -> np.ndarray:
    try:  # imported on use: wheels exist for x86_64 (Linux, macOS, Windows) only
        import decord
    except ImportError:
        raise MediaError(
            f"cannot decode {what}: decord is not installed (it has x86_64 wheels only); pass the video as "
            "a [T, H, W, 3] array or a list of frames instead"
        ) from None

    try:
        reader = decord.VideoReader(file, ctx=decord.cpu(0))
        total = len(reader)
        if total == 0:
            raise MediaError(f"empty video: {what} holds no frames")
        indices = sample_indices(total, num_frames)
        first = reader[0].asnumpy()
        if first.shape[-1] == 3:
            return reader.get_batch(indices.tolist()).asnumpy()
        # decord 0.6 bug: for some widths (16, 24, 48, 72, ...) it returns each row padded to a
        # wider buffer, shaped [H, W, k] with k != 3, and get_batch fails; read frame by frame.
        h, w = first.shape[:2]
        return np.stack([reader[int(i)].asnumpy().reshape(h, -1)[:, : w * 3].reshape(h, w, 3) for i in indices])
    except MediaError:
        raise
    except (RuntimeError, ValueError, IndexError) as e:  # decord.DECORDError is a RuntimeError
        raise MediaError(f"unreadable video in {what} ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _as_uint8(array: np.ndarray) -> np.ndarray:
    if array.ndim != 4 or array.shape[-1] != 3:
        raise MediaError(f"a video array must be [T, H, W, 3], got shape {tuple(array.shape)}")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise MediaError(f"a video array must be uint8 or floats in [0, 1], got dtype {array.dtype}")
    return np.clip(array * 255.0, 0, 255).round().astype(np.uint8)


def _stack(frames: list | tuple, root: str | Path | None) -> np.ndarray:
    images = [np.asarray(load_image(f, root)) for f in frames]  # PIL images, arrays, paths, bytes
    if not images:
        return np.zeros((0, 0, 0, 3), np.uint8)
    sizes = {im.shape for im in images}
    if len(sizes) > 1:
        raise MediaError(f"video frames differ in size: {sorted(sizes)}")
    return np.stack(images)


# No composed video encoder yet (placeholder/encoder/processor None); the loader samples num_frames frames.
MODALITIES.register("video", Modality(
    name="video", column="videos", load=load_video, processor_kwarg="videos", hf_subprocessor="video_processor",
    input_key="pixel_values_videos", input_prefixes=("video_", "pixel_values_videos"),
    token_id_attr="video_token_id", hf_encode_method="get_video_features", order=2, load_options=("num_frames",),
))  # fmt: skip
