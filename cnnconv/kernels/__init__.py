"""Hand-designed convolution kernels as tensors.

Every builder is a pure function with keyword-only ``dtype`` and ``device`` (default
``torch.get_default_dtype()`` on the CPU) and returns a 2-D tensor ``(kh, kw)`` or a 1-D
tensor ``(k,)``.

Orientation: kernels are written for **correlation** (PyTorch's convention, ``F.conv2d``).
``sobel_x`` is ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``: positive where intensity grows to the
right (+x = +column). ``*_y`` kernels are the transposes: positive where intensity grows
downwards (+row). Convolving (``cnnconv.functional.convolve2d``) flips them and so flips the
sign of odd kernels.

Kernels can be named by string through a registry::

    >>> from cnnconv import kernels
    >>> kernels.get_kernel("sobel_x").tolist()
    [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
    >>> "gaussian" in kernels.list_kernels()
    True

Registered names: ``box, gaussian, gaussian_dx, gaussian_dy, gaussian_dxx, gaussian_dxy,
gaussian_dyy, gabor, sobel_x, sobel_y, sobel5_x, sobel5_y, prewitt_x, prewitt_y, scharr_x,
scharr_y, roberts_x, roberts_y, kirsch_n, kirsch_ne, kirsch_e, kirsch_se, kirsch_s, kirsch_sw,
kirsch_w, kirsch_nw, laplacian4, laplacian8, log, sharpen, unsharp, identity``. Aliases: ``mean`` and ``average`` (box),
``gauss`` (gaussian), ``laplacian`` (laplacian4), ``laplacian_of_gaussian`` (log).
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import torch

__all__ = [
    "box",
    "gaussian1d",
    "gaussian",
    "gaussian_derivative1d",
    "gaussian_derivative",
    "gaussian_dxy",
    "gabor",
    "sobel_x",
    "sobel_y",
    "prewitt_x",
    "prewitt_y",
    "scharr_x",
    "scharr_y",
    "roberts_x",
    "roberts_y",
    "KIRSCH_DIRECTIONS",
    "kirsch",
    "laplacian",
    "laplacian_of_gaussian",
    "sharpen",
    "unsharp",
    "identity",
    "get_kernel",
    "list_kernels",
    "register_kernel",
    "unregister_kernel",
    "separable_factors",
    "gaussian_sigma_from_size",
    "gaussian_size_from_sigma",
]


# --------------------------------------------------------------------------- helpers


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


def _pair(value, name: str) -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a pair, got {value!r}")
        return tuple(value)
    return (value, value)


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
    if isinstance(truncate, bool) or not isinstance(truncate, numbers.Real) or not (0 < truncate < math.inf):
        raise ValueError(f"truncate must be a positive finite number, got {truncate!r}")
    return float(truncate)


def _check_taps(size: int, what: str) -> int:
    if size > MAX_GAUSSIAN_TAPS:
        raise ValueError(
            f"{what} needs a Gaussian of {size} taps, more than the limit of {MAX_GAUSSIAN_TAPS} "
            f"taps (cnnconv.kernels.MAX_GAUSSIAN_TAPS)"
        )
    return size


def gaussian_size_from_sigma(sigma: float, truncate: float = 4.0) -> int:
    """Kernel length scipy.ndimage uses for ``sigma``: ``2 * round(truncate * sigma) + 1``.

    Raises:
        ValueError: sigma or truncate not positive and finite, or a length above
            :data:`MAX_GAUSSIAN_TAPS`.
    """
    sigma = _check_sigma(sigma)
    truncate = _check_truncate(truncate)
    return _check_taps(2 * int(round(truncate * sigma)) + 1, f"sigma={sigma} with truncate={truncate}")


def gaussian_sigma_from_size(size: int) -> float:
    """Sigma OpenCV and torchvision derive from a kernel length: ``0.3*((k-1)/2 - 1) + 0.8``."""
    size = _check_size(size)
    return 0.3 * ((size - 1) * 0.5 - 1.0) + 0.8


def _grid(size: int) -> torch.Tensor:
    return torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0


def _gaussian1d_f64(sigma, size, truncate) -> torch.Tensor:
    if sigma is None and size is None:
        raise ValueError("gaussian needs sigma or size, got neither")
    if sigma is None:
        size = _check_size(size)
        sigma = gaussian_sigma_from_size(size)
    sigma = _check_sigma(sigma)
    if size is None:
        size = gaussian_size_from_sigma(sigma, truncate)
    size = _check_taps(_check_size(size), f"size={size}")
    x = _grid(size)
    g = torch.exp(-(x**2) / (2.0 * sigma * sigma))
    return g / g.sum(), x, sigma


# --------------------------------------------------------------------------- builders


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


def gaussian1d(
    sigma=None, size=None, *, truncate: float = 4.0, dtype=None, device=None
) -> torch.Tensor:
    """Sampled 1-D Gaussian ``exp(-x^2 / (2 sigma^2))`` on ``x = arange(k) - (k-1)/2``, sum 1.

    Args:
        sigma: standard deviation; when omitted it is derived from ``size`` as OpenCV does.
        size: length; when omitted it is ``2 * round(truncate * sigma) + 1`` (scipy.ndimage).
        truncate: radius in standard deviations when the size comes from sigma.

    Returns:
        Tensor ``(k,)``.

    Example:
        >>> gaussian1d(1.0).shape
        torch.Size([9])
    """
    g, _, _ = _gaussian1d_f64(sigma, size, truncate)
    return _out(g, dtype, device)


def gaussian(
    sigma=None, size=None, *, truncate: float = 4.0, dtype=None, device=None
) -> torch.Tensor:
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
    gy, _, _ = _gaussian1d_f64(sy, hy, truncate)
    gx, _, _ = _gaussian1d_f64(sx, hx, truncate)
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
        sigma: standard deviation of the Gaussian.
        order: 1 or 2.
        size: length (default ``2 * round(truncate * sigma) + 1``).
        truncate: radius in standard deviations when the size comes from sigma.

    Returns:
        Tensor ``(k,)``.

    Example:
        >>> d = gaussian_derivative1d(1.0, size=5, dtype=torch.float64)
        >>> round(float((d * torch.arange(5.0, dtype=torch.float64)).sum()), 6)
        1.0
    """
    sigma = _check_sigma(sigma)
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    g, x, sigma = _gaussian1d_f64(sigma, size, truncate)
    if order == 1:
        d = x / sigma**2 * g
        d = d / (d * x).sum()
    else:
        d = (x**2 - sigma**2) / sigma**4 * g
        d = d - d.mean()
        d = d / (d * x**2 / 2.0).sum()
    return _out(d, dtype, device)


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
        ky, _, _ = _gaussian1d_f64(sy, hy, truncate)
        kx = gaussian_derivative1d(sx, order, hx, truncate=truncate, dtype=torch.float64)
    else:
        ky = gaussian_derivative1d(sy, order, hy, truncate=truncate, dtype=torch.float64)
        kx, _, _ = _gaussian1d_f64(sx, hx, truncate)
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


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


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


