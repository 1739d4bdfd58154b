"""DataModules: rows in the one schema → encoded examples → padded batches.

Examples are encoded once before training (media decoded and preprocessed once, bad input found
up front); the DataLoader only pads. Models are not built here: the training entry point attaches
the policy's processor with `attach`.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
from rich.progress import Progress
import torch
from torch.utils.data import DataLoader, Sampler

from modalities.synthetic import ensure_world
from modalities.image import MAX_IMAGE_PIXELS
from zoo.data.collate import Collator, ExampleEncoder, SkipReport, encode_rows
from zoo.align.pairs import PairSource
from zoo.data.formats import read_rows, split_source

log = logging.getLogger(__name__)


class ChatDataModule(L.LightningDataModule):
    """Prompt → response data (SFT) from a schema dataset folder; generates a synthetic world if asked."""

    def __init__(
        self,
        path: str,
        world: str | None = None,
        world_config: dict | None = None,
        train_split: str = "train",
        val_split: str | None = "test",
        tasks: list[str] | None = None,
        val_limit: int | None = 256,
        response_field: str = "completion",
        batch_size: int = 32,
        max_length: int | None = 256,
        skip_bad: bool = False,
        num_workers: int = 0,
        media_root: str | None = None,
        max_image_pixels: int | None = MAX_IMAGE_PIXELS,
    ):
        super().__init__()
        self.path, self.world, self.world_config = Path(path), world, dict(world_config or {})
        self.media_root = Path(media_root) if media_root else self.path  # where relative media paths start
        self.train_split, self.val_split, self.tasks, self.val_limit = train_split, val_split, tasks, val_limit
        self.response_field, self.batch_size, self.max_length = response_field, batch_size, max_length
        self.skip_bad, self.num_workers, self.max_image_pixels = skip_bad, num_workers, max_image_pixels
        self.unreadable: dict[str, Counter] = {}  # JSONL lines skipped by `read_rows`, by split and reason
        self.processor = None
        self.encoded: dict[str, list] = {}
        self.skipped: dict[str, SkipReport] = {}

    def attach(self, processor) -> "ChatDataModule":
        self.processor = processor
        return self

    def prepare_data(self) -> None:
        if self.world:
            ensure_world(self.world, self.media_root, self.world_config)

    def rows(self, split: str, limit: int | None = None) -> list[dict]:
        self.unreadable[split] = Counter()  # afresh: the fingerprint reads the rows again
        rows = read_rows(self.path, split, self.skip_bad, self.unreadable[split])
        for i, row in enumerate(rows):
            row.setdefault("example_index", f"{split}[{i}]")
        if self.tasks is not None:
            rows = [r for r in rows if r.get("task") in self.tasks]
        return rows[:limit] if limit else rows

    def encode_split(self, split: str, limit: int | None = None) -> list:
        if self.processor is None:
            raise RuntimeError("attach the policy's processor first: datamodule.attach(policy.processor)")
        if split not in self.encoded:
            rows = self.rows(split, limit)
            encoder = ExampleEncoder(self.processor, self.max_length, media_root=self.media_root,
                                     max_image_pixels=self.max_image_pixels)
            with Progress(transient=True) as progress:
                task = progress.add_task(f"encoding {split}", total=len(rows))
                examples, report = encode_rows(
                    rows, self.encode_fn(encoder), self.skip_bad, lambda: progress.advance(task),
                    source=split_source(self.path, split),
                )
            report.skipped.update(self.unreadable.get(split, {}))
            if report.total:
                log.warning("%s split: %s", split, report.summary())
            if not examples:
                raise ValueError(f"split '{split}' has no usable {self.what} ({report.summary()})")
            self.encoded[split], self.skipped[split] = examples, report
        return self.encoded[split]

    what = "example"

    def encode_fn(self, encoder: ExampleEncoder):
        """How one row becomes an example: prompt + ``response_field`` (SFT)."""
        return lambda row, index: encoder.encode(row, index, self.response_field)

    def setup(self, stage: str | None = None) -> None:
        self.encode_split(self.train_split)
        if self.val_split:
            self.encode_split(self.val_split, self.val_limit)

    def _loader(self, examples, shuffle: bool) -> DataLoader:
        return DataLoader(
            examples,
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=Collator(self.processor.tokenizer.pad_token_id),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.encoded[self.train_split], shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.encoded[self.val_split], shuffle=False) if self.val_split else []

    def skip_summary(self) -> dict[str, Any]:
        return {split: {"skipped": r.total, "reasons": dict(r.skipped)} for split, r in self.skipped.items()}


class SameSizeBatches(Sampler[list[int]]):
    """Batches of groups that share their number of responses K (a group batch needs one K), in shuffled
    order when asked, like ``DataLoader(shuffle=…)``; the last batch of each K may be short."""

    def __init__(self, sizes: list[int], batch_size: int, shuffle: bool):
        self.sizes, self.batch_size, self.shuffle = list(sizes), batch_size, shuffle

    def __iter__(self):
        n = len(self.sizes)
        order = torch.randperm(n).tolist() if self.shuffle else range(n)
        open_batches: dict[int, list[int]] = {}
        batches = []
        for i in order:
            batch = open_batches.setdefault(self.sizes[i], [])
            batch.append(i)
            if len(batch) == self.batch_size:
                batches.append(open_batches.pop(self.sizes[i]))
        batches += [b for b in open_batches.values() if b]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        return iter(batches)

    def __len__(self) -> int:
        counts = Counter(self.sizes)
        return sum(-(-c // self.batch_size) for c in counts.values())


class PairDataModule(ChatDataModule):
    """Preference data from a schema dataset folder — pairs (``chosen``/``rejected``, e.g. the shapes
    world's ``pairs``) or ranked rows (``responses`` + ``scores``, e.g. its ``ranked`` split) — as
    `EncodedGroup` examples, each encoded once before training (prompt and media once, every response);
    bad rows fail (or are skipped and counted) up front. The batch layout is the pair source's: it
    hands its ``collate`` to `attach`.
    """

    what = "preference group"

    def __init__(self, path: str, train_split: str = "pairs", val_split: str | None = None, **kwargs):
        kwargs.pop("response_field", None)
        super().__init__(path, train_split=train_split, val_split=val_split, **kwargs)
        self.collate = None

    def attach(self, processor, collate=None) -> PairDataModule:
        """The policy's processor, and the pair source's ``collate(groups, pad_token_id)`` (default:
        shared-prefix group batches)."""
        super().attach(processor)
        self.collate = collate if collate is not None else PairSource().collate
        return self

    def encode_fn(self, encoder: ExampleEncoder):
        return encoder.encode_group

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch.to(device)  # group batches move themselves; unpadded examples stay on the CPU

    def _loader(self, examples, shuffle: bool) -> DataLoader:
        collate = partial(self.collate, pad_token_id=self.processor.tokenizer.pad_token_id)
        sizes = [g.k for g in examples]
        if len(set(sizes)) > 1:  # ranked data with K varying per row (e.g. VLFeedback): one K per batch
            return DataLoader(examples, batch_sampler=SameSizeBatches(sizes, self.batch_size, shuffle),
                              num_workers=self.num_workers, collate_fn=collate)
        return DataLoader(examples, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=collate)

    def ordered_loader(self, split: str | None = None) -> DataLoader:
        """Every encoded group of ``split`` (default: train) once, in file order: the reference pass."""
        return self._loader(self.encode_split(split or self.train_split), shuffle=False)

    def fingerprint(self, split: str | None = None) -> str:
        """Fingerprint of a split as encoded here: its rows, their media bytes, and how they become inputs
        (the encoder's settings, the tokenizer and the media processors' settings)."""
        from zoo.align.reference import dataset_fingerprint, processor_hash

        encoder = ExampleEncoder(self.processor, self.max_length, media_root=self.media_root)
        encoding = {**encoder.settings, "processor": processor_hash(self.processor)}
        return dataset_fingerprint(self.rows(split or self.train_split), self.media_root, encoding)
