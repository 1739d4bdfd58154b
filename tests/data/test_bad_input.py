"""Issue 17's bad input: every malformed row, file or media item is a `DataError` naming the file, the
line (1-based) or example, and the field — never a raw TypeError/JSONDecodeError/… — and skippable
with ``skip_bad``, counted by reason."""

from __future__ import annotations

import copy
import io
import json
import struct
import zlib
from collections import Counter

import pytest
from PIL import Image

from modalities import MediaError
from modalities.image import load_image
from zoo.data.collate import ExampleEncoder, encode_rows
from zoo.data.formats import read_rows
from zoo.data.schema import DataError, validate_row


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A 1×1 PNG whose header claims ``width``×``height`` (a decompression bomb: a few bytes, GBs decoded)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])  # size, then depth/colour/… unchanged
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.fixture()
def encoder(tiny_policy, tiny_world):
    return ExampleEncoder(tiny_policy.processor, max_length=96, media_root=tiny_world)


@pytest.fixture()
def row(tiny_rows):
    return copy.deepcopy(next(r for r in tiny_rows if r["task"] == "caption"))


def _error(encoder, row, index=7) -> DataError:
    with pytest.raises(DataError) as info:
        encoder.encode(row, index)
    return info.value


def test_a_decompression_bomb_is_a_data_error_and_skippable(encoder, row, tmp_path):
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    with pytest.raises(MediaError, match="too large"):
        load_image(tmp_path / "bomb.png")
    row["images"] = [str(tmp_path / "bomb.png")]
    err = _error(encoder, row)
    assert err.field == "images[0]" and "too large" in str(err)
    examples, report = encode_rows([row, row], encoder.encode, skip_bad=True)
    assert examples == [] and report.skipped == {"images: too large": 2}


def test_the_pixel_limit_is_configurable(tiny_policy, tiny_world, row):
    Image.new("RGB", (300, 200)).save(tiny_world / "big.png")
    with pytest.raises(MediaError, match=r"300×200 = 60,000 pixels, over the limit of 50,000"):
        load_image(tiny_world / "big.png", max_pixels=50_000)
    assert load_image(tiny_world / "big.png").size == (300, 200)  # under the default
    row["images"] = ["big.png"]
    strict = ExampleEncoder(tiny_policy.processor, max_length=96, media_root=tiny_world, max_image_pixels=50_000)
    assert _error(strict, row).reason.startswith("image too large: 300×200")
    _, report = encode_rows([row], strict.encode, skip_bad=True)
    assert report.skipped == {"images: too large": 1}


@pytest.mark.parametrize("images,expected", [
    (5, "expected a list of images, got int 5"),
    ("x.png", "expected a list of images, got str 'x.png'; for one file write ['x.png']"),
])
def test_media_that_is_not_a_list_is_an_error(encoder, row, images, expected):
    row["images"] = images
    err = _error(encoder, row)
    assert err.field == "images" and err.reason == expected  # not a TypeError, not split into characters
    _, report = encode_rows([row], encoder.encode, skip_bad=True)
    assert report.skipped == {"images: not a list": 1}


def test_a_missing_prompt_is_missing_not_empty(encoder, row):
    del row["prompt"]
    assert _error(encoder, row).reason == "missing"
    empty = dict(row, prompt=[])
    _, report = encode_rows([row, empty], encoder.encode, skip_bad=True)
    assert report.skipped == {"prompt: missing": 1, "prompt: empty": 1}


@pytest.mark.parametrize("change,field", [
    (lambda r: r.update(prompt="Describe the image."), "prompt"),
    (lambda r: r["prompt"][0].update(content=[{"type": "image"}, "a bare string part"]), "prompt[0].content[1]"),
    (lambda r: r["prompt"][0].update(content=None), "prompt[0].content"),
    (lambda r: r.update(images=[5]), "images[0]"),
    (lambda r: r.update(images={"path": "x.png"}), "images"),
    (lambda r: r.update(audios="a.wav"), "audios"),
    (lambda r: r.update(completion=5), "completion"),
    (lambda r: r.update(completion=[{"role": "assistant", "content": ["text without a part"]}]), "completion"),
    (lambda r: r.update(completion=[5]), "completion"),
])
def test_anything_like_it_is_a_data_error_too(encoder, row, change, field):
    change(row)
    assert _error(encoder, row).field == field


def test_a_row_that_is_not_an_object(encoder):
    with pytest.raises(DataError, match="example 2: expected an object"):
        validate_row(["not", "a", "row"], 2)
    _, report = encode_rows([[1, 2]], encoder.encode, skip_bad=True)
    assert report.skipped == {"row: not an object": 1}


