"""Error bars: bootstrap confidence intervals over benchmark items, and mean ± sd over seeds.

A task's metrics are functions of per-item records (``Task.judge``), so an interval is the spread of
the metric over resamples of the items, drawn with replacement (percentile bootstrap, Efron 1979).
A *paired* bootstrap resamples the same item indices for two models evaluated on the same items: the
interval of their difference is much tighter than the two marginal intervals suggest, because item
difficulty cancels. Counts (``n``, ``n_mentions``, ``unparseable``) get no interval.

When one item is scored several times (the same images under several training seeds), the records are not
independent draws: pass ``groups`` (the item of each record) and the bootstrap resamples items, each with all
its records (a cluster bootstrap). Resampling the records instead would treat three seeds' scores of 300
images as 900 images and give an interval about √3 too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import numpy as np

from zoo.results import is_number, metric_info

LEVEL = 0.95
N_BOOT = 1000


def _interval_metrics(metrics: dict[str, Any]) -> list[str]:
    names = []
    for name, value in metrics.items():
        info = metric_info(name)
        if is_number(value) and not (info and info.kind == "count"):
            names.append(name)
    return names


def _percentiles(values: Sequence[float], level: float) -> list[float] | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    lo, hi = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return [float(lo), float(hi)]


def _resamples(n: int, n_boot: int, seed: int, groups: Sequence[Hashable] | None = None) -> Iterator[list[int]]:
    """Index lists of ``n_boot`` resamples of ``n`` records: of the records, or of whole ``groups`` (one label per
    record; a drawn group brings all its records)."""
    if groups is None:
        yield from (list(idx) for idx in np.random.default_rng(seed).integers(0, n, size=(n_boot, n)))
        return
    if len(groups) != n:
        raise ValueError(f"groups must label every record: {len(groups)} labels for {n} records")
    members: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    clusters = list(members.values())
    for draw in np.random.default_rng(seed).integers(0, len(clusters), size=(n_boot, len(clusters))):
        yield [i for j in draw for i in clusters[j]]


def bootstrap_intervals(aggregate: Callable[[list], dict[str, Any]], records: Sequence[Any], n_boot: int = N_BOOT,
                        level: float = LEVEL, seed: int = 0,
                        groups: Sequence[Hashable] | None = None) -> dict[str, list[float] | None]:
    """``{metric: [low, high]}``: the percentile bootstrap interval of every rate/score ``aggregate`` returns,
    resampling records, or whole ``groups`` of them (the item each record scores) when given.

    A metric that is None on a resample (e.g. CHAIR not applicable) is left out of that resample; one
    that is None on all of them gets None.
    """
    records = list(records)
    if not records:
        return {}
    names = _interval_metrics(aggregate(records))
    draws: dict[str, list] = {name: [] for name in names}
    for idx in _resamples(len(records), n_boot, seed, groups):
        metrics = aggregate([records[i] for i in idx])
        for name in names:
            draws[name].append(metrics.get(name))
    return {name: _percentiles(values, level) for name, values in draws.items()}


def paired_difference(aggregate: Callable[[list], dict[str, Any]], records_a: Sequence[Any], records_b: Sequence[Any],
                      metric: str, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0,
                      groups: Sequence[Hashable] | None = None) -> dict[str, Any]:
    """The difference ``metric(b) - metric(a)`` over the same items, with its paired bootstrap interval.

    ``records_a[i]`` and ``records_b[i]`` must judge the same item; ``groups[i]`` (optional) labels that item,
    so that records of one item (several seeds) are resampled together. Returns ``{"diff", "interval",
    "excludes_zero"}``.
    """
    if len(records_a) != len(records_b):
        raise ValueError(f"a paired difference needs the same items: {len(records_a)} vs {len(records_b)} records")
    diff = _difference(aggregate(list(records_a)), aggregate(list(records_b)), metric)
    draws = []
    for idx in _resamples(len(records_a), n_boot, seed, groups):
        draws.append(_difference(aggregate([records_a[i] for i in idx]), aggregate([records_b[i] for i in idx]), metric))
    interval = _percentiles(draws, level)
    excludes = interval is not None and (interval[0] > 0 or interval[1] < 0)
    return {"diff": diff, "interval": interval, "excludes_zero": excludes}


def _difference(a: dict[str, Any], b: dict[str, Any], metric: str) -> float | None:
    if a.get(metric) is None or b.get(metric) is None:
        return None
    return float(b[metric]) - float(a[metric])


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; 0 for one value) of the non-None values."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
