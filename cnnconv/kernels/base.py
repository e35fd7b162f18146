"""Shared pieces of the kernel builders: argument checks, the float64 -> dtype cast, the sample grid.

Example:
    >>> _grid(4).tolist()
    [-1.5, -0.5, 0.5, 1.5]
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["MAX_GAUSSIAN_TAPS"]


def _out(values: torch.Tensor, dtype, device) -> torch.Tensor:
    """Cast a float64 CPU construction to the requested dtype and device."""
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating point dtype, got {dtype}")
    return values.to(device=device, dtype=dtype)


def _check_size(size, name: str = "size", odd: bool = False) -> int:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {size!r}")
    size = int(size)
    if size < 1:
        raise ValueError(f"{name} must be positive, got {size}")
    if odd and size % 2 == 0:
        raise ValueError(f"{name} must be odd, got {size}")
    return size


def _check_sigma(sigma, name: str = "sigma") -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {sigma!r}")
    sigma = float(sigma)
    if not (sigma > 0.0) or not math.isfinite(sigma):
        raise ValueError(f"{name} must be positive, got {sigma}")
    return sigma


# Longest 1-D Gaussian built (taps): a longer one is refused with a ValueError instead of
# being allocated (8 MiB in float64 at the limit).
MAX_GAUSSIAN_TAPS = 1 << 20


def _check_truncate(truncate) -> float:
    if isinstance(truncate, bool) or not isinstance(truncate, numbers.Real) or not (0 < float(truncate) < math.inf):
        raise ValueError(f"truncate must be a positive finite number, got {truncate!r}")
    return float(truncate)


def _check_taps(size: int, what: str) -> int:
    if size > MAX_GAUSSIAN_TAPS:
        raise ValueError(
            f"{what} needs a Gaussian of {size} taps, more than the limit of {MAX_GAUSSIAN_TAPS} "
            f"taps (cnnconv.kernels.MAX_GAUSSIAN_TAPS)"
        )
    return size


def _grid(size: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """The centred sample positions ``arange(size) - (size - 1) / 2``."""
    return torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)
