"""Separable engines: a rank-1 kernel as 1-D passes, one per axis.

Each engine takes an already padded batch and returns the valid correlation. A shared factor
``(k,)`` applies to every plane, a per-channel one ``(C, k)`` to the planes of its channel.

Example:
    >>> x, ky, kx = torch.rand(2, 3, 10, 10), torch.rand(3), torch.rand(4)
    >>> ref = F.conv2d(x, torch.outer(ky, kx).expand(3, 1, 3, 4), groups=3)
    >>> torch.allclose(valid(x, ky, kx), ref, atol=1e-6)
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnconv.engines.direct import plane_weight
from cnnconv.engines.workspace import fold, unfold

__all__ = ["FOLD_MIN_PLANES", "fold_taps", "outer3", "valid", "valid3d", "vertical_pass"]

# With fewer planes than this, the 2-D engine views the columns of each plane as channels
# instead (see vertical_pass).
FOLD_MIN_PLANES = 4


def _lane_channels(width: int) -> int:
    """Largest of 16, 8, 4, 2, 1 dividing ``width`` (channel count of the column view)."""
    for c in (16, 8, 4, 2):
        if width % c == 0:
            return c
    return 1


def vertical_pass(x: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
    """Valid correlation of every column of ``x (N, Hp, W)`` with ``ky (k,)`` or ``(N, k)``.

    The NCHW rows are viewed as a channels_last tensor whose channels are groups of adjacent
    columns, so oneDNN's depthwise kernel runs with full vector lanes and no copy.
    """
    n, hp, w = x.shape
    k = ky.shape[-1]
    x = x.contiguous()
    if ky.ndim == 1:
        c = _lane_channels(w)
        view = x.view(n, hp, w // c, c).permute(0, 3, 1, 2)  # channels_last (n, c, hp, w/c)
        weight = ky.reshape(1, 1, k, 1).expand(c, 1, k, 1).contiguous()
        y = F.conv2d(view, weight, groups=c)
        return y.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(n, hp - k + 1, w)
    # one kernel per plane: the planes are the channels
    view = x.unsqueeze(0).contiguous(memory_format=torch.channels_last)
    return F.conv2d(view, ky.reshape(n, 1, k, 1), groups=n)[0]


def valid(x: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """Valid correlation of a padded ``(B, C, Hp, Wp)`` batch with ``outer(ky, kx)``."""
    b, c, hp, wp = x.shape
    kh, kw = ky.shape[-1], kx.shape[-1]
    # A length-1 factor is a scale: fold it into the other factor.
    if kh == 1:
        kx, ky = kx * ky, torch.ones_like(ky)
    elif kw == 1:
        ky, kx = ky * kx, torch.ones_like(kx)
    if kh == 1 and kw == 1:
        scale = kx.reshape(1, -1, 1, 1) if kx.ndim == 2 else kx
        return x * scale
    if b * c >= FOLD_MIN_PLANES:
        y = fold(x)
        if kh > 1:
            y = F.conv2d(y, plane_weight(ky.unsqueeze(-1), b, c), groups=b * c)
        if kw > 1:
            y = F.conv2d(y, plane_weight(kx.unsqueeze(-2), b, c), groups=b * c)
        return unfold(y, b, c)
    if ky.ndim == 2:  # per-channel factors -> per-plane factors
        ky = ky.repeat(b, 1)
        kx = kx.repeat(b, 1)
    planes = x.reshape(b * c, hp, wp)
    if kh > 1:
        planes = vertical_pass(planes, ky)
    if kw > 1:
        planes = vertical_pass(planes.transpose(1, 2), kx).transpose(1, 2)
    return planes.reshape(b, c, hp - kh + 1, wp - kw + 1)


def fold_taps(k: torch.Tensor, n: int, before: int, after: int, no: int, border: str):
    """An equivalent shorter 1-D factor for an axis of ``n`` samples padded by ``before`` /
    ``after`` and ``no`` outputs: ``(k', before', after')`` with the same valid correlation.

    Periodic borders (circular, reflect, symmetric; period ``n``, ``2(n - 1)``, ``2n``): taps
    one period apart read the same samples, so the factor folds onto one period. Zeros and
    replicate: taps that only ever read outside the image are dropped (zeros) or added to the
    outermost tap that reads the edge sample (replicate).
    """
    length = k.shape[-1]
    period = {"circular": n, "symmetric": 2 * n, "reflect": 2 * (n - 1)}.get(border)
    if period:  # reflect with n = 1 is constant: replicate's rule
        if length <= period:
            return k, before, after
        start = period // 2
        index, size = torch.remainder(torch.arange(length, device=k.device) - (before - start), period), period
    else:
        lo, hi = max(before - (no - 1), 0), min(before + n - 1, length - 1)
        if hi - lo + 1 >= length:
            return k, before, after
        start, size = before - lo, hi - lo + 1
        if border == "zeros":
            return k[..., lo : hi + 1], start, no - 1 + size - n - start
        index = torch.arange(length, device=k.device).clamp(lo, hi) - lo
    folded = k.new_zeros((*k.shape[:-1], size), dtype=torch.float64).index_add(-1, index, k.double())
    return folded.to(k.dtype), start, no - 1 + size - n - start


def outer3(kz: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """``(kd, kh, kw)`` (or per channel ``(C, kd, kh, kw)``) kernel from its three factors."""
    return kz[..., :, None, None] * ky[..., None, :, None] * kx[..., None, None, :]


def _axis_pass(planes: torch.Tensor, f: torch.Tensor, axis: int) -> torch.Tensor:
    """Valid correlation of ``planes (N, D, H, W)`` along ``axis`` (1, 2 or 3) with ``f``,
    ``(k,)`` shared or ``(N, k)`` per plane."""
    n = planes.shape[0]
    if f.shape[-1] == 1:  # a scale
        return planes * (f.reshape(n, 1, 1, 1) if f.ndim == 2 else f)
    moved = planes.movedim(axis, 1)
    rest = moved.shape[2:]
    y = vertical_pass(moved.reshape(n, moved.shape[1], -1), f)
    return y.reshape(n, y.shape[1], *rest).movedim(1, axis)


def valid3d(x: torch.Tensor, kz: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """Valid correlation of a padded ``(B, C, Dp, Hp, Wp)`` batch with ``kz x ky x kx``."""
    b, c = x.shape[:2]
    if kz.ndim == 2:  # per-channel factors -> per-plane factors
        kz, ky, kx = kz.repeat(b, 1), ky.repeat(b, 1), kx.repeat(b, 1)
    y = x.reshape(b * c, *x.shape[2:])
    for axis, f in ((1, kz), (2, ky), (3, kx)):
        y = _axis_pass(y, f, axis)
    return y.reshape(b, c, *y.shape[1:])
