"""Input coercion and checks shared by the evaluation modules: arrays, maps, sizes, indices."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["as_binary_map", "check_index", "check_nonneg", "check_size", "to_numpy"]


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A tensor (detached, on the CPU), array or list as a numpy array.

    Raises:
        TypeError: ``x`` is none of those.
    """
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")


def as_binary_map(x: Any, name: str) -> np.ndarray:
    """A binary ``(H, W)`` or ``(1, H, W)`` map (bool or 0/1) as a boolean ``(H, W)`` array.

    Raises:
        ValueError: the map is not 2-D, not finite or holds values other than 0 and 1.
    """
    a = to_numpy(x, name)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) map, got shape {tuple(a.shape)}")
    if a.dtype == np.bool_:
        return a
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got NaN or inf values")
    u = np.unique(a)
    if not np.all(np.isin(u, (0, 1))):
        raise ValueError(f"{name} must be binary (0/1 or bool), got values such as {u[:5].tolist()}")
    return a.astype(bool)


def check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """An image size ``S`` or ``(H, W)`` (Python or numpy ints) as ``(H, W)``, at least 8 per side.

    Raises:
        TypeError: not an int or a pair of ints.
        ValueError: a side shorter than 8 pixels.
    """
    if isinstance(size, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}")
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f"{name} must be at least 8 pixels per side, got {(h, w)}")
    return h, w


def check_nonneg(value: Any, name: str) -> float:
    """``value`` as a finite float ``>= 0`` (bools are refused).

    Raises:
        TypeError: not a number.
        ValueError: negative or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be non-negative and finite, got {value}")
    return value


def check_index(index: int, length: int) -> int:
    """A dataset index in ``[-length, length)`` as its position in ``[0, length)``.

    Raises:
        IndexError: out of range.
    """
    if not -length <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of length {length}")
    return index % length