_SOBEL_FACTORS = {
    3: ([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]),
    5: ([1.0, 4.0, 6.0, 4.0, 1.0], [-1.0, -2.0, 0.0, 2.0, 1.0]),
}


def _derivative_kernel(smooth, diff, normalized, transpose, dtype, device) -> torch.Tensor:
    k = torch.outer(torch.tensor(smooth, dtype=torch.float64), torch.tensor(diff, dtype=torch.float64))
    if normalized:
        k = k / k.abs().sum()
    if transpose:
        k = k.t().contiguous()
    return _out(k, dtype, device)


def sobel_x(size: int = 3, *, normalized: bool = False, dtype=None, device=None) -> torch.Tensor:
    """Sobel x-derivative kernel (3x3 or 5x5, OpenCV's coefficients).

    Args:
        size: 3 or 5.
        normalized: divide by the sum of absolute values (8 for 3x3), as OpenCV's
            ``getDerivKernels(normalize=True)`` and kornia's ``normalized=True``.

    Returns:
        Tensor ``(size, size)``, positive where intensity grows to the right.

    Example:
        >>> sobel_x().tolist()
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
    """
    if size not in _SOBEL_FACTORS:
        raise ValueError(f"size must be 3 or 5, got {size!r}")
    s, d = _SOBEL_FACTORS[size]
    return _derivative_kernel(s, d, normalized, False, dtype, device)


