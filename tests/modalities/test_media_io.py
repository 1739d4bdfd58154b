"""Audio and video loading: every source, round trips through real files, and clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from modalities import MediaError
from modalities.audio import load_audio, write_wav
from modalities.video import load_video, sample_indices, write_video


def _sine(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


def _flac_bytes(wave: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="FLAC")
    return buf.getvalue()


def test_wav_round_trip_downmixes_resamples_and_keeps_frequency(tmp_path):
    left, right = _sine(440, 8000), _sine(440, 8000, amplitude=0.3)
    path = write_wav(tmp_path / "sub" / "tone.wav", np.stack([left, right], axis=1), 8000)  # 1 s, 8 kHz, stereo
    assert sf.info(str(path)).channels == 2 and sf.info(str(path)).samplerate == 8000

    wave = load_audio(path, sampling_rate=16000)
    assert wave.shape == (16000,) and wave.dtype == np.float32
    assert _peak_hz(wave, 16000) == pytest.approx(440, abs=1)
    assert np.abs(wave).max() == pytest.approx(0.4, abs=0.02)  # mean of the two channels' amplitudes

    native = load_audio(path, sampling_rate=8000)  # no resampling: just the downmix
    np.testing.assert_allclose(native, (left + right) / 2, atol=1e-4)


def test_load_audio_from_every_source(tmp_path):
    wave = _sine(1000, 16000, seconds=0.5)
    flac = _flac_bytes(wave, 16000)
    (tmp_path / "a.flac").write_bytes(flac)
    sources = [
        str(tmp_path / "a.flac"), tmp_path / "a.flac", "a.flac", flac,
        {"bytes": flac, "path": None}, {"bytes": None, "path": "a.flac"},
        {"array": wave, "sampling_rate": 16000, "path": None}, {"array": wave.tolist(), "sampling_rate": 16000},
        wave, np.stack([wave, wave]), np.stack([wave, wave], axis=1), (wave * 32767).astype(np.int16),
        torch.from_numpy(wave), torch.from_numpy(wave).to(torch.bfloat16).unsqueeze(0),
    ]
    for src in sources:
        out = load_audio(src, root=tmp_path, sampling_rate=16000)
        assert out.shape == (8000,) and out.dtype == np.float32, type(src)
        np.testing.assert_allclose(out, wave, atol=1e-2)


def test_dict_array_is_resampled_from_its_own_rate():
    out = load_audio({"array": _sine(300, 22050), "sampling_rate": 22050}, sampling_rate=16000)
    assert out.shape == (16000,)
    assert _peak_hz(out, 16000) == pytest.approx(300, abs=1)


def test_load_audio_errors_are_clear(tmp_path):
    with pytest.raises(MediaError, match=r"audio file not found: .*missing\.wav"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(MediaError, match=r"audio file not found: .*nope\.wav"):
        load_audio({"path": "nope.wav", "bytes": None}, root=tmp_path)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(MediaError, match=r"unreadable audio in .*bad\.wav"):
        load_audio(tmp_path / "bad.wav")
    with pytest.raises(MediaError, match="unreadable audio in 7 bytes"):
        load_audio(b"garbage")
    with pytest.raises(MediaError, match="empty audio"):
        load_audio(write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000))
    with pytest.raises(MediaError, match="empty audio"):
        load_audio(np.zeros(0, np.float32))
    with pytest.raises(MediaError, match="cannot read audio from a int"):
        load_audio(3)
    with pytest.raises(MediaError, match="no 'sampling_rate'"):
        load_audio({"array": _sine(440, 8000)})
    with pytest.raises(MediaError, match="none of 'array', 'bytes', 'path'"):
        load_audio({"path": None, "bytes": None})
    with pytest.raises(MediaError, match=r"got shape \(2, 3, 4\)"):
        load_audio(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(MediaError, match="NaN"):
        load_audio(np.full(10, np.nan, np.float32))


def _moving_square(num: int = 20, height: int = 32, width: int = 64) -> np.ndarray:
    """Black frames with an 8x8 white square moving right by 2 px a frame."""
    frames = np.zeros((num, height, width, 3), np.uint8)
    for i in range(num):
        frames[i, 12:20, 2 * i : 2 * i + 8] = 255
    return frames


def _square_x(frame: np.ndarray) -> int:
    return int(np.argmax(frame.max(axis=(0, 2)) > 128))  # first column holding the bright square


def test_sample_indices_are_even_and_in_order():
    np.testing.assert_array_equal(sample_indices(20, 8), [0, 3, 5, 8, 11, 14, 16, 19])
    np.testing.assert_array_equal(sample_indices(5, 8), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(sample_indices(9, 1), [0])


@pytest.mark.parametrize("width", [64, 48])  # 48: decord 0.6 pads its rows; load_video must undo that
def test_video_round_trip_samples_frames_in_order(tmp_path, width):
    frames = _moving_square(width=width)
    path = write_video(tmp_path / "clip.mp4", frames, fps=10)
    video = load_video(path, num_frames=8)
    assert video.shape == (8, 32, width, 3) and video.dtype == np.uint8
    xs = [_square_x(f) for f in video]
    assert xs == sorted(xs) and len(set(xs)) == 8
    assert xs == [2 * i for i in sample_indices(20, 8)]
    np.testing.assert_allclose(video.astype(float), frames[sample_indices(20, 8)].astype(float), atol=40)
    assert load_video(path, num_frames=50).shape == (20, 32, width, 3)  # never more than the clip has


def test_load_video_from_every_source(tmp_path):
    frames = _moving_square(num=10)
    data = write_video(tmp_path / "clip.mp4", frames, fps=5).read_bytes()
    pngs = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    sources = [
        "clip.mp4", tmp_path / "clip.mp4", data, {"bytes": data, "path": None}, {"bytes": None, "path": "clip.mp4"},
        frames, frames.astype(np.float32) / 255.0, torch.from_numpy(frames),
        list(frames), [Image.fromarray(f) for f in frames], pngs,
    ]
    for src in sources:
        video = load_video(src, root=tmp_path, num_frames=4)
        assert video.shape == (4, 32, 64, 3) and video.dtype == np.uint8, type(src)
        assert [_square_x(f) for f in video] == [0, 6, 12, 18], type(src)  # frames 0, 3, 6, 9


def test_load_video_errors_are_clear(tmp_path):
    with pytest.raises(MediaError, match=r"video file not found: .*missing\.mp4"):
        load_video(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage")
    with pytest.raises(MediaError, match=r"unreadable video in .*bad\.mp4"):
        load_video(tmp_path / "bad.mp4")
    with pytest.raises(MediaError, match="unreadable video in 7 bytes"):
        load_video(b"garbage")
    with pytest.raises(MediaError, match="cannot read a video from a int"):
        load_video(3)
    with pytest.raises(MediaError, match=r"must be \[T, H, W, 3\], got shape \(4, 4, 3\)"):
        load_video(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(MediaError, match="empty video"):
        load_video([])
    with pytest.raises(MediaError, match="frames differ in size"):
        load_video([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)])
    with pytest.raises(MediaError, match="neither 'bytes' nor 'path'"):
        load_video({"bytes": None, "path": None})
    with pytest.raises(ValueError, match="even frame size"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 5, 6, 3), np.uint8), fps=5)


def test_without_decord_files_fail_clearly_and_arrays_still_load(tmp_path, monkeypatch):
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    path = write_video(tmp_path / "clip.mp4", frames, fps=4)
    monkeypatch.setitem(__import__("sys").modules, "decord", None)  # as on a machine without its wheel
    with pytest.raises(MediaError, match="decord is not installed.*array"):
        load_video(path)
    assert load_video(frames, num_frames=2).shape == (2, 16, 16, 3)
