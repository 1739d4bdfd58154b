"""What `zoo train` prints besides its progress bar: each log record once, and no third-party noise.

* **Each Lightning log line once.** The ``lightning`` package adds its own stderr handler to the ``lightning``
  logger at import and leaves it propagating to the root logger, so a program that configured logging (``zoo``
  calls `logging.basicConfig`) prints every Lightning INFO line twice. Its subpackages already follow the rule
  "a configured root logger prints, otherwise our own handler does"; `route_lightning_logs` applies the same
  rule to the package logger.
* **No adverts**: Lightning's "💡 Tip: … litlogger / litmodels" lines are dropped (`LightningTips`).
* **One deprecation warning less**: Lightning's ``utilities/_pytree.py`` still builds torch's deprecated
  ``LeafSpec``; that one FutureWarning (message and module both matched) is ignored, no other.
* **No tqdm bar from `save_pretrained`** ("Writing model shards", which breaks a live display):
  `no_transformers_bars` turns transformers' bars off around a save and restores them after.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class LightningTips(logging.Filter):
    """Drops Lightning's "💡 Tip:" adverts for its cloud products; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def route_lightning_logs() -> None:
    """Each Lightning record printed once: by the root logger's handlers when the program configured some,
    otherwise by Lightning's own. Call it after ``lightning`` is imported (it adds its handler then)."""
    import lightning  # its import adds the handlers this removes

    def added_by_lightning(handler: logging.Handler) -> bool:  # the package's own, or a subpackage's bare one
        return handler is getattr(lightning, "_console", None) or (
            type(handler) is logging.StreamHandler and handler.formatter is None)

    if logging.getLogger().hasHandlers():
        for name in _LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if added_by_lightning(h)]:
                logger.removeHandler(handler)
            logger.propagate = True
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # rank_zero_info logs there
    if not any(isinstance(f, LightningTips) for f in tips.filters):
        tips.addFilter(LightningTips())


def ignore_known_warnings() -> None:
    """Ignore the deprecation warning Lightning's ``_pytree.py`` triggers in torch on every fit (it is
    Lightning's to fix, and says nothing about the run)."""
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning, module=r"lightning\.pytorch\.utilities\._pytree")


@contextlib.contextmanager
def no_transformers_bars() -> Iterator[None]:
    """Transformers' (and huggingface_hub's) tqdm bars off inside the block, as they were after it."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars
    from transformers.utils import logging as hf_logging

    was_enabled, hub_was_disabled = hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # enables huggingface_hub's bars too
            if hub_was_disabled:
                disable_progress_bars()
