"""A trained reward model (`zoo.models.reward`, ``recipe=reward``) as a judge: the score of a response is its
reward for the reference row's prompt and media.

Online DPO with it instead of the world's verifier: ``pairs=online_dpo_rm module.pairs.judge.path=RM_FOLDER``
(``recipes/pairs/online_dpo_rm.yaml``), or on any online source
``module.pairs.judge._target_=zoo.align.judges.reward_model.RewardModelJudge +module.pairs.judge.path=RM_FOLDER
+module.pairs.judge.source=${data.path}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.align.judges import JUDGES, Judge


@JUDGES.register("reward_model")
class RewardModelJudge(Judge):
    """Scores each text by the reward model in the folder ``path`` (a ``zoo train recipe=reward`` run's
    ``model/``, or a local-hub revision folder of one).

    ``references`` are the data rows (``prompt`` messages and media columns, as the dataset holds them); their
    relative media paths start at ``source`` (the dataset folder: ``${data.path}``). The texts of one reference
    (the K samples of a prompt, wherever they are in the call) are scored together: its prompt and media are
    encoded and run once. The model is loaded on the first call, in eval mode, on ``device`` (null: the GPU when
    there is one — where a single-device run keeps its policy — else the CPU), and scores without gradients.
    ``batch_size``: prompts per forward; ``max_length``: cut prompt + response to this many tokens (None: never;
    a cut response loses what may make it worse).
    """

    def __init__(self, path: str, source: str | None = None, batch_size: int = 16, device: str | None = None,
                 dtype: str | None = None, max_length: int | None = None):
        from zoo.models.reward import REWARD_CONFIG

        folder = Path(str(path)).expanduser()
        if not folder.is_dir():
            raise ValueError(f"reward_model judge: no reward model folder at {path!r}")
        if not (folder / REWARD_CONFIG).is_file():
            raise ValueError(f"reward_model judge: {path} is not a reward model folder (no {REWARD_CONFIG}): train "
                             "one with zoo train recipe=reward")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"reward_model judge: batch_size must be an integer >= 1, not {batch_size!r}")
        self.path, self.source, self.batch_size = folder, source, batch_size
        self.device, self.dtype, self.max_length = device, dtype, max_length
        self._model = self._encoder = None

    @property
    def model(self):
        """The reward model, loaded on first use (eval mode, gradients off)."""
        if self._model is None:
            import torch

            from zoo.data.collate import ExampleEncoder
            from zoo.models.reward import load_reward_model

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            model = load_reward_model(self.path, dtype=self.dtype, device=device).eval()
            model.requires_grad_(False)
            self._model = model
            self._encoder = ExampleEncoder(model.processor, self.max_length, media_root=self.source)
        return self._model

    def __call__(self, texts: Sequence[str], references: Sequence[Mapping[str, Any]]) -> list[float]:
        if len(texts) != len(references):
            raise ValueError(f"reward_model judge: {len(texts)} texts but {len(references)} references")
        rows, groups, keys = [], [], {}
        for i, reference in enumerate(references):
            if not isinstance(reference, Mapping):
                raise ValueError(f"reward_model judge: reference {i} is a {type(reference).__name__}, not a data row")
            key = reference.get("example_index", id(reference))  # the K copies of a row: one key
            if key not in keys:
                keys[key] = len(rows)
                name = reference.get("example_index", reference.get("id", f"reference {i}"))  # errors name it
                rows.append(reference if "example_index" in reference else {**reference, "example_index": name})
                groups.append([])
            groups[keys[key]].append(i)
        model = self.model
        scores = model.score(rows, [[texts[i] for i in members] for members in groups],
                             batch_size=self.batch_size, encoder=self._encoder)
        out = [0.0] * len(texts)
        for members, values in zip(groups, scores):
            for i, value in zip(members, values):
                out[i] = float(value)
        return out
