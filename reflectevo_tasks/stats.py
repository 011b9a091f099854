"""Confidence intervals for the proportions we publish."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def format_rate(successes: int, n: int) -> str:
    lo, hi = wilson_interval(successes, n)
    rate = successes / n if n else 0.0
    return f"{100 * rate:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] (n={n})"


def paired_difference(gains: int, losses: int, n: int, z: float = 1.959964) -> tuple[float, tuple[float, float]]:
    """Mean of per-item differences that are +1 (`gains` items), -1 (`losses`) or 0 (the rest of `n`),
    with a 95% normal interval: Δ between two attempts, or between two rows, on the same items."""
    if n <= 0:
        return 0.0, (-1.0, 1.0)
    mean = (gains - losses) / n
    var = (gains + losses) / n - mean * mean
    half = z * math.sqrt(max(var, 0.0) / n)
    return mean, (mean - half, mean + half)
