"""Offline preference data: the pairs (or ranked groups) a dataset holds, trained on as they are."""

from zoo.align.pairs import PAIR_SOURCES, PairSource


@PAIR_SOURCES.register("offline")
class OfflinePairs(PairSource):
    """Chosen vs rejected of each row; ranked rows (``responses`` + ``scores``) as one group, best first.

    ``layout``: ``shared_prefix`` (each prompt and its media run once, the K responses continue from its
    KV cache) or ``concat`` (K full sequences, the naive computation)."""
