"""Modality records (modalities/record.py): each record's column, loader, processor keyword and names agree
with what the schema, example encoding, HF processors and ZooModel do with them."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np
import pytest

from modalities.record import all_modalities, get_modality
from zoo.data.collate import MEDIA_INPUT_PREFIXES, ExampleEncoder, media_token_ids, processor_modalities
from zoo.data.schema import MEDIA_COLUMNS, DataError, placeholder_counts, validate_row

# One in-memory item of each modality, as a dataset may hold it. A new modality adds its sample here.
SAMPLES = {
    "image": lambda: np.zeros((8, 8, 3), np.uint8),
    "audio": lambda: np.zeros(1600, np.float32),
    "video": lambda: np.zeros((2, 8, 8, 3), np.uint8),
}


@pytest.fixture(params=[m.name for m in all_modalities()])
def modality(request):
    return get_modality(request.param)


def sample(m):
    """An in-memory item of modality ``m``."""
    assert m.name in SAMPLES, f"add an in-memory {m.name} item to SAMPLES in {__file__}"
    return SAMPLES[m.name]()


def _row(kind: str, **columns) -> dict:
    prompt = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": "What is it?"}]}]
    return {"prompt": prompt, "completion": "A thing.", **columns}


def test_the_records_are_the_schema_columns_in_order():
    records = all_modalities()
    assert MEDIA_COLUMNS == {m.name: m.column for m in records}
    assert [m.name for m in records][:3] == ["image", "audio", "video"]  # generate's order: images first
    assert len({m.order for m in records}) == len(records)


def test_a_record_is_what_the_schema_checks(modality):
    assert MEDIA_COLUMNS[modality.name] == modality.column
    row = _row(modality.name)
    assert placeholder_counts(row["prompt"])[modality.name] == 1
    with pytest.raises(DataError) as err:  # a placeholder without its item
        validate_row(row, 3)
    assert err.value.field == modality.column
    validate_row(_row(modality.name, **{modality.column: [sample(modality)]}), 3)


def test_a_record_is_what_example_encoding_loads(modality):
    item = sample(modality)
    processor = SimpleNamespace(tokenizer=SimpleNamespace(), **{modality.hf_subprocessor: object()})
    encoder = ExampleEncoder(processor)
    assert processor_modalities(processor) == {modality.name}
    media = encoder.load_media(_row(modality.name, **{modality.column: [item]}), 0)
    assert list(media) == [modality.processor_kwarg] and len(media[modality.processor_kwarg]) == 1
    with pytest.raises(DataError) as err:  # a loader failure names the column and the item
        encoder.load_media(_row(modality.name, **{modality.column: [item, "missing/file"]}), 0)
    assert err.value.field == f"{modality.column}[1]"
    assert set(modality.load_options) <= set(inspect.signature(modality.load).parameters)
    assert set(modality.input_prefixes) <= set(MEDIA_INPUT_PREFIXES)
    assert media_token_ids(SimpleNamespace(**{modality.token_id_attr: 5})) == {5}


def test_a_record_names_what_hf_processors_take_and_make(modality):
    """Some family's tiny processor reads the modality by the record's sub-processor and keyword, and what it
    makes of an item is the record's input key, under the record's prefixes, never a per-token input."""
    from zoo.models.families import FAMILIES
    from zoo.models.native import make_tiny_native

    family = next((name for name, spec in FAMILIES.items() if modality.name in spec.media), None)
    if family is None:
        pytest.skip(f"no HF family reads {modality.name} yet")
    _, processor = make_tiny_native(family)
    assert getattr(processor, modality.hf_subprocessor, None) is not None
    assert modality.processor_kwarg in inspect.signature(type(processor).__call__).parameters
    _, token, media = ExampleEncoder(processor).encode_prompt(_row(modality.name, **{
        modality.column: [sample(modality)]}), 0)
    assert modality.input_key in media and all(k.startswith(MEDIA_INPUT_PREFIXES) for k in media)
    assert not any(k.startswith(modality.input_prefixes) for k in token)


def test_the_composed_model_takes_the_records_that_have_its_parts(tiny_policy):
    from zoo.models.composed import composed_modality

    processor = tiny_policy.processor
    for m in all_modalities():
        if m.encoder is None:
            with pytest.raises(ValueError, match=f"no {m.name} encoder yet"):
                composed_modality(m.name)
            continue
        assert None not in (m.placeholder, m.encoder_config, m.processor)
        if m.name in processor.media:
            _, _, media = ExampleEncoder(processor).encode_prompt(_row(m.name, **{m.column: [sample(m)]}), 0)
            assert list(media) == [m.input_key]


def test_zoo_model_generate_takes_each_column_as_a_keyword(monkeypatch):
    from zoo.zoo_model import ZooModel

    seen = {}
    monkeypatch.setattr(ZooModel, "chat", lambda self, messages, max_new_tokens, **kw: seen.update(
        messages=messages, **kw) or "ok")
    model = ZooModel(policy=None, source="folder", path=None, name="x")
    items = {m.column: [sample(m)] for m in reversed(all_modalities())}
    assert model.generate("Hi.", max_new_tokens=2, temperature=0.5, **items) == "ok"
    content = seen["messages"][0]["content"]
    assert [p["type"] for p in content] == [m.name for m in all_modalities()] + ["text"]
    assert all(len(seen[m.column]) == 1 for m in all_modalities()) and seen["temperature"] == 0.5
