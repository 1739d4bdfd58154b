"""One DPO training step, this project vs TRL's ``DPOTrainer``: pairs/s and peak memory.

    python -m benchmarks.speed.dpo_step [--profile tiny|llava-shape|llava-7b-lora] [--precision 32|bf16-mixed|bf16-true]
                                        [--lengths uneven|even] [--batch-size 4] [--warmup 2] [--steps 5] [--rounds 3]
                                        [--device cpu|cuda] [--output runs/bench/dpo_step.json] [--quick]

Profiles (`PROFILES`): ``tiny`` (the CPU default: 144 media tokens, a 4-layer d=256 Llama); ``llava-shape``
(LLaVA-1.5's token shape: 576 media tokens from 336-px/14-px patches, a 12-layer d=1024 CLIP-like tower, a 12-layer
d=2048 Llama, 32 prompt + 2 × 128 response tokens, every parameter trainable: for GPUs); ``llava-7b-lora`` (the real
recipe's shape: a 7B-shaped LLaVA in bf16, LoRA r 128 on the language model's attention, tower and projector frozen,
the reference = the adapters disabled on both sides — TRL's peft path). ``--lora-r`` puts LoRA on any profile (the
CPU checks the LoRA path at tiny sizes). Responses have uneven lengths by default (each drawn between a quarter of
the profile's length and all of it), as real data has; ``--lengths even`` gives every response the full length.
On CUDA an MFU estimate is printed (``--peak-tflops``, or the card's dense peak for the precision when known).

Both sides train the same tiny HF-native LLaVA (built once, offline, into a temp folder and loaded
from there by both), on the same pairs, with the same loss (sigmoid DPO, beta 0.1), the same
optimizer (AdamW, same lr, weight decay 0, same implementation), every parameter trainable, and a
frozen copy of the initial model as the reference (no precomputed reference log-probs). A step is
forward + backward + optimizer step of one batch of ``--batch-size`` pairs.

Each side runs in its own subprocess (imports and memory never mix), alternating zoo, TRL, zoo, TRL …
for ``--rounds`` rounds. A subprocess loads model and data, pre-builds its batches, runs ``--warmup``
steps, then times ``--steps`` steps; it reports the median step time (pairs/s = batch size / median)
and the memory of the timed steps: on CUDA ``max_memory_allocated``; on CPU the peak RSS polled every
millisecond (glibc's mmap threshold is fixed at 64 KiB, so freed tensors leave the RSS and it tracks
live memory), both absolute and above the RSS right before the timed steps (the step's working
memory on top of the resident models and optimizer state). The medians over rounds are compared.

Sanity check (printed and stored, not asserted): the mean policy log-probs of the first batch at
step 0 (one forward of identical weights on identical tokens) and the loss at step 1 (after one
identical AdamW update) must agree between the sides; the token sequences TRL built for the first
pair are compared with this project's encoding of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# zoo: like for like (a frozen reference copy run every step, as TRL); zoo_cached: the project's default
# DPO recipe (reference log-probs computed once before training, which TRL refuses for vision data).
SIDES = ("zoo", "zoo_cached", "trl")


@dataclass(frozen=True)
class Sizes:
    """Model and token-profile sizes."""

    image_size: int  # pixels; (image_size // patch_size) ** 2 media tokens per image
    patch_size: int
    vision_hidden: int
    vision_intermediate: int
    vision_layers: int
    vision_heads: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int  # BPE vocabulary size asked of the tokenizer trainer
    prompt_text_tokens: int  # tokens of the user's text (the chat template adds its own)
    response_tokens: int  # tokens of each response text (EOS comes on top)

    @property
    def media_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


SIZES = {
    # 144 media tokens, ~32 prompt text tokens (28 of text + 4 of chat template), 64 response tokens
    # (63 of text + EOS) for chosen and rejected; a 4-layer d=256 Llama with a 3000-token vocabulary.
    "default": Sizes(
        image_size=192, patch_size=16, vision_hidden=128, vision_intermediate=512, vision_layers=2, vision_heads=4,
        hidden=256, intermediate=512, layers=4, heads=4, kv_heads=4, vocab=3000,
        prompt_text_tokens=28, response_tokens=63,
    ),
    "quick": Sizes(
        image_size=64, patch_size=16, vision_hidden=32, vision_intermediate=64, vision_layers=1, vision_heads=2,
        hidden=64, intermediate=128, layers=2, heads=2, kv_heads=2, vocab=600,
        prompt_text_tokens=12, response_tokens=15,
    ),
}  # fmt: skip

SIZES["llava-shape"] = Sizes(
    image_size=336, patch_size=14, vision_hidden=1024, vision_intermediate=4096, vision_layers=12, vision_heads=16,
    hidden=2048, intermediate=5632, layers=12, heads=16, kv_heads=16, vocab=32000,
    prompt_text_tokens=28, response_tokens=127,
)  # fmt: skip
SIZES["llava-7b"] = Sizes(
    image_size=336, patch_size=14, vision_hidden=1024, vision_intermediate=4096, vision_layers=24, vision_heads=16,
    hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32, vocab=32000,
    prompt_text_tokens=28, response_tokens=127,
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """A benchmark profile: model sizes and how the model trains."""

    sizes: str  # a key of SIZES
    lora_r: int = 0  # > 0: LoRA of this rank (alpha 2r) on the language model's attention; everything else frozen
    precision: str = "32"  # the default --precision


PROFILES = {
    "tiny": Profile("default"),
    "llava-shape": Profile("llava-shape"),
    "llava-7b-lora": Profile("llava-7b", lora_r=128, precision="bf16-true"),
}
PRECISIONS = ("32", "bf16-mixed", "bf16-true")
# LoRA targets: the language model's attention projections only (peft reads a string as a full-name regex)
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
# Dense peak TFLOP/s per card for MFU: bf16 and (TF32) fp32 matmuls
PEAK_TFLOPS = {"H200": (989.0, 494.5), "H100": (989.0, 494.5), "A100": (312.0, 156.0), "L40S": (362.0, 183.0)}

DEFAULTS = {"batch_size": 4, "warmup": 2, "steps": 5, "rounds": 3}
QUICK = {"batch_size": 2, "warmup": 1, "steps": 2, "rounds": 1}

WORKER_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "65536",  # fixed threshold: large tensors are mmapped and returned on free
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    "WANDB_DISABLED": "true",
}


# ---------------------------------------------------------------------------------------------
# Building the model and the data (parent process, once).

CONSONANTS, VOWELS = "bcdfghjklmnprstvwz", "aeiou"
PROMPT_PREFIX = "Look at the picture and answer: "


def _lexicon(rng, n_words: int) -> list[str]:
    """``n_words`` distinct pronounceable pseudo-words of 1–4 syllables, rank order = frequency order."""
    words: dict[str, None] = {}
    while len(words) < n_words:
        n_syl = int(rng.choice([1, 2, 2, 3, 3, 4]))
        syl = [rng.choice(list(CONSONANTS)) + rng.choice(list(VOWELS)) for _ in range(n_syl)]
        if rng.random() < 0.3:
            syl.append(str(rng.choice(list(CONSONANTS))))
        words["".join(syl)] = None
    return list(words)


class TextSource:
    """Zipf-distributed pseudo-word sentences from a fixed lexicon (deterministic per seed)."""

    def __init__(self, seed: int, n_words: int = 6000):
        import numpy as np

        self.rng = np.random.default_rng(seed)
        self.words = _lexicon(self.rng, n_words)
        p = 1.0 / np.arange(1, n_words + 1)
        self.p = p / p.sum()

    def words_(self, n: int) -> list[str]:
        return [self.words[i] for i in self.rng.choice(len(self.words), size=n, p=self.p)]

    def sentence(self, n: int) -> str:
        words = self.words_(n)
        return " ".join(words).capitalize() + "."

    def corpus(self, n_sentences: int, length: int = 14, extra: tuple[str, ...] = ()) -> list[str]:
        return [self.sentence(int(self.rng.integers(4, length))) for _ in range(n_sentences)] + list(extra) * 1000

    def text_with_tokens(self, tokenizer, target: int, prefix: str = "", suffix: str = ".") -> str:
        """The longest prefix+words+suffix text with at most ``target`` tokens (tokenized on its own)."""
        words = self.words_(target * 2)

        def text(k: int, tail: str = "") -> str:
            s = prefix + " ".join(words[:k] + ([tail] if tail else [])) + suffix
            return s[0].upper() + s[1:]

        def count(s: str) -> int:
            return len(tokenizer(s, add_special_tokens=False)["input_ids"])

        lo, hi = 1, len(words)  # binary search on the number of words (the token count grows with it)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text(mid)) <= target:
                lo = mid
            else:
                hi = mid - 1
        # Top up to exactly ``target`` with a cut-off piece of the next word when one fits.
        for j in range(len(words[lo]), 0, -1):
            if count(text(lo, words[lo][:j])) == target:
                return text(lo, words[lo][:j])
        return text(lo)


def build_tiny_llava(out_dir: Path, texts: list[str], sizes: Sizes, seed: int = 0) -> Path:
    """A random LLaVA (CLIP vision tower + Llama) and its processor, saved to ``out_dir``: the llava
    family's tiny stand-in (zoo.models.families.llava) at the benchmark's sizes."""
    import torch
    from transformers.utils import logging as hf_logging

    from zoo.models.families import FAMILIES, TinySizes

    hf_logging.disable_progress_bar()
    model_sizes = TinySizes(
        image_size=sizes.image_size, patch_size=sizes.patch_size, vision_hidden=sizes.vision_hidden,
        vision_intermediate=sizes.vision_intermediate, vision_layers=sizes.vision_layers,
        vision_heads=sizes.vision_heads, hidden=sizes.hidden, intermediate=sizes.intermediate, layers=sizes.layers,
        heads=sizes.heads, kv_heads=sizes.kv_heads, vocab=sizes.vocab, max_positions=2048,
    )  # fmt: skip
    torch.manual_seed(seed)
    model, processor = FAMILIES.get("llava").tiny(texts, model_sizes)
    model.eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _image(rng, size: int):
    """Noise with a few random filled shapes."""
    import numpy as np
    from PIL import Image, ImageDraw

    image = Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, size=2))
        x1, y1 = x0 + int(rng.integers(size // 8, size // 3)), y0 + int(rng.integers(size // 8, size // 3))
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=fill)
    return image


def build_workdir(workdir: Path, sizes: Sizes, n_pairs: int, seed: int = 0, uneven: bool = True) -> tuple[Path, Path]:
    """The model folder and the data folder (``pairs.jsonl`` + ``images/``) the workers load. ``uneven``: each
    response's length is drawn between a quarter of ``sizes.response_tokens`` and all of it."""
    from transformers import AutoTokenizer

    model_dir, data_dir = workdir / "model", workdir / "data"
    source = TextSource(seed)
    build_tiny_llava(model_dir, source.corpus(6000, extra=(PROMPT_PREFIX,)), sizes, seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    (data_dir / "images").mkdir(parents=True, exist_ok=True)
    with (data_dir / "pairs.jsonl").open("w") as f:
        for i in range(n_pairs):
            _image(source.rng, sizes.image_size).save(data_dir / "images" / f"{i}.png")
            question = source.text_with_tokens(tok, sizes.prompt_text_tokens, prefix=PROMPT_PREFIX, suffix="?")
            def length() -> int:
                low = max(2, sizes.response_tokens // 4)
                return int(source.rng.integers(low, sizes.response_tokens + 1)) if uneven else sizes.response_tokens

            chosen = source.text_with_tokens(tok, length())
            rejected = source.text_with_tokens(tok, length())
            while rejected == chosen:
                rejected = source.text_with_tokens(tok, length())
            row = {
                "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
                "chosen": [{"role": "assistant", "content": [{"type": "text", "text": chosen}]}],
                "rejected": [{"role": "assistant", "content": [{"type": "text", "text": rejected}]}],
                "images": [f"images/{i}.png"],
            }
            f.write(json.dumps(row) + "\n")
    return model_dir, data_dir


def token_profile(model_dir: Path, data_dir: Path) -> dict[str, Any]:
    """Token counts per pair as this project encodes them (media, prompt text, responses incl. EOS)."""
    from transformers import AutoProcessor

    from zoo.data.collate import ExampleEncoder
    from zoo.data.formats import read_rows

    processor = AutoProcessor.from_pretrained(model_dir)
    encoder = ExampleEncoder(processor, None, media_root=data_dir)
    media_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    counts: dict[str, list[int]] = {k: [] for k in ("media", "prompt_text", "chosen", "rejected", "sequence")}
    first = {}
    for i, row in enumerate(read_rows(data_dir, "pairs")):
        for field in ("chosen", "rejected"):
            enc = encoder.encode(row, i, field)
            counts[field].append(len(enc.input_ids) - enc.prompt_length)
            counts["sequence"].append(len(enc.input_ids))
            if i == 0:
                first[field] = enc.input_ids.tolist()
        prompt = enc.input_ids[: enc.prompt_length]
        n_media = int((prompt == media_id).sum())
        counts["media"].append(n_media)
        counts["prompt_text"].append(enc.prompt_length - n_media)
    summary: dict[str, Any] = {
        k: {"mean": statistics.fmean(v), "min": min(v), "max": max(v)} for k, v in counts.items()
    }
    summary["vocab_size"] = len(processor.tokenizer)
    return {"per_pair": summary, "first_pair_ids": first}


# ---------------------------------------------------------------------------------------------
# Measuring (worker processes).


class PeakRSS:
    """Polls this process's RSS every ``interval`` seconds in a thread; ``peak`` is the maximum seen."""

    def __init__(self, interval: float = 0.001):
        import psutil

        self.process, self.interval = psutil.Process(), interval
        self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def to_device(obj, device):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def _autocast(args):
    """bf16 autocast for ``--precision bf16-mixed`` (float32 weights), else nothing."""
    import contextlib
    from functools import partial

    import torch

    if args.precision != "bf16-mixed":
        return contextlib.nullcontext
    return partial(torch.autocast, device_type=args.device.split(":")[0], dtype=torch.bfloat16)


def measure(step, batches: list, warmup: int, steps: int, device: str) -> dict[str, Any]:
    """Run ``warmup`` then ``steps`` timed calls of ``step(batch) -> (loss, logps_chosen, logps_rejected)``."""
    import torch

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    trace = []  # per step: loss, mean policy log-probs of chosen / rejected

    def run(i):
        out = step(batches[i % len(batches)])
        trace.append([float(v) for v in out])

    for i in range(warmup):
        run(i)
    sync()
    times = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for i in range(warmup, warmup + steps):
            t0 = time.perf_counter()
            run(i)
            sync()
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated()
        memory = {"kind": "cuda max_memory_allocated"}
    else:
        rss = PeakRSS()
        base = rss.rss()
        with rss:
            for i in range(warmup, warmup + steps):
                t0 = time.perf_counter()
                run(i)
                times.append(time.perf_counter() - t0)
        peak = rss.peak
        memory = {"kind": "process RSS (polled every 1 ms)"}
    mb = 1024 * 1024
    memory.update(peak_mb=peak / mb, base_mb=base / mb, step_mb=(peak - base) / mb)
    median = statistics.median(times)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # others on the CPU make timings noisy
    return {"step_s": times, "median_step_s": median, "memory": memory, "trace": trace, "load_average_1min": load}


def worker_zoo(args, model_dir: Path, data_dir: Path, cached: bool = False) -> dict[str, Any]:
    from functools import partial

    import torch

    from zoo.align.objectives import Objective
    from zoo.align.pairs.offline import OfflinePairs
    from zoo.align.reference import CachedReference, FrozenReference
    from zoo.models.native import load_native_policy
    from zoo.train.data import PairDataModule
    from zoo.train.modules import PreferenceModule

    policy = load_native_policy(model_dir, dtype=torch.bfloat16 if args.precision == "bf16-true" else None,
                                device=args.device)
    adamw = partial(torch.optim.AdamW, lr=args.lr, weight_decay=0.0, fused=args.fused_adamw)
    reference = CachedReference(Path(args.result).with_suffix(".cache")) if cached else FrozenReference()
    if args.lora_r:  # as TRL's peft path: LoRA on the language model, the rest frozen, reference = adapters off
        from zoo.align.reference import LoRAReference
        from zoo.models.adapters import apply_lora

        policy.model.requires_grad_(False)
        # apply_lora wraps the language model alone: the attention projections by name are LORA_TARGETS
        apply_lora(policy, r=args.lora_r, alpha=2 * args.lora_r, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
        reference = reference if cached else LoRAReference()
    autocast = _autocast(args)
    pairs = OfflinePairs(args.zoo_layout)
    module = PreferenceModule(policy, optimizer=adamw, objective=Objective("sigmoid", {"beta": args.beta}),
                              reference=reference, pairs=pairs, logps_chunk=args.zoo_logps_chunk)
    module.to(args.device)
    # Pairs in file order on both sides, so their step-0 batches are the same pairs.
    dm = PairDataModule(path=str(data_dir), train_split="pairs", val_split=None, val_limit=None,
                        batch_size=args.batch_size, max_length=None).attach(policy.processor, pairs.collate)
    dm.setup()
    precompute_s = None
    if cached:  # the one-off reference pass over the whole dataset, before training (timed, not in the steps)
        t0 = time.perf_counter()
        with autocast():
            module.reference.prepare(module.policy, dm)
        precompute_s = time.perf_counter() - t0
    batches = [b.to(args.device) for b in dm.ordered_loader()]
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = adamw(params)
    module.train()  # the policy trains; the reference evaluates in eval mode inside

    def step(batch):
        with autocast():
            loss, metrics = module.loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        nan = float("nan")
        return loss.detach(), metrics.get("logps/chosen", nan), metrics.get("logps/rejected", nan)

    result = measure(step, batches, args.warmup, args.steps, args.device)
    result["info"] = {
        "trainable_params": sum(p.numel() for p in params),
        "params": sum(p.numel() for p in module.policy.parameters()),
        "layout": pairs.layout,
        "reference": "cached" if cached else ("adapters disabled" if args.lora_r else "frozen"),
        "reference_precompute_s": precompute_s,
        "reference_precompute_pairs": len(dm.encoded[dm.train_split]) if cached else None,
    }
    return result


def worker_trl(args, model_dir: Path, data_dir: Path) -> dict[str, Any]:
    from datasets import Dataset
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer

    import torch

    processor = AutoProcessor.from_pretrained(model_dir)
    dtype = {"dtype": torch.bfloat16} if args.precision == "bf16-true" else {}
    model = AutoModelForImageTextToText.from_pretrained(model_dir, **dtype)
    # The reference: a second copy of the same checkpoint (TRL freezes it and runs it under no_grad); with LoRA,
    # none: TRL disables the adapters for the reference pass
    ref_model = None if args.lora_r else \
        AutoModelForImageTextToText.from_pretrained(model_dir, **dtype).to(args.device).eval().requires_grad_(False)
    peft_config = None
    if args.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules=LORA_TARGETS,
                                 lora_dropout=0.0)
    rows = [json.loads(line) for line in (data_dir / "pairs.jsonl").open()]
    for row in rows:
        row["images"] = [Image.open(data_dir / p).convert("RGB") for p in row["images"]]
    dataset = Dataset.from_list(rows)  # the images column becomes a list of datasets.Image
    config = DPOConfig(
        output_dir=str(Path(args.workdir) / "trl_out"), per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, weight_decay=0.0, optim="adamw_torch_fused" if args.fused_adamw else "adamw_torch",
        beta=args.beta, loss_type=["sigmoid"], max_length=None, precompute_ref_log_probs=False,
        gradient_checkpointing=args.trl_gradient_checkpointing, bf16=args.precision != "32", fp16=False,
        use_cpu=args.device == "cpu", report_to=[], save_strategy="no", logging_steps=1_000_000, disable_tqdm=True,
        dataloader_num_workers=0, remove_unused_columns=False, train_sampling_strategy="sequential", seed=0,
    )  # fmt: skip
    trainer = DPOTrainer(
        model=model, ref_model=ref_model, args=config, train_dataset=dataset, processing_class=processor,
        peft_config=peft_config,
    )
    if args.trl_gradient_checkpointing:  # normally switched on by trainer.train()
        trainer.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    batches = list(trainer.get_train_dataloader())  # collated (images processed) before timing
    optimizer = trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, read by training_step
    metrics = trainer._metrics["train"]

    def step(batch):
        loss = trainer.training_step(trainer.model, batch)  # forward (policy + reference) + backward
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss, metrics["logps/chosen"][-1], metrics["logps/rejected"][-1]

    result = measure(step, batches, args.warmup, args.steps, args.device)
    b = batches[0]
    n = b["input_ids"].shape[0] // 2
    mask, completion = b["attention_mask"].bool(), b["completion_mask"].bool()
    media = (b["input_ids"] == model.config.image_token_id) & mask
    result["info"] = {
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "tokens_per_step": [int(b["attention_mask"].sum())],
        "reference": "adapters disabled" if args.lora_r else "frozen copy",
        "ref_is_separate_frozen_copy": trainer.ref_model is not None
        and not any(p.requires_grad for p in trainer.ref_model.parameters()),
        "batch_keys": sorted(b.keys()),
        "pixel_values_shape": list(b["pixel_values"].shape) if "pixel_values" in b else None,
        "rows_per_batch": int(b["input_ids"].shape[0]),
        "media_tokens": media.sum(1).tolist(),
        "prompt_text_tokens": (mask & ~completion & ~media).sum(1).tolist(),
        "response_tokens": {"chosen": completion[:n].sum(1).tolist(), "rejected": completion[n:].sum(1).tolist()},
        "first_pair_ids": {
            "chosen": b["input_ids"][0][mask[0]].tolist(),
            "rejected": b["input_ids"][n][mask[n]].tolist(),
        },
        "optimizer": type(optimizer).__name__,
    }
    return result


def run_worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    t0 = time.perf_counter()
    fn = {"zoo": worker_zoo, "zoo_cached": lambda *a: worker_zoo(*a, cached=True), "trl": worker_trl}[args.worker]
    result = fn(args, workdir / "model", workdir / "data")
    result.update(side=args.worker, threads=torch.get_num_threads(), wall_s=time.perf_counter() - t0)
    Path(args.result).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Driving (parent process).


def machine(device: str, threads: int) -> dict[str, Any]:
    import psutil
    import torch
    import transformers
    import trl

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def worker_command(args, side: str, result: Path) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.speed.dpo_step", "--worker", side, "--workdir", str(args.workdir),
           "--result", str(result), "--batch-size", str(args.batch_size), "--warmup", str(args.warmup),
           "--steps", str(args.steps), "--device", args.device, "--threads", str(args.threads), "--lr", str(args.lr),
           "--beta", str(args.beta), "--profile", args.profile, "--precision", args.precision,
           "--lora-r", str(args.lora_r)]  # fmt: skip
    if not args.fused_adamw:
        cmd.append("--no-fused-adamw")
    if args.trl_gradient_checkpointing:
        cmd.append("--trl-gradient-checkpointing")
    cmd += ["--zoo-layout", args.zoo_layout, "--zoo-logps-chunk", str(args.zoo_logps_chunk)]
    return cmd


def run_side(args, side: str, round_: int) -> dict[str, Any]:
    result = Path(args.workdir) / f"result-{side}-{round_}.json"
    log = Path(args.workdir) / f"log-{side}-{round_}.txt"
    env = {**os.environ, **WORKER_ENV, "OMP_NUM_THREADS": str(args.threads)}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    with log.open("w") as f:
        proc = subprocess.run(worker_command(args, side, result), cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not result.exists():
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise RuntimeError(f"{side} worker failed (exit {proc.returncode}); last lines of {log}:\n{tail}")
    return json.loads(result.read_text())


def summarize(runs: list[dict], batch_size: int) -> dict[str, Any]:
    med = lambda xs: statistics.median(xs)  # noqa: E731
    return {
        "pairs_per_s": med([batch_size / r["median_step_s"] for r in runs]),
        "median_step_s": med([r["median_step_s"] for r in runs]),
        "best_pairs_per_s": batch_size / min(min(r["step_s"]) for r in runs),  # least disturbed step seen
        "peak_mb": med([r["memory"]["peak_mb"] for r in runs]),
        "step_mb": med([r["memory"]["step_mb"] for r in runs]),
        "base_mb": med([r["memory"]["base_mb"] for r in runs]),
        "memory_kind": runs[0]["memory"]["kind"],
        "rounds": [
            {"pairs_per_s": batch_size / r["median_step_s"], "step_s": r["step_s"], "memory": r["memory"],
             "wall_s": r["wall_s"], "load_average_1min": r.get("load_average_1min")}
            for r in runs
        ],  # fmt: skip
        "trace_first_round": runs[0]["trace"],
        "info": runs[0].get("info", {}),
    }


def _ratios(a: dict, b: dict) -> dict[str, Any]:
    # each round's sides run back to back: the ratio within a round is steadier than the ratio of the medians
    # when the machine's speed drifts between rounds (seen on the shared 2-core CPU: one side ±30 % across rounds)
    per_round = [x["pairs_per_s"] / y["pairs_per_s"] for x, y in zip(a["rounds"], b["rounds"])]
    return {
        "pairs_per_s": a["pairs_per_s"] / b["pairs_per_s"],
        "pairs_per_s_per_round": per_round,
        "pairs_per_s_median_of_rounds": statistics.median(per_round),
        "best_pairs_per_s": a["best_pairs_per_s"] / b["best_pairs_per_s"],
        "peak_mb": a["peak_mb"] / b["peak_mb"],
        "step_mb": a["step_mb"] / b["step_mb"] if b["step_mb"] > 0 else None,
    }


def sanity(zoo: dict, trl: dict, profile: dict, precision: str = "32") -> dict[str, Any]:
    """Step-0 policy log-probs and step-1 loss of both sides; TRL's tokens vs this project's encoding."""
    tz, tt = zoo["trace_first_round"], trl["trace_first_round"]
    out: dict[str, Any] = {
        "step0_loss": {"zoo": tz[0][0], "trl": tt[0][0]},
        "step0_logps_chosen": {"zoo": tz[0][1], "trl": tt[0][1]},
        "step0_logps_rejected": {"zoo": tz[0][2], "trl": tt[0][2]},
    }
    if len(tz) > 1 and len(tt) > 1:
        out["step1_loss"] = {"zoo": tz[1][0], "trl": tt[1][0]}
    diffs = [abs(v["zoo"] - v["trl"]) for k, v in out.items() if k.startswith("step")]
    out["max_abs_diff"] = max(diffs)
    # Summed log-probs over ~64 tokens: allow float32 noise relative to their size (bf16: its 8-bit mantissa)
    relative = 1e-5 if precision == "32" else 2e-2
    scale = max(10.0, abs(tz[0][1]), abs(tz[0][2])) * relative
    checks = {k: v for k, v in out.items() if k.startswith("step")}
    loss_tol = 1e-4 if precision == "32" else 2e-2
    out["agree"] = all(abs(v["zoo"] - v["trl"]) <= (loss_tol if "loss" in k else scale) for k, v in checks.items())
    ours, theirs = profile["first_pair_ids"], trl["info"].pop("first_pair_ids", {})
    out["tokens_identical"] = all(ours[f] == theirs.get(f) for f in ("chosen", "rejected"))
    if not out["tokens_identical"]:
        out["first_pair_ids"] = {"zoo": ours, "trl": theirs}
    return out


def mfu(results: dict, args, host: dict) -> dict[str, Any] | None:
    """Model FLOPs utilisation per side, on CUDA with a known peak: the naive step's FLOPs (the same for every
    side: 2·P·T for the policy's forward, 2·P·T for its activation gradients and 2·P_trainable·T for its weight
    gradients, 2·P·T for the reference's forward; T = the tokens of the chosen and rejected full sequences, P = all
    parameters; attention's T² terms left out) over the median step time and the peak. A side that does less work
    than the naive step (a shared prompt, a cached reference) can pass 100 %: it is the work a naive step would
    need, per second, against the card's peak."""
    peak = args.peak_tflops
    if peak is None and host.get("gpu"):
        known = next((v for k, v in PEAK_TFLOPS.items() if k in host["gpu"]), None)
        peak = None if known is None else known[0 if args.precision != "32" else 1]
    if not peak:
        return None
    trl = results["trl"]["info"]
    params, trainable, tokens = trl["params"], trl["trainable_params"], trl["tokens_per_step"][0]
    flops = (2 * params + 2 * params + 2 * trainable + 2 * params) * tokens
    return {"peak_tflops": peak, "naive_step_tflop": flops / 1e12,
            **{side: flops / r["median_step_s"] / (peak * 1e12) for side, r in results.items()}}


def print_table(report: dict) -> None:
    cfg, res, ratio = report["config"], report["results"], report["ratio"]
    m = report["machine"]
    where = m.get("gpu") or f"{m['cpu']}, {m['threads']} threads"
    mem = "peak MB" if cfg["device"] == "cpu" else "peak alloc MB"
    print()
    print(f"DPO step (forward + backward + AdamW), profile {cfg['profile']}, precision {cfg['precision']}, "
          f"LoRA r {cfg['lora_r']}, {cfg['lengths']} response lengths, {cfg['batch_size']} pairs/batch, "
          f"{cfg['device']} ({where})")
    print(f"median over {cfg['rounds']} rounds of the median of {cfg['steps']} timed steps ({cfg['warmup']} warm-up)")
    print(f"{'side':<11}{'pairs/s':>9}{'step s':>9}{'best p/s':>10}{mem:>15}{'step MB':>10}{'base MB':>10}")
    for side in SIDES:
        r = res[side]
        print(f"{side:<11}{r['pairs_per_s']:>9.3f}{r['median_step_s']:>9.3f}{r['best_pairs_per_s']:>10.3f}"
              f"{r['peak_mb']:>15.1f}{r['step_mb']:>10.1f}{r['base_mb']:>10.1f}")
    for name, q in (("zoo/trl", ratio), ("cached/trl", report["ratio_cached"])):
        step_ratio = f"{q['step_mb']:>9.2f}x" if q["step_mb"] is not None else f"{'n/a':>10}"
        print(f"{name:<11}{q['pairs_per_s']:>8.2f}x{'':>9}{q['best_pairs_per_s']:>9.2f}x"
              f"{q['peak_mb']:>14.2f}x{step_ratio}")
    for name, q in (("zoo/trl", ratio), ("cached/trl", report["ratio_cached"])):
        rounds = q["pairs_per_s_per_round"]
        print(f"{name} within each round: median {q['pairs_per_s_median_of_rounds']:.2f}x "
              f"(min {min(rounds):.2f}x, max {max(rounds):.2f}x over {len(rounds)} rounds)")
    zc = res["zoo_cached"]
    print(f"zoo_cached: one-off reference pass {zc['reference_precompute_s_per_pair'] * 1000:.1f} ms/pair; one epoch "
          f"with it: {zc['pairs_per_s_one_epoch_incl_reference_pass']:.3f} pairs/s "
          f"({report['ratio_cached']['pairs_per_s_one_epoch_incl_reference_pass']:.2f}x TRL)")
    if report.get("mfu"):
        m_ = report["mfu"]
        print(f"MFU (naive-step FLOPs {m_['naive_step_tflop']:.2f} TFLOP, peak {m_['peak_tflops']:.0f} TFLOP/s): "
              + ", ".join(f"{side} {m_[side]:.1%}" for side in SIDES))
    s = report["sanity"]
    lp, l1 = s["step0_logps_chosen"], s.get("step1_loss")
    print(
        f"sanity: step-0 logps chosen zoo {lp['zoo']:.5f} / trl {lp['trl']:.5f}, "
        + (f"step-1 loss zoo {l1['zoo']:.6f} / trl {l1['trl']:.6f}, " if l1 else "")
        + f"max |diff| {s['max_abs_diff']:.2e} -> {'agree' if s['agree'] else 'DIFFER'}; "
        + f"first pair's tokens {'identical' if s['tokens_identical'] else 'DIFFER'}"
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed.dpo_step", description=__doc__.split("\n")[0])
    for flag, key, what in (("--batch-size", "batch_size", "pairs per step"), ("--warmup", "warmup", "untimed steps"),
                            ("--steps", "steps", "timed steps"), ("--rounds", "rounds", "subprocess runs per side")):
        p.add_argument(flag, type=int, help=f"{what} (default {DEFAULTS[key]}, quick {QUICK[key]})")  # fmt: skip
    p.add_argument("--profile", default="tiny", choices=tuple(PROFILES), help="model and training shape (default tiny)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="32 (TF32 matmuls on GPUs), bf16-mixed (autocast, both sides) or bf16-true (bf16 weights); "
                   "default: the profile's")
    p.add_argument("--lora-r", type=int, help="LoRA rank on the language model (0: full fine-tuning); default: the "
                   "profile's")
    p.add_argument("--lengths", default="uneven", choices=("uneven", "even"),
                   help="response lengths: uneven (default, between a quarter of the profile's and all of it) or even")
    p.add_argument("--peak-tflops", type=float, help="the device's dense peak TFLOP/s at the precision, for MFU "
                   "(default: known cards' figures)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch threads, the same for both sides (default: all available cores)")
    p.add_argument("--output", default="runs/bench/dpo_step.json", help="JSON file with the figures")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 warm-up, 2 steps, 1 round (a smoke run)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--no-fused-adamw", dest="fused_adamw", action="store_false",
                   help="plain torch AdamW on both sides instead of the fused one (TRL's default)")
    p.add_argument("--trl-gradient-checkpointing", action="store_true",
                   help="TRL's default gradient checkpointing on (off by default: both sides then do the same compute)")
    p.add_argument("--zoo-layout", default="shared_prefix", choices=("shared_prefix", "concat"),
                   help="zoo's group batch layout (the offline pair source's `layout`): shared_prefix (default) "
                   "or concat, the naive one")
    p.add_argument("--zoo-logps-chunk", type=int, default=0,
                   help="zoo's module.logps_chunk: response log-probs N tokens at a time from the hidden states, never "
                   "the full logits (0, the default: the full logits)")
    p.add_argument("--workdir", help="where model, data and logs go (default: a fresh temp folder, removed after)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    profile = PROFILES[args.profile]
    args.precision = args.precision or profile.precision
    args.lora_r = profile.lora_r if args.lora_r is None else args.lora_r
    return args


def main(argv=None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return None
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device here")
    python = os.path.relpath(sys.executable)
    python = sys.executable if python.startswith("..") else python
    command = shlex.join([python, "-m", "benchmarks.speed.dpo_step", *(sys.argv[1:] if argv is None else argv)])
    sizes = SIZES["quick" if args.quick else PROFILES[args.profile].sizes]
    keep = args.workdir is not None
    tmp = None if keep else tempfile.TemporaryDirectory(prefix="zoo-dpo-bench-")
    args.workdir = str(Path(args.workdir or tmp.name).resolve())
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if hasattr(os, "getloadavg") and args.device == "cpu" and os.getloadavg()[0] > 0.5:
        print(f"note: load average {os.getloadavg()[0]:.2f} before starting: other processes share the CPU, "
              "expect noisy timings; multi-threaded steps suffer most (--threads 1 is steadier)", flush=True)  # fmt: skip
    host = machine(args.device, args.threads)  # load average before anything of ours runs
    try:
        t0 = time.perf_counter()
        n_pairs = args.batch_size * (args.warmup + args.steps)
        model_dir, data_dir = build_workdir(Path(args.workdir), sizes, n_pairs, args.seed, args.lengths == "uneven")
        profile = token_profile(model_dir, data_dir)
        pp = profile["per_pair"]
        print(
            f"built tiny LLaVA + {n_pairs} pairs in {time.perf_counter() - t0:.1f} s: per pair "
            f"{pp['media']['mean']:.0f} media tokens, {pp['prompt_text']['mean']:.1f} prompt text tokens "
            f"(min {pp['prompt_text']['min']}, max {pp['prompt_text']['max']}), responses "
            f"{pp['chosen']['mean']:.1f} / {pp['rejected']['mean']:.1f} tokens incl. EOS "
            f"(min {min(pp['chosen']['min'], pp['rejected']['min'])}, "
            f"max {max(pp['chosen']['max'], pp['rejected']['max'])}), "
            f"sequences {pp['sequence']['mean']:.1f} tokens; vocabulary {pp['vocab_size']}",
            flush=True,
        )
        runs: dict[str, list] = {s: [] for s in SIDES}
        for r in range(args.rounds):
            for side in SIDES:
                out = run_side(args, side, r)
                runs[side].append(out)
                mem = out["memory"]
                label = side
                if side.startswith("zoo"):
                    label = f"{side} (layout={out['info']['layout']}, reference={out['info']['reference']})"
                print(
                    f"round {r + 1}/{args.rounds} {label}: {args.batch_size / out['median_step_s']:.3f} pairs/s "
                    f"(median step {out['median_step_s']:.3f} s), peak {mem['peak_mb']:.0f} MB "
                    f"(+{mem['step_mb']:.0f} MB over {mem['base_mb']:.0f}), loss@0 {out['trace'][0][0]:.6f}, "
                    f"process {out['wall_s']:.1f} s",
                    flush=True,
                )
        results = {side: summarize(runs[side], args.batch_size) for side in SIDES}
        z, zc, t = results["zoo"], results["zoo_cached"], results["trl"]
        pre = [r["info"]["reference_precompute_s"] / r["info"]["reference_precompute_pairs"] for r in runs["zoo_cached"]]
        zc["reference_precompute_s_per_pair"] = statistics.median(pre)
        # one epoch, the reference pass included: what a single pass over the data costs per pair
        zc["pairs_per_s_one_epoch_incl_reference_pass"] = 1 / (1 / zc["pairs_per_s"] + statistics.median(pre))
        report = {
            "benchmark": "dpo_step",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command,
            "machine": host,
            "config": {
                "batch_size": args.batch_size, "warmup": args.warmup, "steps": args.steps, "rounds": args.rounds,
                "device": args.device, "threads": args.threads, "lr": args.lr, "beta": args.beta,
                "loss": "sigmoid DPO", "optimizer": "AdamW (torch, weight_decay=0, fused)" if args.fused_adamw
                else "AdamW (torch, weight_decay=0)", "trl_gradient_checkpointing": args.trl_gradient_checkpointing,
                "zoo_layout": args.zoo_layout, "zoo_logps_chunk": args.zoo_logps_chunk, "quick": args.quick, "sizes": asdict(sizes), "n_pairs": n_pairs,
                "profile": args.profile, "precision": args.precision, "lora_r": args.lora_r, "lengths": args.lengths,
                "trl_driver": "DPOTrainer.training_step + optimizer.step/zero_grad, "
                "batches pre-fetched from get_train_dataloader()",
            },  # fmt: skip
            "token_profile": pp,
            "results": results,
            "ratio": _ratios(z, t),
            "ratio_cached": {**_ratios(zc, t), "pairs_per_s_one_epoch_incl_reference_pass":
                             zc["pairs_per_s_one_epoch_incl_reference_pass"] / t["pairs_per_s"]},
        }
        report["sanity"] = sanity(z, t, profile, args.precision)
        report["mfu"] = mfu(results, args, host)
        print_table(report)
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out} ({time.perf_counter() - t0:.0f} s in all)")
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
