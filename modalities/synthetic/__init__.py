"""Small deterministic synthetic worlds, generated on the fly, for tests and demos.

They stand in for real multimodal data sets: cheap to build, fully known ground truth
(so hallucination can be measured exactly), and with a planted spurious correlation.
"""

from modalities.synthetic.shapes import (
    BIAS_PAIRS,
    COLOURS,
    HALLUCINATION_KINDS,
    HALLUCINATION_WEIGHTS,
    NUMBER_WORDS,
    PAIRS_SPLIT,
    RANKED_SPLIT,
    POSITIONS,
    SHAPES,
    SYNONYMS,
    ShapesConfig,
    caption,
    corpus,
    generate_world,
    hallucinate,
    load_world,
    mentioned_shapes,
    parse_yes_no,
    render,
    sample_scene,
)
from modalities.synthetic.worlds import (
    WORLDS,
    World,
    WorldMismatch,
    ensure_world,
    get_world,
    parse_world_settings,
    resolve_world_config,
    world_record,
)

__all__ = [
    "BIAS_PAIRS",
    "COLOURS",
    "HALLUCINATION_KINDS",
    "HALLUCINATION_WEIGHTS",
    "NUMBER_WORDS",
    "PAIRS_SPLIT",
    "RANKED_SPLIT",
    "POSITIONS",
    "SHAPES",
    "SYNONYMS",
    "ShapesConfig",
    "WORLDS",
    "World",
    "WorldMismatch",
    "caption",
    "corpus",
    "ensure_world",
    "generate_world",
    "get_world",
    "hallucinate",
    "load_world",
    "mentioned_shapes",
    "parse_yes_no",
    "parse_world_settings",
    "render",
    "resolve_world_config",
    "sample_scene",
    "world_record",
]
