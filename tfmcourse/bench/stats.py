"""The statistics of ``tfmcourse bench``: medians with distribution-free confidence intervals, and ratios of
entries timed in the same rounds.

A benchmark on a shared machine sees slow spells that have nothing to do with the code. Two things keep
its conclusions honest: entries that are compared are timed in the same interleaved rounds, so their
per-round ratio cancels a spell that hits both; and every ratio carries an interval, so a difference the
noise cannot support is called a tie instead of a winner.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

__all__ = ["median_ci", "Ratio", "paired_ratio"]


def median_ci(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A confidence interval for the median from order statistics (no assumption about the distribution).

    With ``n`` samples the interval ``[x_(k), x_(n+1-k)]`` covers the true median with probability
    ``1 - 2 P(Binomial(n, 1/2) < k)``; ``k`` is the largest that keeps this at least ``level``. With fewer
    than 6 samples no ``k >= 1`` reaches 95 %, and the interval is the whole range.
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    k, below = 0, 0.0  # below = P(X <= k - 1)
    while True:
        below += math.comb(n, k) / 2 ** n
        if below > (1 - level) / 2:
            break
        k += 1
    return (xs[k - 1], xs[n - k]) if k >= 1 else (xs[0], xs[-1])


@dataclass(frozen=True)
class Ratio:
    """A ratio with its interval; ``tie`` when the interval holds 1.0 (the noise could explain the difference)."""

    value: float
    lo: float
    hi: float

    @property
    def tie(self) -> bool:
        return self.lo <= 1.0 <= self.hi

    def verdict(self, above: str, below: str) -> str:
        return "tie (within the spread)" if self.tie else above if self.value > 1 else below

    def __str__(self) -> str:
        return f"{self.value:5.2f}x [{self.lo:.3f}-{self.hi:.3f}]"


def paired_ratio(num: list[float], den: list[float], level: float = 0.95) -> Ratio:
    """``num / den`` round by round (the same rounds for both), as a median with its interval."""
    if len(num) != len(den):
        raise ValueError(f"paired ratios need the same rounds, got {len(num)} and {len(den)}")
    per_round = [a / b for a, b in zip(num, den)]
    return Ratio(statistics.median(per_round), *median_ci(per_round, level))
