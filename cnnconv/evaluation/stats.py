"""Statistics over seeds: the confidence interval of a mean paired difference, for verdicts
between two methods scored on the same seeds."""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from cnnconv.evaluation._inputs import to_numpy

__all__ = ["paired_t_interval"]

# Two-sided Student t quantiles t_{(1 + confidence) / 2, df} for df = 1..30, 40, 60, 120 and
# infinity (the normal quantile), to 6 significant digits (from scipy.stats.t.ppf); used when
# scipy is not installed.
_T_DF = np.array([*range(1, 31), 40, 60, 120, np.inf])
_T_TABLE = {
    0.9: (
        6.31375,
        2.91999,
        2.35336,
        2.13185,
        2.01505,
        1.94318,
        1.89458,
        1.85955,
        1.83311,
        1.81246,
        1.79588,
        1.78229,
        1.77093,
        1.76131,
        1.75305,
        1.74588,
        1.73961,
        1.73406,
        1.72913,
        1.72472,
        1.72074,
        1.71714,
        1.71387,
        1.71088,
        1.70814,
        1.70562,
        1.70329,
        1.70113,
        1.69913,
        1.69726,
        1.68385,
        1.67065,
        1.65765,
        1.64485,
    ),
    0.95: (
        12.7062,
        4.30265,
        3.18245,
        2.77645,
        2.57058,
        2.44691,
        2.36462,
        2.306,
        2.26216,
        2.22814,
        2.20099,
        2.17881,
        2.16037,
        2.14479,
        2.13145,
        2.11991,
        2.10982,
        2.10092,
        2.09302,
        2.08596,
        2.07961,
        2.07387,
        2.06866,
        2.0639,
        2.05954,
        2.05553,
        2.05183,
        2.04841,
        2.04523,
        2.04227,
        2.02108,
        2.0003,
        1.97993,
        1.95996,
    ),
    0.99: (
        63.6567,
        9.92484,
        5.84091,
        4.60409,
        4.03214,
        3.70743,
        3.49948,
        3.35539,
        3.24984,
        3.16927,
        3.10581,
        3.05454,
        3.01228,
        2.97684,
        2.94671,
        2.92078,
        2.89823,
        2.87844,
        2.86093,
        2.84534,
        2.83136,
        2.81876,
        2.80734,
        2.79694,
        2.78744,
        2.77871,
        2.77068,
        2.76326,
        2.75639,
        2.75,
        2.70446,
        2.66028,
        2.61742,
        2.57583,
    ),
}


def _t_quantile(confidence: float, df: int) -> float:
    """Two-sided t quantile: scipy.stats when installed, else the table (linear in ``1/df``
    between its entries above 30 degrees of freedom)."""
    try:
        stats = importlib.import_module("scipy.stats")
    except ImportError:
        stats = None
    if stats is not None:
        return float(stats.t.ppf(0.5 + confidence / 2.0, df))
    key = next((c for c in _T_TABLE if abs(c - confidence) < 1e-12), None)
    if key is None:
        raise ValueError(f"confidence must be one of {sorted(_T_TABLE)} without scipy installed, got {confidence}")
    return float(np.interp(1.0 / df, (1.0 / _T_DF)[::-1], np.array(_T_TABLE[key])[::-1]))


def paired_t_interval(a: Any, b: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Confidence interval of the mean paired difference ``a - b`` (Student t over pairs).

    For scores of two methods on the same seeds (same scenes, same noise): with
    ``d = a - b``, ``n`` pairs and ``s`` the sample standard deviation of ``d``, the interval is
    ``mean(d) +- t_{(1 + confidence)/2, n-1} * s / sqrt(n)``. The quantile comes from
    :mod:`scipy.stats` when installed, else from a table for confidence 0.9, 0.95 and 0.99.

    Two pairs are the minimum the formula accepts, but with one degree of freedom the interval
    is very wide and the spread estimate itself unreliable: a verdict (a win or a loss when the
    interval excludes 0) needs at least 3 pairs.

    Args:
        a: scores of the first method, one per seed (sequence, array or tensor).
        b: scores of the second method on the same seeds, in the same order.
        confidence: the coverage, in ``(0, 1)``.

    Returns:
        ``(mean_diff, low, high)`` as floats.

    Raises:
        ValueError: fewer than 2 pairs, different lengths, non-finite values, or a confidence
            outside ``(0, 1)`` (without scipy: not in the table).

    Example:
        >>> mean, low, high = paired_t_interval([0.91, 0.88, 0.93], [0.89, 0.87, 0.90])
        >>> round(mean, 4), round(low, 4), round(high, 4)
        (0.02, -0.0048, 0.0448)
    """
    x = np.asarray(to_numpy(a, "a"), dtype=np.float64).reshape(-1)
    y = np.asarray(to_numpy(b, "b"), dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError(f"a and b must hold at least 2 pairs, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("a and b must be finite, got NaN or inf values")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)):
        raise TypeError(f"confidence must be a number, got {type(confidence).__name__}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = x - y
    mean = float(d.mean())
    half = _t_quantile(float(confidence), d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return mean, mean - half, mean + half
