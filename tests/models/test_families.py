"""Backbone-family specs (zoo/models/families): every family's tiny stand-in builds and goes through the
adapter by its model_type, and what its spec names exists on the built model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from modalities.record import get_modality
from zoo.align.reference import media_frozen
from zoo.models.adapters import freeze_modules
from zoo.data.collate import ExampleEncoder, pad_batch, processor_modalities
from zoo.models.families import FAMILIES, default_freeze, family_for, family_of, media_module_names
from zoo.models.native import TINY_ARCHS, NativeBackbone, _param_names, load_native_policy, make_tiny_native
from zoo.models.policy import Policy


def _part(model, name):
    """A module or parameter named ``name`` on the model or its inner ``model``, as freeze_modules finds it."""
    parts = (getattr(o, name, None) for o in (model, getattr(model, "model", None)) if o is not None)
    return next((p for p in parts if isinstance(p, (nn.Module, nn.Parameter))), None)


@pytest.mark.parametrize("name", FAMILIES.names())
def test_a_family_spec_fits_its_tiny_stand_in(name):
    spec = FAMILIES.get(name)
    assert spec.name == name
    model, processor = make_tiny_native(name)
    assert model.config.model_type in spec.model_types and family_of(model) is spec
    backbone = NativeBackbone(model, processor)
    assert backbone.family is spec
    # an image row goes through the adapter: media encoded once, finite response log-probs
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    row = {"prompt": prompt, "images": [np.full((32, 32, 3), 200, np.uint8)], "completion": "It is red."}
    batch = pad_batch([ExampleEncoder(processor).encode(row, 0)], processor.tokenizer.pad_token_id)
    policy = Policy(backbone)
    with torch.no_grad():
        media = policy.encode_media(batch)
        logps = policy.sequence_logps(batch, media)
    assert set(media) == {"image"} and torch.isfinite(logps.logps).all() and int(logps.lengths) > 0
    # its media modules and freeze names exist on the model
    for module in spec.freeze:
        assert _part(model, module) is not None, f"{name}: no {module!r} to freeze"
    # it encodes the media its processor reads, with methods the model has, of kinds that have a record
    assert processor_modalities(processor) == set(spec.media)
    inner = getattr(model, "model", None)
    for kind in spec.media:
        method = get_modality(kind).hf_encode_method
        assert callable(getattr(model, method, None) or getattr(inner, method, None)), f"{name}: no {method}"
    assert set(spec.scattered) <= set(spec.media)
    for raw in (n for names in spec.scattered.values() for n in names):
        assert raw in _param_names(model.forward)
    # rope inputs are arguments of the model's own M-RoPE index; boundary tokens resolve to ids
    assert set(spec.rope_inputs) <= (_param_names(backbone.rope_index) if backbone.rope_index else set())
    tok = processor.tokenizer
    for attr in spec.media_boundary_tokens:
        ids = {getattr(o, attr, None) for o in (model.config, tok)} - {None}
        assert ids and ids <= set(backbone.placeholder_ids), f"{name}: {attr}"
    # freezing the family default freezes every media module: a reference may reuse the policy's media
    assert not media_frozen(model)
    assert freeze_modules(policy, spec.freeze) == list(spec.freeze)
    assert media_frozen(model)


def test_every_family_is_a_tiny_arch_and_its_media_modules_are_known():
    assert set(TINY_ARCHS) == set(FAMILIES.names())
    names = media_module_names()
    assert {"encoders", "projectors"} <= set(names) and len(names) == len(set(names))
    for _, spec in FAMILIES.items():
        assert set(spec.media_modules) <= set(names)


def test_an_unknown_model_type_names_the_known_families_and_how_to_add_one(tmp_path):
    with pytest.raises(ValueError, match=r"no backbone family for model_type 'paligemma'.*llava_next \(llava_next\)"
                                         r".*zoo/models/families/<name>\.py"):
        family_for("paligemma")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "paligemma"}))
    with pytest.raises(ValueError, match="no backbone family for model_type 'paligemma'"):
        load_native_policy(tmp_path)  # before any weights are looked for


def test_a_part_saved_alone_loads_as_it_is(tmp_path):
    """Qwen2.5-Omni loads its thinker from a full checkpoint; a trained thinker saved alone loads too."""
    model, processor = make_tiny_native("qwen2_5_omni")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    policy = load_native_policy(tmp_path)
    assert type(policy.model) is type(model) and policy.backbone.family is FAMILIES.get("qwen2_5_omni")


def test_freeze_default_is_the_family_default(tmp_path, tiny_policy):
    from zoo.models import load_policy
    from zoo.models.native import build_tiny_native

    policy = load_policy(build_tiny_native("qwen2_vl", tmp_path / "qwen"), freeze="default")
    frozen = {n.split(".")[1] for n, p in policy.model.named_parameters() if not p.requires_grad}
    assert frozen == {"visual"} and media_frozen(policy.model)
    assert default_freeze(tiny_policy.model) == ("encoders", "projectors")  # the composed model
    with pytest.raises(ValueError, match="freeze must be a list of module names or 'default'"):
        load_policy(tmp_path / "qwen", freeze="visual")
