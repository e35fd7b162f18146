"""Fixed-kernel filtering of volumes: the 3-D counterpart of :mod:`cnnconv.functional`.

Conventions (those of :mod:`cnnconv.functional`, with one more axis):

* Input ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``; the output has the input's
  number of dimensions. Filtering is depthwise: a kernel ``(kd, kh, kw)`` is shared by all
  channels, a kernel ``(C, kd, kh, kw)`` gives one kernel per channel.
* ``mode="full"|"same"|"valid"`` with scipy.signal's output sizes; :func:`filter3d` and the
  filters put kernel element ``k // 2`` on the output voxel (scipy.ndimage).
* ``border``: any name :func:`cnnconv.engines.padding.check_border` accepts, applied to each axis in
  turn (scipy.ndimage ``constant``/``mirror``/``nearest``/``wrap`` for
  ``zeros``/``reflect``/``replicate``/``circular``). Every filter and layer defaults to
  ``"reflect"``, as in 2-D; :func:`correlate3d` / :func:`convolve3d` take scipy.signal's
  defaults (``mode="full"``, zeros).
* Derivative outputs are ordered x (W, last axis), y (H), z (D), as in kornia's
  ``spatial_gradient3d``.

:func:`filter3d` is the one function that decides how a filter is computed: ``"direct"``
(depthwise ``F.conv3d``) or ``"separable"`` (three 1-D passes for a rank-1 kernel).
"""

from __future__ import annotations

from functools import partial

import torch

from cnnconv.engines.padding import pad3d
from cnnconv.functional.blur import gaussian_factors, gaussian_settings, int_sizes
from cnnconv.functional.correlation import padding_anchor, signal_function
from cnnconv.functional.gradients3d import (
    SOBEL3D_OUTPUTS,
    apply_gradient3d,
    sobel3d,
    spatial_gradient3d,
)
from cnnconv.functional.plan import METHODS3D, separable_factors3d
from cnnconv.functional.volume import check_input3d, check_method3d, filter3d

__all__ = [
    "METHODS3D",
    "SOBEL3D_OUTPUTS",
    "apply_gradient3d",
    "box_blur3d",
    "convolve3d",
    "correlate3d",
    "filter3d",
    "gaussian_blur3d",
    "laplacian3d",
    "pad3d",
    "separable_factors3d",
    "sobel3d",
    "spatial_gradient3d",
]

# --------------------------------------------------------------------------- correlate / convolve


def _signal3d(input, kernel, mode, border, method, anchor, flip):
    """The body of :func:`correlate3d` (``flip`` False) and :func:`convolve3d`."""
    if flip and isinstance(kernel, torch.Tensor) and kernel.ndim >= 3:
        kernel = kernel.flip(-3, -2, -1)
    return filter3d(input, kernel, mode, border, method=method, anchor=padding_anchor(anchor, flip, two_d=False))


correlate3d = signal_function(
    "correlate3d",
    __name__,
    3,
    """``"signal"``
            (``scipy.signal.correlate``) or ``"ndimage"`` (``scipy.ndimage.correlate``); both
            put kernel element ``k // 2`` on the output voxel.""",
    """3-D correlation (no kernel flip, PyTorch's convention) of every channel.

    Agrees with ``scipy.signal.correlate`` on volumes (``border="zeros"``) in every mode, with
    its defaults (``mode="full"``, zeros), and with ``scipy.ndimage.correlate`` for each border
    in ``same`` mode.

    {args}

    Example:
        >>> x = torch.arange(27.0).reshape(3, 3, 3)
        >>> k = torch.zeros(3, 3, 3); k[2, 1, 1] = 1.0
        >>> correlate3d(x, k, "same")[0, 1, 1].item()
        13.0
    """,
    partial(_signal3d, flip=False),
)


convolve3d = signal_function(
    "convolve3d",
    __name__,
    3,
    """``"signal"``
            (``scipy.signal.convolve``) or ``"ndimage"`` (``scipy.ndimage.convolve``).""",
    """3-D convolution: correlation with the kernel flipped in all three axes.

    Agrees with ``scipy.signal.convolve`` on volumes (``border="zeros"``) in every mode, and
    with ``scipy.ndimage.convolve`` for each border in ``same`` mode.

    {args}

    Example:
        >>> x = torch.arange(27.0).reshape(3, 3, 3)
        >>> k = torch.zeros(3, 3, 3); k[2, 1, 1] = 1.0
        >>> convolve3d(x, k, "same")[1, 1, 1].item()
        4.0
    """,
    partial(_signal3d, flip=True),
)


