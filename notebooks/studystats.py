"""Interval estimates and the Pareto front shared by the derived tables and the notebooks.

Every interval of the study is a two-sided Student t interval of the mean over seeds at the
scale's `statistics.level` (95 % by default): mean +- t_{(1+level)/2, n-1} * sd / sqrt(n). Where
runs pair (same seed, e.g. PP vs TP or full vs half width) the interval is of the per-seed
differences (or ratios), i.e. a paired t interval. With fewer than two values there is no
interval (NaN); the workflow refuses such configs before any job runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


def ci_method(level: float = LEVEL, paired: bool = False) -> str:
    """The words that go with every interval: 'Student t 95 % CI over seeds (paired by seed)'."""
    return f"Student t {level * 100:g} % CI over seeds" + (" (paired by seed)" if paired else "")


def t_interval(values: Iterable[float], level: float = LEVEL) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite ``values``; low/high NaN for n < 2."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def summarise(df: pd.DataFrame, keys: Sequence[str], values: Sequence[str],
              level: float = LEVEL) -> pd.DataFrame:
    """Per group of ``keys``: for each of ``values`` its mean, ci_low, ci_high; and n (seeds)."""
    rows = []
    for key, g in df.groupby(list(keys), dropna=False, sort=True):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row["seeds"] = int(g["seed"].nunique()) if "seed" in g else len(g)
        for v in values:
            m, lo, hi, _ = t_interval(g[v], level)
            row[f"{v}_mean"], row[f"{v}_ci_low"], row[f"{v}_ci_high"] = m, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def ci_errorbar(level: float = LEVEL):
    """seaborn ``errorbar=`` callable: the t interval of the mean (instead of seaborn's bootstrap)."""

    def interval(x):
        _, lo, hi, _ = t_interval(x, level)
        return lo, hi

    return interval


LOSS_RTOL = 1e-4


def pareto_front(cost: Sequence[float], loss: Sequence[float], rtol: float = LOSS_RTOL) -> list[bool]:
    """True for each point that no other point dominates: another point with cost <= and
    loss <= (one strictly lower). Losses within ``rtol`` (relative) count as equal, so that
    float rounding between models that compute the same function (serial, TP and DTensor of one
    width) does not decide the front: the cheaper of them dominates."""
    c, q = np.asarray(cost, dtype=float), np.asarray(loss, dtype=float)
    out = []
    for i in range(len(c)):
        if not (np.isfinite(c[i]) and np.isfinite(q[i])):
            out.append(False)
            continue
        le = q <= q[i] * (1 + rtol)
        lt = q < q[i] * (1 - rtol)
        dominated = (c <= c[i]) & le & ((c < c[i]) | lt)
        out.append(not bool(dominated.any()))
    return out
