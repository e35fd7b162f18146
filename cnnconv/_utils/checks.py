"""Argument checks shared by every layer: tuple coercion, choices, numbers and tensors.

Each check raises ``TypeError`` (wrong kind) or ``ValueError`` (wrong value) with a message that
names the argument and the value received, and returns the value in canonical form.

Example:
    >>> int_tuple(3, 2, "kernel_size")
    (3, 3)
    >>> check_choice("same", "mode", ("full", "same", "valid"))
    'same'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any

import torch

__all__ = [
    "check_choice",
    "check_positive_float",
    "check_positive_int",
    "check_tensor",
    "int_tuple",
    "pair",
]


def int_tuple(value: Any, nd: int, name: str) -> tuple[int, ...]:
    """An int, or a sequence of 1 or ``nd`` ints, as a tuple of ``nd`` ints.

    Raises:
        TypeError: ``value`` is a bool, not an int, or a sequence of another length or of non-ints.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * nd
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        if len(value) == 1:
            return (int(value[0]),) * nd
        if len(value) == nd:
            return tuple(int(v) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}")


def pair(value: Any, name: str) -> tuple[Any, Any]:
    """A scalar as ``(value, value)``; a 2-sequence as a tuple (its items are not checked).

    Raises:
        ValueError: ``value`` is a sequence whose length is not 2.
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a pair, got {value!r}")
        return (value[0], value[1])
    return (value, value)


def check_choice(value: Any, name: str, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    Raises:
        ValueError: otherwise, listing the choices.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (bools are refused).

    Raises:
        TypeError: ``value`` is not an integer.
        ValueError: ``value < minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    """``value`` as a finite float ``> 0`` (bools are refused).

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: ``value`` is not finite and positive.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not (value > 0.0) or not math.isfinite(value):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def check_tensor(value: Any, name: str, ndims: Collection[int] | None = None) -> torch.Tensor:
    """``value`` if it is a tensor with one of ``ndims`` dimensions (any, if None).

    Raises:
        TypeError: ``value`` is not a tensor.
        ValueError: its number of dimensions is not allowed.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndims is not None and value.ndim not in ndims:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, sorted(ndims)))} dimensions, got shape {tuple(value.shape)}"
        )
    return value
