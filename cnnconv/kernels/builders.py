"""Kernel builders: box, Gabor, Laplacian, sharpen and identity.

Every builder computes in float64 and returns ``(kh, kw)`` in the requested dtype (default
``torch.get_default_dtype()``) on the requested device.
"""

from __future__ import annotations

import math

import torch

from cnnconv._utils.checks import pair as _pair

from .base import _check_real, _check_sigma, _check_size, _check_taps, _grid, _out

__all__ = ["box", "gabor", "identity", "laplacian", "sharpen"]


def box(size=3, *, normalized: bool = True, dtype=None, device=None) -> torch.Tensor:
    """Box (mean) kernel.

    Args:
        size: int or ``(kh, kw)``.
        normalized: divide by the number of taps so the kernel sums to 1.

    Returns:
        Tensor ``(kh, kw)``.

    Example:
        >>> box(2).tolist()
        [[0.25, 0.25], [0.25, 0.25]]
    """
    kh, kw = (_check_size(s, "size") for s in _pair(size, "size"))
    k = torch.ones(kh, kw, dtype=torch.float64)
    if normalized:
        k = k / (kh * kw)
    return _out(k, dtype, device)


def gabor(sigma, theta, frequency, phase: float = 0.0, size=None, *, dtype=None, device=None) -> torch.Tensor:
    """Real Gabor kernel, the real part of ``skimage.filters.gabor_kernel``.

    ``exp(-(x^2 + y^2) / (2 sigma^2)) / (2 pi sigma^2) * cos(2 pi frequency * u + phase)`` with
    ``u = x cos(theta) + y sin(theta)`` (+x rightwards, +y downwards), on the integer grid
    centred on the middle tap: ``gabor(s, t, f, p)`` equals
    ``gabor_kernel(f, theta=t, sigma_x=s, sigma_y=s, offset=p).real`` (same default size).

    Args:
        sigma: standard deviation of the (isotropic) Gaussian envelope, > 0.
        theta: direction of the carrier wave (the edge normal), radians from +x towards +y.
        frequency: carrier frequency in cycles per pixel, >= 0.
        phase: carrier phase in radians (0: even, centre-positive; pi/2: odd).
        size: int or ``(kh, kw)``, odd; default as skimage:
            ``2 * ceil(max(3 sigma |cos theta|, 3 sigma |sin theta|, 1)) + 1`` per side.

    Returns:
        Tensor ``(kh, kw)``.

    Example:
        >>> gabor(2.0, 0.0, 0.25).shape
        torch.Size([13, 13])
    """
    sigma = _check_sigma(sigma)
    theta = _check_real(theta, "theta")
    frequency = _check_real(frequency, "frequency")
    phase = _check_real(phase, "phase")
    if frequency < 0:
        raise ValueError(f"frequency must be non-negative, got {frequency}")
    c, s = math.cos(theta), math.sin(theta)
    if size is None:
        half = math.ceil(max(abs(3 * sigma * c), abs(3 * sigma * s), 1))
        _check_taps(2 * half + 1, f"sigma={sigma}")
        size = 2 * half + 1
    kh, kw = (_check_size(n, "size", odd=True) for n in _pair(size, "size"))
    y, x = torch.meshgrid(_grid(kh), _grid(kw), indexing="ij")
    u = x * c + y * s
    k = torch.exp(-(x * x + y * y) / (2 * sigma * sigma)) / (2 * math.pi * sigma * sigma)
    return _out(k * torch.cos(2 * math.pi * frequency * u + phase), dtype, device)


def laplacian(neighbours: int = 4, *, normalized: bool = False, dtype=None, device=None) -> torch.Tensor:
    """3x3 Laplacian: 4-neighbour ``[[0,1,0],[1,-4,1],[0,1,0]]`` or 8-neighbour (centre -8).

    Args:
        neighbours: 4 or 8.
        normalized: divide by the sum of absolute values.

    Example:
        >>> laplacian(4).tolist()
        [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
    """
    if neighbours == 4:
        k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    elif neighbours == 8:
        k = torch.ones(3, 3, dtype=torch.float64)
        k[1, 1] = -8.0
    else:
        raise ValueError(f"neighbours must be 4 or 8, got {neighbours!r}")
    if normalized:
        k = k / k.abs().sum()
    return _out(k, dtype, device)


def sharpen(*, dtype=None, device=None) -> torch.Tensor:
    """3x3 sharpen kernel ``[[0,-1,0],[-1,5,-1],[0,-1,0]]`` (identity minus 4-Laplacian).

    Example:
        >>> sharpen()[1].tolist()
        [-1.0, 5.0, -1.0]
    """
    k = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    return _out(k, dtype, device)


def identity(size=3, *, dtype=None, device=None) -> torch.Tensor:
    """Identity kernel: 1 at the centre (``k // 2``), zeros elsewhere.

    Example:
        >>> identity(3)[1].tolist()
        [0.0, 1.0, 0.0]
    """
    kh, kw = (_check_size(s, "size") for s in _pair(size, "size"))
    k = torch.zeros(kh, kw, dtype=torch.float64)
    k[kh // 2, kw // 2] = 1.0
    return _out(k, dtype, device)
