"""Blurs and small fixed kernels: box, Gaussian, Laplacian, sharpen (conventions:
:mod:`cnnconv.functional`)."""

from __future__ import annotations

import math
import numbers
from typing import cast

import torch

from cnnconv import kernels as K
from cnnconv.engines.checks import check_input
from cnnconv.functional.correlation import INPUT_SHAPES, apply_plan, filter2d
from cnnconv.functional.plan import FilterPlan, check_method, plan_filter, use_box

__all__ = ["box_blur2d", "box_plan", "gaussian_blur2d", "laplacian", "sharpen"]


_GROUPS = {2: "pair", 3: "triple"}
_SIGMA_NAMES = {2: "(sigma_y, sigma_x)", 3: "(sigma_z, sigma_y, sigma_x)"}


def int_sizes(value, n: int, name: str, *, odd: bool = False) -> tuple[int, ...]:
    """An int or ``n`` ints, positive (and, with ``odd``, odd), as a tuple of ``n`` ints.

    Example:
        >>> int_sizes(3, 2, "kernel_size"), int_sizes((3, 5, 7), 3, "kernel_size", odd=True)
        ((3, 3), (3, 5, 7))
    """
    group = _GROUPS[n]
    sizes = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(sizes) != n:
        raise ValueError(f"{name} must be an int or a {group}, got {value!r}")
    for v in sizes:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or a {group} of ints, got {value!r}")
        if v < 1 or (odd and v % 2 == 0):
            raise ValueError(f"{name} must be {'odd and ' if odd else ''}positive, got {value!r}")
    return tuple(int(v) for v in sizes)


def gaussian_settings(sigma, kernel_size, truncate: float, n: int) -> tuple[tuple[float, ...], float, tuple[int, ...]]:
    """The checked arguments of an ``n``-D Gaussian: ``sigma`` as ``n`` floats, ``truncate``,
    and the kernel sizes: ``kernel_size`` (odd, one per axis), or those from ``sigma`` and
    ``truncate`` when it is None.

    Example:
        >>> gaussian_settings((1.0, 2.0), None, 4.0, 2)
        ((1.0, 2.0), 4.0, (9, 17))
        >>> gaussian_settings(1.0, 5, 4.0, 3)
        ((1.0, 1.0, 1.0), 4.0, (5, 5, 5))
    """
    sigma = sigmas(sigma, n)
    truncate = K._check_truncate(truncate)
    if kernel_size is None:
        return sigma, truncate, tuple(K.gaussian_size_from_sigma(s, truncate) for s in sigma)
    return sigma, truncate, int_sizes(kernel_size, n, "kernel_size", odd=True)


def gaussian_factors(sigma: tuple[float, ...], size: tuple[int, ...], dtype, device) -> tuple[torch.Tensor, ...]:
    """The 1-D factors of a Gaussian of standard deviations ``sigma`` (one per axis) and ``size``."""
    return tuple(K.gaussian1d(s, k, dtype=dtype, device=device) for s, k in zip(sigma, size))


def sigmas(sigma, n: int) -> tuple[float, ...]:
    """A positive finite number (or one-element tensor), or ``n`` of them, as ``n`` floats."""
    group = _GROUPS[n]
    values = tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma,) * n
    if len(values) != n:
        raise ValueError(f"sigma must be a number or a {group} {_SIGMA_NAMES[n]}, got {sigma!r}")
    out = []
    for s in values:
        if isinstance(s, torch.Tensor) and s.numel() == 1:
            s = float(s)
        if isinstance(s, bool) or not isinstance(s, numbers.Real):
            raise TypeError(f"sigma must be a number or a {group} of numbers, got {sigma!r}")
        s = float(s)
        if not (s > 0) or not math.isfinite(s):
            raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
        out.append(s)
    return tuple(out)


def box_blur2d(
    input: torch.Tensor,
    kernel_size=3,
    border: str = "reflect",
    mode: str = "same",
    *,
    normalized: bool = True,
    method: str = "auto",
) -> torch.Tensor:
    """Box (mean) filter; computed with cumulative sums for large windows.

    Equivalent to ``cv2.blur`` / ``cv2.boxFilter``, ``scipy.ndimage.uniform_filter`` and
    ``kornia.filters.box_blur`` under the matching border.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        kernel_size: int or ``(kh, kw)``; even sizes are anchored at ``k // 2``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        normalized: mean (True) or sum (False) over the window.
        method: see :func:`filter2d`.

    Returns:
        Filtered tensor with the input's number of dimensions.

    Example:
        >>> box_blur2d(torch.ones(1, 8, 8), 5).allclose(torch.ones(1, 8, 8))
        True
    """
    check_input(input, 2, 4, INPUT_SHAPES)
    kh, kw = int_sizes(kernel_size, 2, "kernel_size")
    k = K.box((kh, kw), normalized=normalized, dtype=input.dtype, device=input.device)
    return apply_plan(input, box_plan(k, normalized, method), mode, border)