def sobel_y(size: int = 3, *, normalized: bool = False, dtype=None, device=None) -> torch.Tensor:
    """Sobel y-derivative kernel: transpose of :func:`sobel_x` (positive for +row growth).

    Example:
        >>> sobel_y()[0].tolist()
        [-1.0, -2.0, -1.0]
    """
    if size not in _SOBEL_FACTORS:
        raise ValueError(f"size must be 3 or 5, got {size!r}")
    s, d = _SOBEL_FACTORS[size]
    return _derivative_kernel(s, d, normalized, True, dtype, device)


def prewitt_x(*, normalized: bool = False, dtype=None, device=None) -> torch.Tensor:
    """Prewitt x-derivative kernel ``[1,1,1]^T [-1,0,1]``.

    Example:
        >>> prewitt_x()[1].tolist()
        [-1.0, 0.0, 1.0]
    """
    return _derivative_kernel([1.0, 1.0, 1.0], [-1.0, 0.0, 1.0], normalized, False, dtype, device)


def prewitt_y(*, normalized: bool = False, dtype=None, device=None) -> torch.Tensor:
    """Prewitt y-derivative kernel (transpose of :func:`prewitt_x`).

    Example:
        >>> prewitt_y()[0].tolist()
        [-1.0, -1.0, -1.0]
    """
    return _derivative_kernel([1.0, 1.0, 1.0], [-1.0, 0.0, 1.0], normalized, True, dtype, device)


def scharr_x(*, normalized: bool = False, dtype=None, device=None) -> torch.Tensor:
    """Scharr x-derivative kernel ``[3,10,3]^T [-1,0,1]``.

    Example:
        >>> scharr_x()[1].tolist()
        [-10.0, 0.0, 10.0]
    """
    return _derivative_kernel([3.0, 10.0, 3.0], [-1.0, 0.0, 1.0], normalized, False, dtype, device)


def scharr_y(*, normalized: bool = False, dtype=None, device=None) -> torch.Tensor:
    """Scharr y-derivative kernel (transpose of :func:`scharr_x`).

    Example:
        >>> scharr_y()[0].tolist()
        [-3.0, -10.0, -3.0]
    """
    return _derivative_kernel([3.0, 10.0, 3.0], [-1.0, 0.0, 1.0], normalized, True, dtype, device)


def roberts_x(*, dtype=None, device=None) -> torch.Tensor:
    """Roberts cross kernel ``[[1, 0], [0, -1]]`` (``skimage.filters.roberts_pos_diag``'s weights).

    Example:
        >>> roberts_x().tolist()
        [[1.0, 0.0], [0.0, -1.0]]
    """
    return _out(torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64), dtype, device)


def roberts_y(*, dtype=None, device=None) -> torch.Tensor:
    """Roberts cross kernel ``[[0, 1], [-1, 0]]`` (``skimage.filters.roberts_neg_diag``'s weights).

    Example:
        >>> roberts_y().tolist()
        [[0.0, 1.0], [-1.0, 0.0]]
    """
    return _out(torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64), dtype, device)


#: Compass directions of :func:`kirsch`, clockwise from north (up, -row).
KIRSCH_DIRECTIONS = ("n", "ne", "e", "se", "s", "sw", "w", "nw")
# The 3x3 ring clockwise from the top-left corner, as (row, column).
_RING = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))


