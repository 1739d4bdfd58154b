"""The audio modality: loading into the one shape audio encoders take.

Datasets hand audio over as files, encoded bytes, HF ``Audio`` dicts or raw arrays, at whatever
rate and channel count they were recorded in; encoders (Whisper-style feature extractors) want a
mono float32 waveform at one fixed rate. ``load_audio`` does that conversion in one place, so a
bad item fails here with a MediaError that names it rather than deep inside a collator.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from modalities import MediaError, resolve_path
from modalities.record import MODALITIES, Modality

AudioLike = Any  # a path, bytes, an HF `Audio` dict, a numpy array or a torch tensor


def load_audio(src: AudioLike, root: str | Path | None = None, sampling_rate: int = 16000) -> np.ndarray:
    """Read audio as a 1-D float32 mono waveform at ``sampling_rate``.

    Relative paths resolve against ``root``. Arrays and tensors carry no rate, so they are taken to
    be at ``sampling_rate`` already; a 2-D one has its channels on the shorter axis. Multi-channel
    audio is averaged to mono. Every failure raises MediaError.
    """
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be positive, got {sampling_rate}")
    wave, rate = _decode(src, root, sampling_rate)
    if wave.size == 0:
        raise MediaError(f"empty audio: {_describe(src)} holds no samples")
    if not np.all(np.isfinite(wave)):
        raise MediaError(f"audio from {_describe(src)} holds NaN or infinite samples")
    if rate != sampling_rate:
        from torchaudio.functional import resample  # heavy; imported on use

        wave = resample(torch.from_numpy(wave), int(rate), int(sampling_rate)).numpy()
    return np.ascontiguousarray(wave, dtype=np.float32)


def write_wav(path: str | Path, waveform: Any, sampling_rate: int) -> Path:
    """Write ``waveform`` (``[samples]`` or ``[samples, channels]``, floats in [-1, 1]) as 16-bit WAV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    sf.write(str(path), np.asarray(waveform, dtype=np.float32), int(sampling_rate), format="WAV", subtype="PCM_16")
    return path


def _decode(src: AudioLike, root: str | Path | None, sampling_rate: int) -> tuple[np.ndarray, int]:
    """``(mono samples, rate)`` for any supported source."""
    if isinstance(src, dict):  # the HF datasets `Audio` feature
        if src.get("array") is not None:
            if src.get("sampling_rate") is None:
                raise MediaError("audio dict has an 'array' but no 'sampling_rate'")
            array = src["array"]
            if isinstance(array, (list, tuple)):  # datasets formatted as python lists
                array = np.asarray(array, dtype=np.float32)
            wave, _ = _decode(array, root, sampling_rate)
            return wave, _rate(src["sampling_rate"])
        if src.get("bytes") is not None:
            return _decode(src["bytes"], root, sampling_rate)
        if src.get("path") is not None:
            return _decode(src["path"], root, sampling_rate)
        raise MediaError(f"audio dict has none of 'array', 'bytes', 'path' set (keys: {sorted(src)})")
    if isinstance(src, torch.Tensor):
        tensor = src.detach().cpu()
        if tensor.is_floating_point():  # bfloat16 has no numpy dtype
            tensor = tensor.float()
        return _array_to_mono(tensor.numpy(), "tensor"), sampling_rate
    if isinstance(src, np.ndarray):
        return _array_to_mono(src, "array"), sampling_rate
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _read(io.BytesIO(bytes(src)), f"{len(src)} bytes")
    if isinstance(src, (str, Path)):
        path = resolve_path(src, root)
        if not path.exists():
            raise MediaError(f"audio file not found: {path}")
        return _read(str(path), str(path))
    hint = ""
    if hasattr(src, "get_all_samples"):  # datasets >= 4 decodes `Audio` columns into torchcodec decoders
        hint = "; cast the column with datasets.Audio(decode=False) to get paths/bytes instead"
    raise MediaError(f"cannot read audio from a {type(src).__name__}{hint}")


def _read(file: Any, what: str) -> tuple[np.ndarray, int]:
    try:
        data, rate = sf.read(file, dtype="float32", always_2d=True)  # [samples, channels]
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as e:
        reason = getattr(e, "error_string", None) or f"{type(e).__name__}: {e}"  # libsndfile's own words
        raise MediaError(f"unreadable audio in {what} ({reason})") from None
    return data.mean(axis=1), int(rate)


def _array_to_mono(array: np.ndarray, what: str) -> np.ndarray:
    if np.issubdtype(array.dtype, np.integer):  # PCM: scale to [-1, 1)
        array = array.astype(np.float32) / float(-np.iinfo(array.dtype).min)
    elif not np.issubdtype(array.dtype, np.floating):
        raise MediaError(f"audio {what} must hold numbers, got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if array.size == 0:
        return np.zeros(0, np.float32)  # load_audio reports it as empty
    if array.ndim == 1:
        return array
    if array.ndim == 2:  # channels are the shorter axis: [channels, samples] or [samples, channels]
        return array.mean(axis=0 if array.shape[0] < array.shape[1] else 1)
    raise MediaError(f"audio {what} must be 1-D [samples] or 2-D [channels, samples], got shape {array.shape}")


def _rate(rate: Any) -> int:
    try:
        value = int(rate)
    except (TypeError, ValueError):
        raise MediaError(f"audio sampling_rate must be a positive integer, got {rate!r}") from None
    if value <= 0 or value != rate:
        raise MediaError(f"audio sampling_rate must be a positive integer, got {rate!r}")
    return value


def _describe(src: AudioLike) -> str:
    if isinstance(src, (str, Path)):
        return str(src)
    if isinstance(src, dict):
        return f"audio dict (path={src.get('path')!r})"
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"{len(src)} bytes"
    return f"a {type(src).__name__}"


# No composed audio encoder yet (placeholder/encoder/processor None). The loader resamples to the rate
# the model's feature extractor expects: the example encoder's sampling_rate.
MODALITIES.register("audio", Modality(
    name="audio", column="audios", load=load_audio, processor_kwarg="audio", hf_subprocessor="feature_extractor",
    input_key="input_features", input_prefixes=("input_features", "feature_", "audio_"),
    token_id_attr="audio_token_id", hf_encode_method="get_audio_features", order=1, load_options=("sampling_rate",),
))  # fmt: skip
