"""Shared fixtures: a tiny shapes world and a tiny composed policy, built once per session."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_TEXT = {
    "model_type": "llama",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}
TINY_IMAGE = {
    "encoder": {
        "model_name": "vit_tiny_patch16_224",
        "image_size": 48,
        "timm_kwargs": {"patch_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2},
    },
    "projector": "mlp2x_gelu",
}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    from modalities.synthetic.shapes import ShapesConfig, generate_world

    return generate_world(
        tmp_path_factory.mktemp("world") / "shapes", ShapesConfig(n_train=40, n_test=12, n_trigger=12, n_pairs=24, n_ranked=12), progress=False
    )


def build_tiny_policy(seed: int = 0):
    from zoo.models.composed import build_composed_policy

    policy = build_composed_policy(TINY_TEXT, {"image": TINY_IMAGE}, {"world": "shapes", "vocab_size": 300}, seed=seed)
    return policy.eval()


@pytest.fixture(scope="session")
def tiny_policy():
    torch.manual_seed(0)
    return build_tiny_policy()


@pytest.fixture(scope="session")
def tiny_rows(tiny_world):
    from zoo.data.formats import read_rows

    return read_rows(tiny_world, "test")
