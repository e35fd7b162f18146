"""The cost model: estimated seconds of each method for one convolution, and the choice among
them (see :mod:`cnnconv.planner` for the model).

Example:
    >>> choose_method((1, 16, 64, 64), (16, 16, 3, 3))
    'direct'
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch

from cnnconv._utils.calibration import load_constants
from cnnconv._utils.checks import int_tuple
from cnnconv.fft.geometry import ConvGeometry
from cnnconv.fft.plan import DEFAULT_MEMORY_BUDGET, get_plan

__all__ = ["DIRECT_MARGIN", "METHODS", "choose_method", "direct_cost", "estimate_costs"]

METHODS = ("direct", "separable", "fft")

#: :func:`choose_method` keeps ``"direct"`` unless another method's estimate is this many times
#: smaller: when the estimates are right, direct is then within this factor of the best anyway.
DIRECT_MARGIN = 1.2


def _interp(table: list, K: float) -> float:
    """``table`` ``[[K, c], ...]`` at ``K``, interpolated in ``log K`` (clamped at the ends)."""
    pts = sorted(table)
    if pts[0][0] >= K:
        return pts[0][1]
    for (k0, c0), (k1, c1) in itertools.pairwise(pts):
        if k1 >= K:
            t = (math.log(K) - math.log(k0)) / (math.log(k1) - math.log(k0))
            return math.exp((1 - t) * math.log(c0) + t * math.log(c1))
    return pts[-1][1]


def direct_cost(
    batch: int,
    cout: int,
    cin_g: int,
    out_size: Sequence[int],
    kernel: Sequence[int],
    consts: dict | None = None,
    cin: int | None = None,
) -> float:
    """Estimated seconds of the direct convolution of the (strided) output ``out_size`` (see
    :mod:`cnnconv.planner`)."""
    c = consts if consts is not None else load_constants("cpu")
    K = math.prod(kernel)
    macs = batch * cout * cin_g * math.prod(out_size) * K
    by_ch = c.get("direct_dense_by_ch")
    if cin_g == 1 and ((cin or cin_g) > 1 or cout > 1 or not by_ch):
        rate = _interp(c["direct_depthwise"], K)
    elif by_ch:  # dense (or a single channel): interpolate the tables in log(Cin/g * Cout)
        rate = _interp([[p, _interp(t, K)] for p, t in by_ch], cin_g * cout)
    else:
        rate = _interp(c["direct_dense"], K)
    # layers with few channels run far below the many-channel rate
    rate *= 1.0 + c.get("direct_ch0", 0.0) / ((cin or cin_g) * cout)
    return rate * macs + c["t0_direct"]


def estimate_costs(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    groups: int = 1,
    stride: Any = 1,
    dilation: Any = 1,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    separable: bool = False,
    full: bool = False,
    padding: Any = None,
) -> dict[str, float]:
    """Estimated seconds of each applicable method.

    Args:
        input_shape: ``(B, Cin, *S)`` with one, two or three spatial dims (``(Cin, *S)`` is read as
            one image).
        weight_shape: ``(Cout, Cin/groups, *k)``; a bare kernel ``(*k)`` means one shared kernel
            applied to every channel (depthwise).
        groups: channel groups.
        stride: int or tuple.
        dilation: int or tuple.
        dtype: the computation's dtype (float64 doubles the per-operation constants).
        device: the computation's device; picks the constant set (``cpu`` or ``cuda``).
        separable: whether the kernel is rank 1 (then ``"separable"`` is estimated too).
        full: ``full`` output (padding ``k-1`` on both sides) instead of ``same`` (for
            strided convolutions, which have no ``same``: ``(k-1)//2`` on both sides).
        padding: explicit padding (int, tuple, ``"same"``, ``"valid"``, ``"causal"`` (1-D: all
            ``dilation * (k-1)`` before)); overrides ``full``.

    Returns:
        ``{"direct": s, "fft": s}`` and ``"separable"`` when ``separable`` is true.

    Example:
        >>> sorted(estimate_costs((1, 1, 64, 64), (1, 1, 5, 5)))
        ['direct', 'fft']
    """
    shape = tuple(int(s) for s in input_shape)
    wshape = tuple(int(s) for s in weight_shape)
    if len(shape) < 2:
        raise ValueError(f"input_shape must be (B, C, *spatial), got {input_shape!r}")
    nd = len(wshape) - 2 if len(wshape) >= 3 else len(wshape)
    if len(shape) not in (nd + 1, nd + 2):
        raise ValueError(f"input_shape {input_shape!r} does not match weight_shape {weight_shape!r}")
    cin = shape[-nd - 1]
    if len(wshape) == nd:  # one kernel shared by every channel
        wshape, groups = (cin, 1, *wshape), cin
    elif wshape[1] * groups != cin:
        raise ValueError(
            f"input_shape {input_shape!r} has {cin} channels but weight_shape "
            f"{weight_shape!r} with groups={groups} expects {wshape[1] * groups}"
        )
    if padding is None:
        dil = int_tuple(dilation, nd, "dilation")
        taps = [d * (k - 1) for k, d in zip(wshape[2:], dil)]
        if full:
            padding = tuple(taps)
        elif all(s == 1 for s in int_tuple(stride, nd, "stride")):
            padding = "same"
        else:  # "same" is defined for stride 1 only
            padding = tuple(t // 2 for t in taps)
    geom = ConvGeometry.from_shapes(shape, wshape, stride, padding, dilation, groups)
    geom.check_fits()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    consts = load_constants(dev.type)
    scale = 2.0 if dtype == torch.float64 else 1.0
    ks = geom.kernel
    costs = {
        "direct": scale
        * direct_cost(geom.batch, geom.out_channels, geom.cin_g, geom.out_size, ks, consts, cin=geom.in_channels)
    }
    # The plan the engine runs for this geometry (built once, then found by the engine).
    plan = get_plan(geom, 16 if dtype == torch.float64 else 8, DEFAULT_MEMORY_BUDGET, dev.type)
    costs["fft"] = scale * plan.cost
    if separable:
        macs = geom.batch * geom.out_channels * math.prod(geom.out_size) * sum(ks)
        table = consts["direct_depthwise"]
        costs["separable"] = scale * (sum(_interp(table, k) for k in ks) / nd * macs + nd * consts["t0_direct"])
    return costs


def choose_method(input_shape: Sequence[int], weight_shape: Sequence[int], **options: Any) -> str:
    """The cheapest of ``"direct"``, ``"separable"`` (when allowed) and ``"fft"``.

    Arguments as :func:`estimate_costs` (the options keyword-only, as there).

    Returns:
        The name of the method with the smallest estimated time.

    Example:
        >>> choose_method((8, 16, 128, 128), (16, 16, 31, 31))
        'fft'
    """
    costs = estimate_costs(input_shape, weight_shape, **options)
    taps = weight_shape[2:] if len(weight_shape) >= 3 else weight_shape  # bare kernel: all taps
    if all(int(k) == 1 for k in taps):
        # A one-tap kernel is a per-pixel (channel) product: a transform only adds work. The
        # model can say otherwise where F.conv2d's rate for it is poor (depthwise NCHW), but
        # both are then far from the real cost of such a product.
        return "direct"
    best = min(costs, key=costs.__getitem__)
    # Near the crossover the estimates are least reliable and direct is the safer choice (no
    # transform start-up, exact, no NaN spreading): it is kept unless another method is
    # estimated to be more than DIRECT_MARGIN times faster.
    if costs["direct"] <= DIRECT_MARGIN * costs[best]:
        return "direct"
    return best
