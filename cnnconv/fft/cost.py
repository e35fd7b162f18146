"""The FFT terms of the cost model: how the engine compares its own candidate plans, and how the
planner prices the plan the engine would run (see :mod:`cnnconv.planner` for the whole model).

Example:
    >>> from cnnconv._utils.calibration import DEFAULT_CONSTANTS
    >>> fft_cost(1, 1, 1, 1, (64, 64), DEFAULT_CONSTANTS["cpu"]) > DEFAULT_CONSTANTS["cpu"]["t0_fft"]
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cnnconv._utils.calibration import load_constants

__all__ = ["FFT_CONSTANTS", "fft_cost", "tiled_cost"]

#: The constants the FFT terms read (the part of the calibration a plan depends on).
FFT_CONSTANTS = ("fft", "matmul", "matmul_m0", "elementwise", "t0_fft")


def fft_cost(batch: int, cin: int, cout: int, cin_g: int, n: Sequence[int], consts: dict | None = None) -> float:
    """Estimated seconds of one FFT correlation at transform size ``n``: ``c_fft * (B*Cin +
    B*Cout + Cout*Cin/g) * P * log2(P) + c_mix * B * Cout * (Cin/g) * P_f + t0_fft`` (see
    :mod:`cnnconv.planner`); ``consts`` default to the CPU's."""
    c = consts if consts is not None else load_constants("cpu")
    P = math.prod(n)
    Pf = P // n[-1] * (n[-1] // 2 + 1)
    transforms = (batch * cin + batch * cout + cout * cin_g) * P * math.log2(max(P, 2))
    if cin_g == 1:
        mix = c["elementwise"]
    else:  # small batched products (M = batch rows per frequency) run below the peak rate
        mix = c["matmul"] * (1.0 + c.get("matmul_m0", 4.0) / max(batch, 1))
    return c["fft"] * transforms + mix * batch * cout * cin_g * Pf + c["t0_fft"]


def tiled_cost(
    batch: int,
    cin: int,
    cout: int,
    cin_g: int,
    n: Sequence[int],
    tile_out: Sequence[int],
    tiles: int,
    consts: dict | None = None,
) -> float:
    """:func:`fft_cost` of ``tiles`` overlap-save tiles of size ``n`` per item, with the price
    of cutting and reassembling them (copies and per-chunk overhead)."""
    cost = fft_cost(batch * tiles, cin, cout, cin_g, n, consts)
    return cost * (1.2 + 0.1 * (math.prod(n) / math.prod(tile_out) - 1))
