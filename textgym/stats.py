"""Statistics for comparing runs over seeds: Student's t quantiles and 95% intervals.

Differences between two groups of runs are reported as the difference of their means with a
Welch interval (unequal variances, Welch-Satterthwaite degrees of freedom), or, when the runs
are paired by seed (a cell and its control start from the same MLE checkpoint), as the mean of
the paired differences with a t-interval. An interval that excludes 0 is what "distinguishable
from noise" means in reports.

The t distribution's CDF is the regularized incomplete beta function, evaluated by its continued
fraction; the quantile is found by bisection. torch and numpy have neither, and scipy is not a
dependency.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a + 1) / (a + b + 2)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom (not necessarily an integer)."""
    if not df > 0:  # NaN too
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if df > 1e6:  # betainc loses accuracy beyond (3e-6 at 1e10): the t's expansion about the normal, exact to O(1/df²)
        if abs(t) > 40:  # the tail is below 1e-300 (and the expansion's t³ would overflow at ±inf)
            return 1.0 if t > 0 else 0.0
        normal = statistics.NormalDist()
        return normal.cdf(t) - normal.pdf(t) * (t ** 3 + t) / (4 * df)
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


@dataclass
class Interval:
    """A difference ``estimate`` with its two-sided ``level`` confidence interval [low, high]."""

    estimate: float
    low: float
    high: float
    df: float
    level: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies on one side of 0: the difference is distinguishable from noise."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "excludes_zero": self.excludes_zero}

    def __str__(self) -> str:
        """``+0.123 [+0.045, +0.201] *`` (``*``: excludes 0); in scientific notation when every
        figure is below 0.0005, or when the interval excludes 0 by less than that, so that neither
        a tiny difference nor the bound that excludes 0 reads as 0 ("[-0.065, -0.000] *")."""
        values = (self.estimate, self.low, self.high)
        near = min(abs(self.low), abs(self.high))
        tiny = 0 < max(abs(v) for v in values) < 0.0005 or (self.excludes_zero and near < 0.0005)
        fmt = "+.1e" if tiny else "+.3f"
        return f"{self.estimate:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]" + (" *" if self.excludes_zero else "")


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Optional[Interval]:
    """mean(a) - mean(b) with Welch's interval; None with fewer than 2 values on a side.

    se² = s_a²/n_a + s_b²/n_b and df = se⁴ / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1)). When both
    variances are 0 the interval is the point itself (df = inf).
    """
    _check_finite(a, b)
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    est = statistics.fmean(a) - statistics.fmean(b)
    se2 = va + vb
    if se2 == 0:
        return Interval(est, est, est, math.inf, level)
    denominator = va * va / (len(a) - 1) + vb * vb / (len(b) - 1)
    df = se2 * se2 / denominator if denominator > 0 else math.inf  # the squares of tiny variances underflow
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(se2)
    return Interval(est, est - half, est + half, df, level)


def paired_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Optional[Interval]:
    """Mean of a_i - b_i with a t-interval on n - 1 degrees of freedom; None with fewer than 2 pairs.
    Differences that are all equal give the point itself as the interval (sd 0), which excludes 0
    unless the difference is 0: the formula's answer, to be read with the number of pairs."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    _check_finite(a, b)
    d = [x - y for x, y in zip(a, b, strict=True)]
    if len(d) < 2:
        return None
    est, sd = statistics.fmean(d), statistics.stdev(d)
    half = t_quantile(0.5 + level / 2, len(d) - 1) * sd / math.sqrt(len(d))
    return Interval(est, est - half, est + half, float(len(d) - 1), level)


def mean_sd(xs: Sequence[float]) -> str:
    """``"m ± sd"`` over seeds (``"m"`` for one value, ``"–"`` for none)."""
    _check_finite(xs)
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def _check_finite(*groups: Sequence[float]) -> None:
    """ValueError naming a NaN or infinite value (``statistics`` fails on them with an unrelated
    message, or returns NaN bounds that compare as no difference)."""
    bad = [v for g in groups for v in g if not math.isfinite(v)]
    if bad:
        raise ValueError(f"values must be finite, got {bad[0]} (leave out the runs whose metric could not be measured)")
