"""Checks shared by the inspection modules: the size limits, kernel validation, the
one-dimensional searches (log-spaced sigma grid, golden section) the fits use."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "MAX_KERNELS",
    "MAX_KERNEL_LENGTH",
    "MAX_KERNEL_SIDE",
    "MAX_WEIGHT_ELEMENTS",
    "InspectError",
    "kernel_size_error",
]


class InspectError(ValueError):
    """A file, checkpoint or model cannot be inspected (missing, refused, no convolutions...)."""


MAX_KERNEL_SIDE = 256  # largest side of a 2-D kernel that is described or matched
MAX_KERNEL_LENGTH = 2**22  # longest 1-D kernel that is described or matched
MAX_KERNELS = 4096  # most kernels the command line inspects in one run
MAX_WEIGHT_ELEMENTS = 2**28  # largest weight rebuilt from two rank-one factors
_GOLDEN_STEPS = 20  # the bracket (two grid steps) shrinks to 1e-4 of its width


def kernel_size_error(shape: tuple[int, ...]) -> str | None:
    """Why a kernel of ``shape`` (1-D ``(k,)`` or 2-D ``(kh, kw)``) cannot be inspected, or ``None``.

    Only the shape is looked at, so a huge tensor is refused before anything is computed.

    Example:
        >>> kernel_size_error((3, 3)) is None, kernel_size_error((60000, 60000))
        (True, 'kernel of 60000x60000 is over the size limit of 256x256 for 2-D kernels')
    """
    dims = "x".join(map(str, shape))
    if any(n == 0 for n in shape):
        return f"kernel of {dims} is empty"
    if len(shape) == 1 and shape[0] > MAX_KERNEL_LENGTH:
        return f"kernel of {dims} taps is over the size limit of {MAX_KERNEL_LENGTH} taps for 1-D kernels"
    if len(shape) == 2 and max(shape) > MAX_KERNEL_SIDE:
        return f"kernel of {dims} is over the size limit of {MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE} for 2-D kernels"
    return None


def _describe_type(obj: Any) -> str:
    return type(obj).__name__


def _as_kernel(k: Any, name: str = "kernel", allow_1d: bool = False) -> torch.Tensor:
    """Validate a kernel and return it as a detached float64 tensor on its own device: 1-D when
    given 1-D and ``allow_1d``, else 2-D (a 1-D kernel read as ``(1, k)``). The size limits are
    checked on the shape, before anything is converted."""
    if not isinstance(k, torch.Tensor):
        try:
            k = torch.as_tensor(k)
        except Exception:
            raise TypeError(f"{name} must be a tensor or array, got {_describe_type(k)}") from None
    if k.ndim == 1 and not allow_1d:
        k = k.unsqueeze(0)
    if k.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be a 2-D kernel (kh, kw) or 1-D (k,), got shape {tuple(k.shape)}; "
            f"index a weight as weight[out, in]"
        )
    problem = kernel_size_error(tuple(k.shape))
    if problem:
        raise ValueError(f"{name} cannot be inspected: {problem}")
    if k.is_complex() or k.dtype == torch.bool:
        raise TypeError(f"{name} must be real, got dtype {k.dtype}")
    k = k.detach().to(torch.float64)
    if not bool(torch.isfinite(k).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf values")
    return k


def _sigma_grid(shape: tuple[int, ...]) -> list[float]:
    """28 sigmas spaced evenly in log from 0.25 to ``max(2, largest side)``."""
    top = max(2.0, float(max(shape)))
    n = 28
    lo = 0.25
    return [lo * (top / lo) ** (i / (n - 1)) for i in range(n)]


def _golden(score: Callable[[float], float], lo: float, hi: float, steps: int = _GOLDEN_STEPS) -> list[float]:
    """Golden-section search for the maximum of ``score`` on ``[lo, hi]``; returns the last
    points it looked at (the caller keeps the best of them and of its own candidates)."""
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c = b - inv_phi * (b - a)
    d = a + inv_phi * (b - a)
    for _ in range(steps):
        if score(c) >= score(d):
            b, d = d, c
            c = b - inv_phi * (b - a)
        else:
            a, c = c, d
            d = a + inv_phi * (b - a)
    return [c, d, 0.5 * (a + b)]
