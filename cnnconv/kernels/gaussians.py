"""Gaussian kernels and their derivatives, with sigma a number or a (differentiable) tensor.

Built in float64 and returned in the requested dtype (default ``torch.get_default_dtype()``)
on the requested device. :func:`gaussian1d`, :func:`gaussian_derivative1d` and
:func:`hermite_gaussian1d` also take sigma as a floating-point tensor: they then return one
kernel per sigma value, ``(*S, k)``, in the tensor's dtype and on its device, differentiable with
respect to sigma (the learnable filters of :mod:`cnnconv.parametric` are built this way).
"""

from __future__ import annotations

import numbers

import torch

from cnnconv._utils.checks import pair as _pair

from .base import _check_sigma, _check_size, _check_taps, _check_truncate, _grid, _out

__all__ = [
    "gaussian",
    "gaussian1d",
    "gaussian_derivative",
    "gaussian_derivative1d",
    "gaussian_dxy",
    "gaussian_sigma_from_size",
    "gaussian_size_from_sigma",
    "hermite_gaussian1d",
    "laplacian_of_gaussian",
    "unsharp",
]


def gaussian_size_from_sigma(sigma: float, truncate: float = 4.0) -> int:
    """Kernel length scipy.ndimage uses for ``sigma``: ``2 * round(truncate * sigma) + 1``.

    Raises:
        ValueError: sigma or truncate not positive and finite, or a length above
            :data:`MAX_GAUSSIAN_TAPS`.
    """
    sigma = _check_sigma(sigma)
    truncate = _check_truncate(truncate)
    return _check_taps(2 * round(truncate * sigma) + 1, f"sigma={sigma} with truncate={truncate}")


def gaussian_sigma_from_size(size: int) -> float:
    """Sigma OpenCV and torchvision derive from a kernel length: ``0.3*((k-1)/2 - 1) + 0.8``."""
    size = _check_size(size)
    return 0.3 * ((size - 1) * 0.5 - 1.0) + 0.8


def _sigma_and_size(sigma, size, truncate, dtype=None, device=None) -> tuple[torch.Tensor, int]:
    """Sigma as a tensor and the kernel length (see :func:`gaussian1d` for the defaults).

    A number becomes a float64 CPU scalar (checked positive); a tensor is kept (moved to
    ``dtype`` / ``device`` when they are given) so the kernel stays differentiable in it.
    """
    if isinstance(sigma, torch.Tensor):
        if dtype is not None or device is not None:
            sigma = sigma.to(dtype=dtype, device=device)
        if not sigma.is_floating_point():
            raise TypeError(f"sigma must be a floating point tensor, got dtype {sigma.dtype}")
        if size is None:
            size = gaussian_size_from_sigma(float(sigma.detach().max()), truncate)
        return sigma, _check_taps(_check_size(size), f"size={size}")
    if sigma is None and size is None:
        raise ValueError("gaussian needs sigma or size, got neither")
    if sigma is None:
        size = _check_size(size)
        sigma = gaussian_sigma_from_size(size)
    sigma = _check_sigma(sigma)
    if size is None:
        size = gaussian_size_from_sigma(sigma, truncate)
    size = _check_taps(_check_size(size), f"size={size}")
    return torch.tensor(sigma, dtype=torch.float64), size


def _result(kernel: torch.Tensor, sigma, dtype, device) -> torch.Tensor:
    """A kernel built from a tensor sigma as it is; from a number, cast by :func:`_out`."""
    return kernel if isinstance(sigma, torch.Tensor) else _out(kernel, dtype, device)


