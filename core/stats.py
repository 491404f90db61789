"""Success-rate statistics shared by training's evaluation and the robot-side trials report: numpy/scipy
only, so a robot install (no torch) computes intervals and tests exactly as training does."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def fisher_exact_p(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided Fisher's exact test p-value that two success rates are equal (scipy.stats.fisher_exact)."""
    from scipy.stats import fisher_exact

    table = [[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)
