"""Statistics that decide whether an adapter beats its base: Mann-Whitney U, Cohen's d, bootstrap CI.

A promotion needs both significance (p) and a meaningful effect size (d): with enough examples a tiny
improvement is significant, and with few examples a large one may not be. The win-rate CI shows how
much the head-to-head result could move with another sample of the same size.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

WIN, TIE, LOSS = 1.0, 0.5, 0.0


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided Mann-Whitney U of `a` against `b` (scipy); U is the statistic for `a`."""
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(np.asarray(a, dtype=float), np.asarray(b, dtype=float), alternative="two-sided")
    return {"u": float(result.statistic), "p_value": float(result.pvalue)}


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean(a) - mean(b)) / pooled SD, the SD pooled with n-1 weights. Zero spread: 0 if the means are
    equal, else +-inf (a difference with no noise at all)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 1 or len(b) < 1:
        raise ValueError("cohens_d needs at least one value on each side")
    diff = float(a.mean() - b.mean())
    dof = len(a) + len(b) - 2
    var_a = a.var(ddof=1) if len(a) > 1 else 0.0
    var_b = b.var(ddof=1) if len(b) > 1 else 0.0
    pooled = math.sqrt(((len(a) - 1) * var_a + (len(b) - 1) * var_b) / dof) if dof > 0 else 0.0
    if pooled == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    return diff / pooled


def win_rate(outcomes: Sequence[float]) -> float:
    """Mean of per-example outcomes: win 1, tie 0.5, loss 0."""
    return float(np.mean(np.asarray(outcomes, dtype=float)))


def bootstrap_ci(outcomes: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000,
                 seed: int = 0, chunk: int = 2_000) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean outcome; resamples drawn in vectorized chunks (bounded memory)."""
    x = np.asarray(outcomes, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one outcome")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        means[start:start + size] = x[rng.integers(0, x.size, size=(size, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_outcomes(base: Sequence[float], adapter: Sequence[float], higher_is_better: bool) -> list[float]:
    """Per-example sign of the improvement: adapter better = win, worse = loss, equal = tie."""
    sign = 1.0 if higher_is_better else -1.0
    return [WIN if d > 0 else LOSS if d < 0 else TIE
            for d in (sign * (float(a) - float(b)) for b, a in zip(base, adapter, strict=True))]


def compare(base: Sequence[float], adapter: Sequence[float], *, higher_is_better: bool,
            outcomes: Sequence[float] | None = None, n_resamples: int = 10_000, seed: int = 0,
            confidence: float = 0.95) -> dict:
    """Adapter vs base on per-example scores. d is oriented so that positive means the adapter is better.
    `outcomes` (e.g. an LLM judge's) override the paired sign of the score difference for the win rate."""
    base, adapter = np.asarray(base, dtype=float), np.asarray(adapter, dtype=float)
    if base.size == 0 or adapter.size == 0:
        raise ValueError("compare needs scores on both sides")
    if outcomes is None:
        outcomes = paired_outcomes(base, adapter, higher_is_better)
    mwu = mann_whitney(adapter, base)
    lo, hi = bootstrap_ci(outcomes, confidence=confidence, n_resamples=n_resamples, seed=seed)
    outcomes = np.asarray(outcomes, dtype=float)
    return {
        "n": int(outcomes.size),
        "higher_is_better": higher_is_better,
        "mean_base": float(base.mean()),
        "mean_adapter": float(adapter.mean()),
        "mann_whitney_u": mwu["u"],
        "p_value": mwu["p_value"],
        "cohens_d": cohens_d(adapter, base) if higher_is_better else cohens_d(base, adapter),
        "wins": int((outcomes == WIN).sum()),
        "ties": int((outcomes == TIE).sum()),
        "losses": int((outcomes == LOSS).sum()),
        "win_rate": win_rate(outcomes),
        "win_rate_ci": [lo, hi],
        "confidence": confidence,
        "bootstrap_resamples": n_resamples,
        "seed": seed,
    }
