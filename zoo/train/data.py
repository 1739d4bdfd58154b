"""DataModules: rows in the one schema → encoded examples → padded batches.

Examples are encoded once before training (media decoded and preprocessed once, bad input found
up front); the DataLoader only pads. Models are not built here: the training entry point attaches
the policy's processor with `attach`.
"""

from __future__ import annotations

import logging
import zlib
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
from zoo.data.formats import load_format, read_rows, split_source

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
        seed: int = 0,
        format: str | None = None,
        subset: str | None = None,
    ):
        super().__init__()
        # format: a public dataset's layout (zoo.data.formats.FORMATS: rlaif_v, vlfeedback, povid, aa_ti2t, aa_ta2t,
        # aa_llf, aa_llf_critic …) converted on reading; None: rows already in the zoo's schema. subset: the Hub
        # dataset's configuration.
        self.format, self.subset = format, subset
        self.seed = seed  # the training batches of epoch e are a function of (seed, e): see `ResumableLoader`
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
        if self.format:
            rows = load_format(self.path, self.format, split, subset=self.subset, report=self.unreadable[split])
        else:
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
                    source=split_source(self.path, split.removesuffix(HELDOUT)),
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

    def _loader(self, examples, shuffle: bool, shard: bool = True) -> ResumableLoader:
        """``shard``: under a multi-process strategy (``trainer.strategy=ddp``) this rank's share of every batch
        (`EpochBatches`); the trainer is asked for the rank and the number of processes."""
        trainer = self.trainer if shard else None
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochBatches(self.group_sizes(examples), self.batch_size, shuffle, self.seed, replicas, rank)
        return ResumableLoader(examples, sampler, num_workers=self.num_workers, collate_fn=self.collate_fn())

    def group_sizes(self, examples) -> list[int]:
        """What must be equal within a batch (a group's number of responses K); one example: all alike."""
        return [1] * len(examples)

    def collate_fn(self):
        return Collator(self.processor.tokenizer.pad_token_id)

    def train_dataloader(self) -> DataLoader:
        loader = self._loader(self.encoded[self.train_split], shuffle=True)
        if self.trainer is not None:  # a loader rebuilt mid-run (reload_dataloaders_every_n_epochs) reads its epoch
            loader.load_state_dict({"epoch": self.trainer.current_epoch, "batch": 0})
        return loader

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.encoded[self.val_split], shuffle=False) if self.val_split else []

    def skip_summary(self) -> dict[str, Any]:
        return {split: {"skipped": r.total, "reasons": dict(r.skipped)} for split, r in self.skipped.items()}


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffle: a function of (seed, epoch) alone, never of the global RNG."""
    return zlib.crc32(f"zoo-batches:{seed}:{epoch}".encode())


class EpochBatches(Sampler[list[int]]):
    """The batches of an epoch, as index lists: shuffled (when asked) by a generator seeded from (``seed``,
    epoch) alone, so any epoch can be replayed and entered at any batch. ``sizes`` (a group's number of
    responses K) keeps one K per batch (a group batch needs one K); the last batch of each K may be short.

    Several processes (``replicas`` > 1, e.g. DDP): every process draws the same global batches of
    ``batch_size × replicas`` examples and keeps its share, ``batch[rank::replicas]`` — disjoint shares that
    together are the global batch, and the same number of batches on every rank (DDP needs one step count).
    A global batch shorter than ``replicas`` repeats its examples so that no rank gets an empty batch. One
    process (``replicas=1``) gets exactly the batches it always had. Lightning's own distributed sampler cannot
    be put into this batch sampler: the trainer runs with ``use_distributed_sampler=False``
    (``recipes/trainer/default.yaml``).

    `ResumableLoader` sets ``epoch`` and ``start`` (the first batch to yield) before each pass.
    """

    def __init__(self, sizes: list[int], batch_size: int, shuffle: bool, seed: int = 0, replicas: int = 1,
                 rank: int = 0):
        if not 0 <= rank < replicas:
            raise ValueError(f"rank {rank} is not one of {replicas} processes")
        self.sizes, self.batch_size, self.shuffle, self.seed = list(sizes), batch_size, shuffle, seed
        self.replicas, self.rank = replicas, rank
        self.epoch, self.start = 0, 0

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The batches of every process together (``batch_size × replicas`` examples each)."""
        n, size = len(self.sizes), self.batch_size * self.replicas
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(n, generator=generator).tolist() if self.shuffle else range(n)
        open_batches: dict[int, list[int]] = {}
        batches = []
        for i in order:
            batch = open_batches.setdefault(self.sizes[i], [])
            batch.append(i)
            if len(batch) == size:
                batches.append(open_batches.pop(self.sizes[i]))
        batches += [b for b in open_batches.values() if b]
        if self.shuffle and len(set(self.sizes)) > 1:  # several K: their batches interleaved, short ones too
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of the epoch."""
        batches = self.global_batches(epoch)
        if self.replicas == 1:
            return batches
        padded = (b if len(b) >= self.replicas else [b[i % len(b)] for i in range(self.replicas)] for b in batches)
        return [b[self.rank::self.replicas] for b in padded]

    def __iter__(self):
        return iter(self.batches(self.epoch)[self.start:])

    def __len__(self) -> int:
        counts = Counter(self.sizes)
        return sum(-(-c // (self.batch_size * self.replicas)) for c in counts.values())


class ResumableLoader(DataLoader):
    """A DataLoader over `EpochBatches` whose position — (epoch, batches handed out) — is its state:
    Lightning saves ``state_dict()`` in every checkpoint and calls ``load_state_dict`` on resume, so a run
    stopped mid-epoch goes on with the next batch of the same shuffle, not a new one. Each ``iter()``
    starts the next epoch, except the first after ``load_state_dict``, which continues the saved one.
    Batches are counted as they are handed out (not as the sampler or the workers read ahead). No pass
    touches the global RNG: the shuffle and the workers' base seed come from (seed, epoch).
    """

    def __init__(self, dataset, batch_sampler: EpochBatches, **kwargs):
        super().__init__(dataset, batch_sampler=batch_sampler, generator=torch.Generator(), **kwargs)
        self.epoch, self.served = 0, 0  # the pass under way (or to begin) and the batches it handed out
        self._continue = True  # the next iter() continues (epoch, served) rather than beginning epoch + 1

    def __iter__(self):
        if not self._continue or self.served >= len(self):
            self.epoch, self.served = self.epoch + 1, 0
        self._continue = False
        self.batch_sampler.epoch, self.batch_sampler.start = self.epoch, self.served
        self.generator.manual_seed(epoch_seed(self.batch_sampler.seed, self.epoch))
        return self._serve(super().__iter__())

    def _serve(self, batches):
        for batch in batches:
            self.served += 1  # before the yield: a checkpoint taken while this batch trains counts it
            yield batch

    def state_dict(self) -> dict[str, int]:
        if self.served >= len(self):  # the epoch was handed out in full: resume at the next one
            return {"epoch": self.epoch + 1, "batch": 0}
        return {"epoch": self.epoch, "batch": self.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.served, self._continue = int(state["epoch"]), int(state["batch"]), True


HELDOUT = ":heldout"  # the suffix naming a split's held-out rows (`PairDataModule`'s ``holdout``)


def held_out(row: dict, share: float) -> bool:
    """Whether ``row`` is among the held-out ``share`` of its split: decided by a hash of its media (its file
    names, or the prompt of a row without media) alone, so rows with the same media fall on the same side,
    whatever the order, the seed or the other rows."""
    from zoo.data.schema import MEDIA_COLUMNS, media_items

    media = [_media_key(item) for kind in MEDIA_COLUMNS for item in media_items(row, kind)]
    key = "\n".join(media) if media else repr(row.get("prompt"))
    return zlib.crc32(f"zoo-holdout:{key}".encode()) / 2**32 < share


def _media_key(item) -> str:
    """A media item's identity: its path, or a hash of its bytes (in-memory media)."""
    import hashlib

    if isinstance(item, dict):
        item = item.get("path") or item.get("bytes") or repr(sorted(item))
    if isinstance(item, (bytes, bytearray)):
        return hashlib.sha256(item).hexdigest()
    if hasattr(item, "tobytes"):  # a PIL image or an array
        return hashlib.sha256(item.tobytes()).hexdigest()
    return str(item)