def kirsch(direction: str = "n", *, dtype=None, device=None) -> torch.Tensor:
    """Kirsch compass kernel: 5 on the three ring taps facing ``direction``, -3 on the other five.

    ``kirsch("n")`` is ``[[5, 5, 5], [-3, 0, -3], [-3, -3, -3]]`` (positive where the intensity is
    higher upwards); each step of :data:`KIRSCH_DIRECTIONS` turns it 45 degrees clockwise.

    Args:
        direction: one of ``"n", "ne", "e", "se", "s", "sw", "w", "nw"``.

    Returns:
        Tensor ``(3, 3)``, zero-sum.

    Example:
        >>> kirsch("e").tolist()
        [[-3.0, -3.0, 5.0], [-3.0, 0.0, 5.0], [-3.0, -3.0, 5.0]]
    """
    if direction not in KIRSCH_DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(KIRSCH_DIRECTIONS)}, got {direction!r}")
    step = KIRSCH_DIRECTIONS.index(direction)
    k = torch.zeros(3, 3, dtype=torch.float64)
    for i, (r, c) in enumerate(_RING):
        k[r, c] = 5.0 if (i - step) % 8 < 3 else -3.0
    return _out(k, dtype, device)


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


def laplacian_of_gaussian(
    sigma, size=None, *, truncate: float = 4.0, dtype=None, device=None
) -> torch.Tensor:
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


def sharpen(*, dtype=None, device=None) -> torch.Tensor:
    """3x3 sharpen kernel ``[[0,-1,0],[-1,5,-1],[0,-1,0]]`` (identity minus 4-Laplacian).

    Example:
        >>> sharpen()[1].tolist()
        [-1.0, 5.0, -1.0]
    """
    k = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
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


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., torch.Tensor]] = {}
_ALIASES = {
    "mean": "box",
    "average": "box",
    "gauss": "gaussian",
    "laplacian": "laplacian4",
    "laplacian_of_gaussian": "log",
}


def register_kernel(name: str):
    """Decorator registering a kernel builder under ``name`` for :func:`get_kernel`.

    Example:
        >>> @register_kernel("my_cross")
        ... def my_cross(*, dtype=None, device=None):
        ...     return laplacian(4, dtype=dtype, device=device).abs()
        >>> get_kernel("my_cross").shape
        torch.Size([3, 3])
        >>> unregister_kernel("my_cross")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")

    def decorator(fn):
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"kernel name already registered, got {name!r}")
        _REGISTRY[name] = fn
        return fn

    return decorator


def unregister_kernel(name: str) -> None:
    """Remove a kernel registered with :func:`register_kernel` (built-in names included).

    Raises:
        ValueError: ``name`` is not registered.
    """
    if name not in _REGISTRY:
        raise ValueError(f"kernel name is not registered, got {name!r}")
    del _REGISTRY[name]


def list_kernels() -> list[str]:
    """Sorted list of registered kernel names (aliases excluded)."""
    return sorted(_REGISTRY)


def get_kernel(name: str, **kwargs) -> torch.Tensor:
    """Build a registered kernel by name, passing ``kwargs`` to its builder.

    Args:
        name: a name from :func:`list_kernels` or an alias (``mean``, ``gauss``...).
        **kwargs: builder arguments, e.g. ``sigma=2.0``, ``dtype=torch.float64``.

    Example:
        >>> get_kernel("gaussian", sigma=1.0, size=3).shape
        torch.Size([3, 3])
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise ValueError(f"unknown kernel name, got {name!r}; known: {', '.join(list_kernels())}")
    return _REGISTRY[key](**kwargs)