def _gaussian_taps(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """``exp(-x^2 / (2 sigma^2))`` on :func:`_grid`, sum 1: ``(*sigma.shape, size)``.

    In sigma's dtype and on its device, differentiable in sigma. Softmax is exp / sum computed
    stably; the floor on the variance keeps a sigma that underflowed to 0 a finite delta.
    """
    x = _grid(size, sigma.dtype, sigma.device)
    var = (sigma * sigma).clamp_min(torch.finfo(sigma.dtype).tiny).unsqueeze(-1)
    return torch.softmax(-(x * x) / (2 * var), dim=-1)


def _gaussian1d_f64(sigma, size, truncate) -> torch.Tensor:
    """The float64 1-D Gaussian of a number sigma (or of the size alone)."""
    return _gaussian_taps(*_sigma_and_size(sigma, size, truncate))


def _derivative_taps(sigma: torch.Tensor, size: int, order: int) -> torch.Tensor:
    """:func:`gaussian_derivative1d` of a sigma tensor, ``(*sigma.shape, size)``."""
    g = _gaussian_taps(sigma, size)
    x = _grid(size, sigma.dtype, sigma.device)
    if order == 1:  # x / sigma^2 * g; the normalisation removes the 1 / sigma^2
        d = x * g
        return d / (d * x).sum(-1, keepdim=True).clamp_min(torch.finfo(sigma.dtype).tiny)
    s2 = (sigma * sigma).unsqueeze(-1)
    d = (x * x - s2) / (s2 * s2) * g
    d = d - d.mean(-1, keepdim=True)
    return d / (d * x * x / 2.0).sum(-1, keepdim=True)


def gaussian1d(sigma=None, size=None, *, truncate: float = 4.0, dtype=None, device=None) -> torch.Tensor:
    """Sampled 1-D Gaussian ``exp(-x^2 / (2 sigma^2))`` on ``x = arange(k) - (k-1)/2``, sum 1.

    Args:
        sigma: standard deviation; when omitted it is derived from ``size`` as OpenCV does. A
            floating-point tensor of shape ``S`` (positive values) gives one kernel per value,
            differentiable in sigma, in the tensor's dtype and on its device (the default size
            then comes from its largest value).
        size: length; when omitted it is ``2 * round(truncate * sigma) + 1`` (scipy.ndimage).
        truncate: radius in standard deviations when the size comes from sigma.

    Returns:
        Tensor ``(k,)``, or ``(*S, k)`` for a sigma tensor.

    Example:
        >>> gaussian1d(1.0).shape
        torch.Size([9])
        >>> sigma = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> gaussian1d(sigma, 7).shape, gaussian1d(sigma, 7).requires_grad
        (torch.Size([2, 7]), True)
    """
    s, size = _sigma_and_size(sigma, size, truncate, dtype, device)
    return _result(_gaussian_taps(s, size), sigma, dtype, device)


def gaussian(sigma=None, size=None, *, truncate: float = 4.0, dtype=None, device=None) -> torch.Tensor:
    """2-D Gaussian kernel (outer product of two 1-D Gaussians), sums to 1.

    Args:
        sigma: float or ``(sigma_y, sigma_x)``.
        size: int or ``(kh, kw)``; see :func:`gaussian1d` for the defaults.
        truncate: radius in standard deviations when the size comes from sigma.

    Returns:
        Tensor ``(kh, kw)``.

    Example:
        >>> k = gaussian(2.0)
        >>> k.shape, round(float(k.sum()), 6)
        (torch.Size([17, 17]), 1.0)
    """
    sy, sx = _pair(sigma, "sigma")
    hy, hx = _pair(size, "size")
    gy = _gaussian1d_f64(sy, hy, truncate)
    gx = _gaussian1d_f64(sx, hx, truncate)
    return _out(torch.outer(gy, gx), dtype, device)


def gaussian_derivative1d(
    sigma, order: int = 1, size=None, *, truncate: float = 4.0, dtype=None, device=None
) -> torch.Tensor:
    """1-D derivative-of-Gaussian kernel for correlation.

    ``order=1``: ``x / sigma^2 * g(x)``, scaled so that correlating it with a unit ramp
    ``f(x) = x`` gives 1 (positive for intensity rising towards +x, like Sobel).
    ``order=2``: ``(x^2 - sigma^2) / sigma^4 * g(x)``, made zero-sum and scaled so that
    correlating it with ``x^2 / 2`` gives 1.

    Args:
        sigma: standard deviation of the Gaussian, or a tensor of them (as :func:`gaussian1d`:
            one kernel per value, differentiable in sigma).
        order: 1 or 2.
        size: length (default ``2 * round(truncate * sigma) + 1``).
        truncate: radius in standard deviations when the size comes from sigma.

    Returns:
        Tensor ``(k,)``, or ``(*S, k)`` for a sigma tensor of shape ``S``.

    Example:
        >>> d = gaussian_derivative1d(1.0, size=5, dtype=torch.float64)
        >>> round(float((d * torch.arange(5.0, dtype=torch.float64)).sum()), 6)
        1.0
    """
    if not isinstance(sigma, torch.Tensor):
        sigma = _check_sigma(sigma)
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    s, size = _sigma_and_size(sigma, size, truncate, dtype, device)
    return _result(_derivative_taps(s, size, order), sigma, dtype, device)


def hermite_gaussian1d(sigma, size: int, order: int, *, dtype=None, device=None) -> torch.Tensor:
    """``(-1)^n d^n/dx^n`` of the unit-sum Gaussian: ``sigma^-n He_n(x / sigma) g(x)``.

    ``He_n`` are the probabilists' Hermite polynomials; the sign makes odd orders positive on a
    rising ramp under correlation (like Sobel). Unlike :func:`gaussian_derivative1d` the result
    is not rescaled (the basis of :class:`cnnconv.parametric.StructuredConv2d`).

    Args:
        sigma: positive number, or tensor of shape ``S`` (differentiable, as :func:`gaussian1d`).
        size: kernel length.
        order: derivative order ``n >= 0``.

    Returns:
        Tensor ``(size,)``, or ``(*S, size)`` for a sigma tensor.

    Example:
        >>> torch.allclose(hermite_gaussian1d(1.0, 7, 0), gaussian1d(1.0, 7))
        True
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    s, size = _sigma_and_size(sigma, size, 4.0, dtype, device)
    g = _gaussian_taps(s, size)
    if order == 0:
        return _result(g, sigma, dtype, device)
    sc = s.unsqueeze(-1)
    t = _grid(size, s.dtype, s.device) / sc
    he_prev, he = torch.ones_like(t), t  # He_0, He_1
    for n in range(1, order):
        he_prev, he = he, t * he - n * he_prev
    return _result(he * g / sc**order, sigma, dtype, device)


def gaussian_derivative(
    sigma,
    order: int = 1,
    axis: str = "x",
    size=None,
    *,
    truncate: float = 4.0,
    dtype=None,
    device=None,
) -> torch.Tensor:
    """2-D derivative-of-Gaussian kernel along ``axis`` ("x" = columns, "y" = rows).

    The derivative axis uses :func:`gaussian_derivative1d`, the other axis a Gaussian of the
    same sigma (sigma may be ``(sigma_y, sigma_x)``).

    Returns:
        Tensor ``(kh, kw)``.

    Example:
        >>> gaussian_derivative(1.0, axis="y").shape
        torch.Size([9, 9])
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    sy, sx = _pair(sigma, "sigma")
    hy, hx = _pair(size, "size")
    if axis == "x":
        ky = _gaussian1d_f64(sy, hy, truncate)
        kx = gaussian_derivative1d(sx, order, hx, truncate=truncate, dtype=torch.float64)
    else:
        ky = gaussian_derivative1d(sy, order, hy, truncate=truncate, dtype=torch.float64)
        kx = _gaussian1d_f64(sx, hx, truncate)
    return _out(torch.outer(ky, kx), dtype, device)


def gaussian_dxy(sigma, size=None, *, truncate: float = 4.0, dtype=None, device=None) -> torch.Tensor:
    """Mixed second derivative of Gaussian ``d2/dxdy``: outer product of two first derivatives.

    Scaled as :func:`gaussian_derivative1d` on each axis, so correlating it with ``f = x * y``
    gives 1; with ``gaussian_dxx`` and ``gaussian_dyy`` it steers the second derivative along a
    direction ``t``: ``cos(t)**2 dxx + 2 cos(t) sin(t) dxy + sin(t)**2 dyy``.

    Args:
        sigma: float or ``(sigma_y, sigma_x)``.
        size: int or ``(kh, kw)`` (default ``2 * round(truncate * sigma) + 1``).
        truncate: radius in standard deviations when the size comes from sigma.

    Returns:
        Tensor ``(kh, kw)``.

    Example:
        >>> k = gaussian_dxy(1.0, 5, dtype=torch.float64)
        >>> y, x = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
        >>> round(float((k * x.double() * y.double()).sum()), 6)
        1.0
    """
    sy, sx = _pair(sigma, "sigma")
    hy, hx = _pair(size, "size")
    ky = gaussian_derivative1d(sy, 1, hy, truncate=truncate, dtype=torch.float64)
    kx = gaussian_derivative1d(sx, 1, hx, truncate=truncate, dtype=torch.float64)
    return _out(torch.outer(ky, kx), dtype, device)


def laplacian_of_gaussian(sigma, size=None, *, truncate: float = 4.0, dtype=None, device=None) -> torch.Tensor:
    """Laplacian of Gaussian: ``gaussian_dxx + gaussian_dyy`` (zero-sum, negative centre).

    Example:
        >>> k = laplacian_of_gaussian(1.0, dtype=torch.float64)
        >>> abs(float(k.sum())) < 1e-12, float(k[4, 4]) < 0
        (True, True)
    """
    kxx = gaussian_derivative(sigma, 2, "x", size, truncate=truncate, dtype=torch.float64)
    kyy = gaussian_derivative(sigma, 2, "y", size, truncate=truncate, dtype=torch.float64)
    k = kxx + kyy
    k = k - k.mean()
    return _out(k, dtype, device)


def unsharp(
    sigma: float = 1.0, amount: float = 1.0, size=None, *, truncate: float = 4.0, dtype=None, device=None
) -> torch.Tensor:
    """Unsharp-mask kernel ``(1 + amount) * identity - amount * gaussian(sigma)``; sums to 1.

    Example:
        >>> round(float(unsharp(1.0, 0.5, dtype=torch.float64).sum()), 12)
        1.0
    """
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"amount must be a number, got {amount!r}")
    g = gaussian(sigma, size, truncate=truncate, dtype=torch.float64)
    kh, kw = g.shape
    ident = torch.zeros_like(g)
    ident[kh // 2, kw // 2] = 1.0
    return _out((1.0 + amount) * ident - amount * g, dtype, device)