# --------------------------------------------------------------------------- filters


def box_factors3d(size, normalized: bool, dtype, device) -> tuple[torch.Tensor, ...]:
    """``(kz, ky, kx)`` of a box window: the scale rides on the depth factor."""
    kd, kh, kw = size
    scale = 1.0 / (kd * kh * kw) if normalized else 1.0
    opts = {"dtype": dtype, "device": device}
    return torch.full((kd,), scale, **opts), torch.ones(kh, **opts), torch.ones(kw, **opts)


def box_blur3d(
    input: torch.Tensor,
    kernel_size=3,
    border: str = "reflect",
    mode: str = "same",
    *,
    normalized: bool = True,
    method: str = "auto",
) -> torch.Tensor:
    """Box (mean) filter of volumes; ``scipy.ndimage.uniform_filter`` under the matching border.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        kernel_size: int or ``(kd, kh, kw)``; even sizes are anchored at ``k // 2``.
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        normalized: mean (True) or sum (False) over the window.
        method: see :func:`filter3d`.

    Returns:
        Filtered tensor with the input's number of dimensions.

    Example:
        >>> box_blur3d(torch.ones(1, 6, 6, 6), 5).allclose(torch.ones(1, 6, 6, 6))
        True
    """
    check_input3d(input)
    factors = box_factors3d(int_sizes(kernel_size, 3, "kernel_size"), normalized, input.dtype, input.device)
    return filter3d(input, None, mode, border, method=method, factors=factors)


def gaussian_blur3d(
    input: torch.Tensor,
    sigma,
    kernel_size=None,
    border: str = "reflect",
    mode: str = "same",
    *,
    truncate: float = 4.0,
    method: str = "auto",
) -> torch.Tensor:
    """Gaussian blur of volumes as three 1-D passes (the 3-D kernel is never built).

    The kernel size defaults to ``2 * round(truncate * sigma) + 1`` per axis, as
    ``scipy.ndimage.gaussian_filter``.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        sigma: positive float or ``(sigma_z, sigma_y, sigma_x)``.
        kernel_size: odd int or ``(kd, kh, kw)``; default from sigma and ``truncate``.
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        truncate: kernel radius in standard deviations when the size comes from sigma.
        method: ``"auto"`` (three 1-D passes), ``"separable"`` or ``"direct"``.

    Returns:
        Blurred tensor with the input's number of dimensions.

    Example:
        >>> gaussian_blur3d(torch.rand(1, 2, 8, 16, 16), (1.0, 2.0, 2.0)).shape
        torch.Size([1, 2, 8, 16, 16])
    """
    check_input3d(input)
    sigma, _, size = gaussian_settings(sigma, kernel_size, truncate, 3)
    factors = gaussian_factors(sigma, size, input.dtype, input.device)
    method = "separable" if check_method3d(method) == "auto" else method
    return filter3d(input, None, mode, border, method=method, factors=factors)


def laplacian_kernel3d(neighbours: int, normalized: bool, dtype, device) -> torch.Tensor:
    """3x3x3 Laplacian: 6 face neighbours or all 26 neighbours weighted 1, centre minus their count."""
    if neighbours == 6:
        k = torch.zeros(3, 3, 3, dtype=torch.float64)
        k[1, 1, :] = k[1, :, 1] = k[:, 1, 1] = 1.0
    elif neighbours == 26:
        k = torch.ones(3, 3, 3, dtype=torch.float64)
    else:
        raise ValueError(f"neighbours must be 6 or 26, got {neighbours!r}")
    k[1, 1, 1] = -float(neighbours)
    if normalized:
        k = k / k.abs().sum()
    return k.to(dtype=dtype, device=device)


def laplacian3d(
    input: torch.Tensor,
    neighbours: int = 6,
    normalized: bool = False,
    border: str = "reflect",
    mode: str = "same",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """3x3x3 discrete Laplacian of volumes.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        neighbours: 6 (face neighbours, centre -6: ``scipy.ndimage.laplace``) or 26 (all
            neighbours, centre -26).
        normalized: divide the kernel by the sum of its absolute values.
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: see :func:`filter3d` (the kernel is not rank 1: ``"direct"``).

    Returns:
        Tensor with the input's number of dimensions.

    Example:
        >>> laplacian3d(torch.ones(4, 4, 4), border="replicate").abs().max().item()
        0.0
    """
    check_input3d(input)
    k = laplacian_kernel3d(neighbours, normalized, input.dtype, input.device)
    return filter3d(input, k, mode, border, method="direct" if check_method3d(method) == "auto" else method)
