"""Angular error of a predicted edge direction on the true boundary pixels."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from cnnconv.evaluation._inputs import to_numpy

__all__ = ["OrientationError", "orientation_error"]


class OrientationError(NamedTuple):
    """Angular error statistics in degrees (modulo 180) and the number of pixels used."""

    mean: float
    median: float
    count: int  # type: ignore[assignment]  # the public field shadows tuple.count


def orientation_error(pred_direction: Any, true_orientation: Any, mask: Any) -> OrientationError:
    """Absolute angular error between predicted and true edge normals, modulo 180 degrees.

    The sign of an edge normal depends on which side is brighter, which a detector may get
    either way (and a magnitude-only detector cannot know), so directions ``a`` and ``a + pi``
    count as equal: the error is ``min(d, 180 - d)`` with ``d = |a - b| mod 180`` degrees, in
    ``[0, 90]``. Angles are in radians with the convention of ``atan2(gy, gx)`` (x = columns to
    the right, y = rows downward), as :mod:`cnnconv.evaluation.data` stores them.

    Args:
        pred_direction: predicted normal direction in radians.
        true_orientation: true normal direction in radians.
        mask: boolean map of the pixels to score (e.g. the true boundary).

    Returns:
        :class:`OrientationError` ``(mean, median, count)``; mean and median in degrees.

    Shape:
        - all inputs: the same shape, any number of dimensions.

    Example:
        >>> import torch
        >>> a = torch.tensor([0.0, 3.0, 1.0]); b = torch.tensor([0.1, 3.0 - torch.pi, 1.0])
        >>> e = orientation_error(a, b, torch.tensor([True, True, False]))
        >>> round(e.mean, 3), e.count
        (2.865, 2)
    """
    a = to_numpy(pred_direction, "pred_direction").astype(np.float64)
    b = to_numpy(true_orientation, "true_orientation").astype(np.float64)
    m = to_numpy(mask, "mask")
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be boolean, got dtype {m.dtype}")
    if a.shape != b.shape or a.shape != m.shape:
        raise ValueError(
            f"pred_direction, true_orientation and mask must have the same shape, "
            f"got {a.shape}, {b.shape} and {m.shape}"
        )
    n = int(m.sum())
    if n == 0:
        raise ValueError("mask must select at least one pixel, got an empty mask")
    a, b = a[m], b[m]
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("pred_direction and true_orientation must be finite on the mask")
    d = np.mod(np.abs(a - b), np.pi)
    d = np.degrees(np.minimum(d, np.pi - d))
    return OrientationError(float(d.mean()), float(np.median(d)), n)
