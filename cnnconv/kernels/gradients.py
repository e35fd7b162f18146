"""Gradient and compass kernels: Sobel, Prewitt, Scharr, Roberts cross and Kirsch.

Written for correlation: ``*_x`` kernels are positive where intensity grows to the right
(+column), ``*_y`` kernels (their transposes) where it grows downwards (+row).
"""

from __future__ import annotations

import torch

from .base import _out

__all__ = [
    "KIRSCH_DIRECTIONS",
    "kirsch",
    "prewitt_x",
    "prewitt_y",
    "roberts_x",
    "roberts_y",
    "scharr_x",
    "scharr_y",
    "sobel_x",
    "sobel_y",
]


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