class PairDataModule(ChatDataModule):
    """Preference data from a schema dataset folder — pairs (``chosen``/``rejected``, e.g. the shapes
    world's ``pairs``) or ranked rows (``responses`` + ``scores``, e.g. its ``ranked`` split) — as
    `EncodedGroup` examples, each encoded once before training (prompt and media once, every response);
    bad rows fail (or are skipped and counted) up front. The batch layout is the pair source's: it
    hands its ``collate`` to `attach`.
    """

    what = "preference group"

    def __init__(self, path: str, train_split: str = "pairs", val_split: str | None = None, holdout: float = 0.0,
                 **kwargs):
        kwargs.pop("response_field", None)
        # holdout > 0: that share of the train split's rows, chosen by their media (`held_out`: no image is on both
        # sides), is not trained on but validated on, as the split ``<train_split>:heldout`` (val_split must be null)
        if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout < 1:
            raise ValueError(f"data.holdout must be a number in [0, 1), not {holdout!r}")
        if holdout and val_split:
            raise ValueError(f"data.holdout={holdout} validates on held-out {train_split} rows: set val_split=null "
                             f"(not {val_split!r})")
        self.holdout = float(holdout)
        val_split = f"{train_split}{HELDOUT}" if holdout else val_split
        super().__init__(path, train_split=train_split, val_split=val_split, **kwargs)
        self.collate = None

    def rows(self, split: str, limit: int | None = None) -> list[dict]:
        """A split's rows; with ``holdout``, the train split loses its held-out rows, which form
        ``<train_split>:heldout`` (examples keep their index in the file)."""
        if not self.holdout or split not in (self.train_split, f"{self.train_split}{HELDOUT}"):
            return super().rows(split, limit)
        rows = [r for r in super().rows(self.train_split)
                if held_out(r, self.holdout) == (split != self.train_split)]
        return rows[:limit] if limit else rows

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

    def group_sizes(self, examples) -> list[int]:
        return [g.k for g in examples]  # one K per batch: ranked rows may vary in K (e.g. VLFeedback)

    def collate_fn(self):
        return partial(self.collate, pad_token_id=self.processor.tokenizer.pad_token_id)

    def ordered_loader(self, split: str | None = None) -> DataLoader:
        """Every encoded group of ``split`` (default: train) once, in file order: the reference pass."""
        return self._loader(self.encode_split(split or self.train_split), shuffle=False, shard=False)

    def fingerprint(self, split: str | None = None) -> str:
        """Fingerprint of a split as encoded here: its rows, their media bytes, and how they become inputs
        (the encoder's settings, the tokenizer and the media processors' settings)."""
        from zoo.align.reference import dataset_fingerprint, processor_hash

        encoder = ExampleEncoder(self.processor, self.max_length, media_root=self.media_root)
        encoding = {**encoder.settings, "processor": processor_hash(self.processor)}
        return dataset_fingerprint(self.rows(split or self.train_split), self.media_root, encoding)