def _jsonl(path, good: dict, bad_lines: dict[int, bytes], n_lines: int = 6):
    """``n_lines`` lines: ``bad_lines[n]`` at line n (1-based), ``good`` elsewhere."""
    path.write_bytes(b"".join(bad_lines.get(n, json.dumps(good).encode()) + b"\n" for n in range(1, n_lines + 1)))


@pytest.mark.parametrize("line,expected", [
    (b'{"prompt": [}', r"train.jsonl, line 4: malformed JSON \(Expecting value at column 13\)"),
    (b'{"prompt": "caf\xe9"}', r"train.jsonl, line 4: not UTF-8 text \(byte 0xe9 at byte 16\)"),
    (b'[{"prompt": []}]', r"train.jsonl, line 4: expected one JSON object per line, got an array"),
])
def test_a_bad_jsonl_line_names_the_file_and_its_line(tmp_path, line, expected):
    _jsonl(tmp_path / "train.jsonl", {"a": 1}, {2: b"", 4: line})  # a blank line 2 must not shift the count
    with pytest.raises(DataError, match=expected):
        read_rows(tmp_path, "train")
    counted = Counter()
    assert read_rows(tmp_path, "train", skip_bad=True, report=counted) == [{"a": 1}] * 4
    assert sum(counted.values()) == 1


def test_datamodule_skips_and_counts_every_bad_input(tmp_path, tiny_world, tiny_policy):
    """The issue's list in one training split: strict fails on the first, naming file and line;
    ``skip_bad`` trains on the rest and counts each by reason in the skip summary (metrics.json)."""
    import shutil

    from zoo.train.data import ChatDataModule

    data = tmp_path / "bad"
    shutil.copytree(tiny_world, data)
    (data / "images" / "bomb.png").write_bytes(bomb_png())
    rows = read_rows(tiny_world, "train")[:12]
    rows[1]["images"] = ["images/bomb.png"]
    rows[2]["images"] = 5
    rows[3]["images"] = rows[3]["images"][0]  # "images/train/….png", a string
    del rows[4]["prompt"]
    lines = [json.dumps(r).encode() for r in rows]
    lines[6] = b'{"prompt": [}'  # line 7
    lines[7] = b"[1, 2]"  # line 8
    lines[8] = b'{"completion": "\xff"}'  # line 9
    (data / "train.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    strict = ChatDataModule(str(data), val_split=None).attach(tiny_policy.processor)
    with pytest.raises(DataError, match=r"bad/train.jsonl, line 7: malformed JSON"):
        strict.setup("fit")
    lenient = ChatDataModule(str(data), val_split=None, skip_bad=True).attach(tiny_policy.processor)
    lenient.setup("fit")
    assert len(lenient.encoded["train"]) == 12 - 7
    assert lenient.skip_summary() == {"train": {"skipped": 7, "reasons": {
        "images: too large": 1, "images: not a list": 2, "prompt: missing": 1,
        "line: malformed JSON": 1, "line: not an object": 1, "line: not UTF-8": 1}}}


def test_row_errors_name_the_file_the_rows_came_from(tmp_path, tiny_world, tiny_policy):
    import shutil

    from zoo.train.data import ChatDataModule

    data = tmp_path / "bad"
    shutil.copytree(tiny_world, data)
    rows = read_rows(tiny_world, "train")[:4]
    rows[2]["images"] = 5
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"bad/train.jsonl, example train\[2\], field 'images': expected a list"):
        ChatDataModule(str(data), val_split=None).attach(tiny_policy.processor).setup("fit")


def test_a_public_format_file_with_a_bad_line_names_it(tmp_path):
    from zoo.data.formats import load_format

    good = {"question": "What is shown?", "chosen": "A cat.", "rejected": "A dog.", "image_path": "x.png"}
    _jsonl(tmp_path / "rlaif.jsonl", good, {3: b'{"question": "unterminated}'})
    with pytest.raises(DataError, match=r"rlaif.jsonl, line 3: malformed JSON"):
        load_format(tmp_path / "rlaif.jsonl", "rlaif_v")


def test_skipped_lines_are_counted_once_however_often_the_rows_are_read(tmp_path, tiny_world, tiny_policy):
    import shutil

    from zoo.train.data import PairDataModule

    data = tmp_path / "bad"
    shutil.copytree(tiny_world, data)
    with (data / "pairs.jsonl").open("ab") as f:
        f.write(b"not json\n")
    dm = PairDataModule(str(data), skip_bad=True).attach(tiny_policy.processor)
    dm.fingerprint()  # reads the rows once more (as the cached reference does)
    dm.setup("fit")
    assert dm.skip_summary()["pairs"]["reasons"] == {"line: malformed JSON": 1}