def box_plan(kernel: torch.Tensor, normalized: bool, method: str = "auto") -> FilterPlan:
    """The plan of a box kernel built by :func:`cnnconv.kernels.box`: what ``"auto"`` would
    pick, decided from the size alone (running sums for long windows, two 1-D passes
    otherwise), so that no kernel value is read.

    Example:
        >>> box_plan(K.box(31), True).method, box_plan(K.box(5), True).method
        ('box', 'separable')
    """
    check_method(method)
    kh, kw = kernel.shape[-2:]
    if method == "auto":
        method = "box" if use_box(kh, kw) else "separable"
    if method != "separable":
        return plan_filter(kernel, method)
    scale = 1.0 / (kh * kw) if normalized else 1.0
    ky = torch.full((kh,), scale, dtype=kernel.dtype, device=kernel.device)
    return plan_filter(kernel, method, (ky, torch.ones(kw, dtype=kernel.dtype, device=kernel.device)))


def gaussian_blur2d(
    input: torch.Tensor,
    sigma,
    kernel_size=None,
    border: str = "reflect",
    mode: str = "same",
    *,
    truncate: float = 4.0,
    method: str = "auto",
) -> torch.Tensor:
    """Gaussian blur as two 1-D passes.

    The kernel size defaults to ``2 * round(truncate * sigma) + 1`` (scipy.ndimage's
    ``gaussian_filter``); give ``kernel_size`` to match OpenCV, kornia or torchvision.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        sigma: positive float or ``(sigma_y, sigma_x)``.
        kernel_size: odd int or ``(kh, kw)``; default from sigma and ``truncate``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        truncate: kernel radius in standard deviations when the size comes from sigma.
        method: see :func:`filter2d`.

    Returns:
        Blurred tensor with the input's number of dimensions.

    Example:
        >>> gaussian_blur2d(torch.rand(2, 3, 32, 32), 2.0).shape
        torch.Size([2, 3, 32, 32])
    """
    check_input(input, 2, 4, INPUT_SHAPES)
    sigma, _, size = gaussian_settings(sigma, kernel_size, truncate, 2)
    factors = gaussian_factors(sigma, size, input.dtype, input.device)
    return filter2d(input, None, mode, border, method=method, factors=factors)


def laplacian(
    input: torch.Tensor,
    neighbours: int = 4,
    normalized: bool = False,
    border: str = "reflect",
    mode: str = "same",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """3x3 Laplacian (4- or 8-neighbour, see :func:`cnnconv.kernels.laplacian`).

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        neighbours: 4 (``cv2.Laplacian(ksize=1)``) or 8 (kornia's 3x3 ``laplacian``).
        normalized: divide the kernel by the sum of its absolute values.
        {small_filter_args}

    Example:
        >>> laplacian(torch.ones(5, 5), border="replicate").abs().max().item()
        0.0
    """
    check_input(input, 2, 4, INPUT_SHAPES)
    k = K.laplacian(neighbours, normalized=normalized, dtype=input.dtype, device=input.device)
    return filter2d(input, k, mode, border, method=_known_small(method))


def sharpen(input: torch.Tensor, border: str = "reflect", mode: str = "same", *, method: str = "auto") -> torch.Tensor:
    """3x3 sharpen filter ``[[0,-1,0],[-1,5,-1],[0,-1,0]]``.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        {small_filter_args}

    Example:
        >>> sharpen(torch.ones(5, 5)).allclose(torch.ones(5, 5))
        True
    """
    check_input(input, 2, 4, INPUT_SHAPES)
    return filter2d(input, K.sharpen(dtype=input.dtype, device=input.device), mode, border, method=_known_small(method))


_SMALL_FILTER_ARGS = """border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: see :func:`filter2d`.

    Returns:
        Tensor with the input's number of dimensions."""

laplacian.__doc__ = cast(str, laplacian.__doc__).replace("{small_filter_args}", _SMALL_FILTER_ARGS)
sharpen.__doc__ = cast(str, sharpen.__doc__).replace("{small_filter_args}", _SMALL_FILTER_ARGS)


def _known_small(method: str) -> str:
    """``"auto"`` for a known 3x3 kernel that is neither rank 1 nor constant (Laplacian,
    sharpen) is ``"direct"``: what the dispatch would decide after inspecting the kernel's
    values, which costs about a quarter of a millisecond per call."""
    check_method(method)
    return "direct" if method == "auto" else method
