"""Exact zeros: outputs whose input window holds only zeros are set to exactly 0, as the direct
method gives, instead of the transforms' rounding noise (on which a following ReLU would open)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .geometry import ConvGeometry


def _window_any(a: torch.Tensor, dim: int, k: int) -> torch.Tensor:
    """``out[j] = a[j] | ... | a[j + k - 1]`` along ``dim`` (boolean ``a``), by doubling spans."""
    span = 1
    while 2 * span <= k:
        n = a.shape[dim] - span
        a = a.narrow(dim, 0, n) | a.narrow(dim, span, n)
        span *= 2
    if span < k:
        n = a.shape[dim] - (k - span)
        a = a.narrow(dim, 0, n) | a.narrow(dim, k - span, n)
    return a


def _zero_windows(x: torch.Tensor, geom: ConvGeometry, out_len: Sequence[int]) -> torch.Tensor | None:
    """``(B, groups, 1, *out_len)`` mask of the outputs whose input window (the group's
    channels, dilation gaps included) holds only zeros; None when there are none."""
    # (Boolean reductions are slow on CPU; their uint8 views' are not.)
    if x.numel() == 0:
        return None
    nz = x.detach().bool()  # non-zero (or NaN) inputs
    groups = geom.groups
    if nz.shape[1] != groups:
        nz = nz.view(torch.uint8).unflatten(1, (groups, -1)).amax(2).view(torch.bool)
    if int(nz.view(torch.uint8).amin()) == 1:  # no zero at all
        return None
    flat = geom.flat_pads
    if any(flat):
        nz = F.pad(nz.view(torch.uint8), flat).view(torch.bool)
    for i in reversed(range(geom.nd)):  # the last (contiguous) dim first
        nz = _window_any(nz, 2 + i, geom.kd[i]).narrow(2 + i, 0, out_len[i])
        if int(nz.view(torch.uint8).amin()) == 1:
            return None
    return nz.logical_not().unsqueeze(2)


def flush_zero_windows(y: torch.Tensor, x: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """``y`` with exact zeros where the input window is all zeros (see :func:`_zero_windows`)."""
    mask = _zero_windows(x, geom, y.shape[2:])
    if mask is None:
        return y
    yg = y.unflatten(1, (geom.groups, -1))
    if torch.is_grad_enabled() and y.requires_grad:
        # y - y is exactly 0 there, and the gradients are those of y.
        return y - torch.where(mask, yg.detach(), 0).flatten(1, 2)
    yg.masked_fill_(mask, 0)
    return y