def _register_builtins() -> None:
    def add(name, fn, **fixed):
        def builder(*args, **kwargs):
            return fn(*args, **{**fixed, **kwargs})

        builder.__name__ = name
        builder.__doc__ = fn.__doc__
        register_kernel(name)(builder)

    add("box", box)
    add("gaussian", gaussian)
    add("gaussian_dx", gaussian_derivative, order=1, axis="x")
    add("gaussian_dy", gaussian_derivative, order=1, axis="y")
    add("gaussian_dxx", gaussian_derivative, order=2, axis="x")
    add("gaussian_dyy", gaussian_derivative, order=2, axis="y")
    add("gaussian_dxy", gaussian_dxy)
    add("gabor", gabor)
    add("sobel_x", sobel_x)
    add("sobel_y", sobel_y)
    add("sobel5_x", sobel_x, size=5)
    add("sobel5_y", sobel_y, size=5)
    add("prewitt_x", prewitt_x)
    add("prewitt_y", prewitt_y)
    add("scharr_x", scharr_x)
    add("scharr_y", scharr_y)
    add("roberts_x", roberts_x)
    add("roberts_y", roberts_y)
    for direction in KIRSCH_DIRECTIONS:
        add(f"kirsch_{direction}", kirsch, direction=direction)
    add("laplacian4", laplacian, neighbours=4)
    add("laplacian8", laplacian, neighbours=8)
    add("log", laplacian_of_gaussian)
    add("sharpen", sharpen)
    add("unsharp", unsharp)
    add("identity", identity)


_register_builtins()


# --------------------------------------------------------------------------- separability


def separable_factors(kernel: torch.Tensor, rtol: float = 1e-5):
    """Factor a rank-1 kernel into a column and a row vector, or return ``None``.

    The factors are read from the row and column through the entry of largest magnitude, so
    integer kernels (Sobel, box) factor exactly; the result is accepted when
    ``max|kernel - outer(ky, kx)| <= rtol * max|kernel|``.

    Args:
        kernel: ``(kh, kw)``, or ``(C, kh, kw)`` for per-channel kernels (separable only when
            every channel is).
        rtol: tolerance relative to the largest entry.

    Returns:
        ``(ky, kx)`` with shapes ``(kh,)``, ``(kw,)`` (or ``(C, kh)``, ``(C, kw)``) in the
        kernel's dtype and device, such that ``kernel == ky[..., :, None] * kx[..., None, :]``;
        ``None`` when the kernel is not rank 1 or holds a NaN or inf.

    Example:
        >>> ky, kx = separable_factors(sobel_x())
        >>> torch.equal(torch.outer(ky, kx), sobel_x())
        True
        >>> separable_factors(laplacian(4)) is None
        True
    """
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a tensor, got {type(kernel).__name__}")
    if kernel.ndim not in (2, 3):
        raise ValueError(f"kernel must have shape (kh, kw) or (C, kh, kw), got {tuple(kernel.shape)}")
    squeeze = kernel.ndim == 2
    k = kernel.detach().to(torch.float64)
    if not bool(torch.isfinite(k).all()):  # inf * 0 is NaN in a product of factors
        return None
    if squeeze:
        k = k.unsqueeze(0)
    c, kh, kw = k.shape
    flat = k.reshape(c, -1)
    idx = flat.abs().argmax(dim=1)
    i0, j0 = idx // kw, idx % kw
    ar = torch.arange(c, device=k.device)
    pivot = flat[ar, idx]  # (C,)
    safe = torch.where(pivot == 0, torch.ones_like(pivot), pivot)
    ky = k[ar, :, j0] / safe[:, None]  # column through the pivot, pivot entry -> 1
    kx = k[ar, i0, :]  # row through the pivot
    err = (k - ky[:, :, None] * kx[:, None, :]).abs().amax(dim=(1, 2))
    scale = flat.abs().amax(dim=1)
    if bool((err > rtol * scale).any()):
        return None
    # Balance the two factors' magnitudes (helps float32 accuracy).
    ny = ky.abs().amax(dim=1).clamp_min(1e-300)
    nx = kx.abs().amax(dim=1).clamp_min(1e-300)
    # A power of two keeps the scaling exact.
    f = torch.exp2(torch.round(0.5 * torch.log2(nx / ny)))
    ky = ky * f[:, None]
    kx = kx / f[:, None]
    ky = ky.to(kernel.dtype)
    kx = kx.to(kernel.dtype)
    if squeeze:
        return ky[0], kx[0]
    return ky, kx
