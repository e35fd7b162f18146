"""Input and kernel checks shared by the 2-D and 3-D filters, and the batch reshaping around them.

Example:
    >>> x = check_input(torch.rand(5, 5), 2, 4, "(H, W), (C, H, W), (B, C, H, W)")
    >>> to_batch(x, 4).shape
    torch.Size([1, 1, 5, 5])
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch

__all__ = [
    "INT_DTYPES",
    "all_finite",
    "check_eps",
    "check_factors",
    "check_input",
    "check_kernel",
    "from_batch",
    "standard_layout",
    "to_batch",
]

INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_input(input: Any, min_ndim: int, max_ndim: int, expected: str, name: str = "input") -> torch.Tensor:
    """``input`` if it is a real floating point tensor of ``min_ndim`` to ``max_ndim``
    dimensions; ``expected`` names the accepted shapes in the error message."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    if input.is_complex() or not input.is_floating_point():
        raise TypeError(f"{name} must be a real floating point tensor, got dtype {input.dtype}")
    if not min_ndim <= input.ndim <= max_ndim:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(input.shape)}")
    return input


def check_kernel(kernel: Any, x: torch.Tensor, shapes: Mapping[int, str], name: str = "kernel") -> torch.Tensor:
    """``kernel`` in ``x``'s dtype and device.

    Args:
        kernel: a real tensor whose number of dimensions is a key of ``shapes``.
        x: the batched input ``(B, C, ...)``; a kernel with the most dimensions of ``shapes``
            holds one kernel per channel and needs ``C`` of them.
        shapes: number of dimensions -> shape name for the error message.
        name: the argument's name in messages.
    """
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.is_complex() or not (kernel.is_floating_point() or kernel.dtype in INT_DTYPES):
        raise TypeError(f"{name} must be a real tensor, got dtype {kernel.dtype}")
    if kernel.ndim not in shapes:
        raise ValueError(f"{name} must have shape {' or '.join(shapes.values())}, got {tuple(kernel.shape)}")
    if kernel.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(kernel.shape)}")
    if kernel.ndim == max(shapes) and kernel.shape[0] != x.shape[1]:
        raise ValueError(
            f"{name} has {kernel.shape[0]} per-channel kernels but the input has "
            f"{x.shape[1]} channels (kernel shape {tuple(kernel.shape)}, input shape "
            f"{tuple(x.shape)})"
        )
    return kernel.to(device=x.device, dtype=x.dtype)


_FACTOR_SHAPES = {1: "(k,)", 2: "(C, k)"}


def check_factors(factors: Any, x: torch.Tensor, names: str) -> tuple[torch.Tensor, ...]:
    """The 1-D factors of a rank-1 kernel, one per spatial axis (``names``, e.g. ``"(ky, kx)"``),
    each ``(k,)`` shared or ``(C, k)`` per channel, all of one kind."""
    n = len(names.strip("()").split(","))
    if not isinstance(factors, (tuple, list)) or len(factors) != n:
        got = f"{len(factors)} factors" if isinstance(factors, (tuple, list)) else type(factors).__name__
        kind = "pair" if n == 2 else "triple"
        raise TypeError(f"factors must be a {kind} {names}, got {got}")
    checked = tuple(check_kernel(f, x, _FACTOR_SHAPES, f"factors[{i}]") for i, f in enumerate(factors))
    if len({f.ndim for f in checked}) != 1:
        raise ValueError(
            f"factors must all be shared or all per-channel, got shapes {[tuple(f.shape) for f in checked]}"
        )
    return checked


def check_eps(eps: Any) -> float:
    """``eps`` as a non-negative float."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not float(eps) >= 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}")
    return float(eps)


def to_batch(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """``x`` with leading dimensions of size 1 up to ``ndim`` dimensions (a view)."""
    while x.ndim < ndim:
        x = x.unsqueeze(0)
    return x


def from_batch(y: torch.Tensor, ndim: int) -> torch.Tensor:
    """``y`` without the leading dimensions that :func:`to_batch` added."""
    while y.ndim > ndim:
        y = y.squeeze(0)
    return y


def standard_layout(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y`` in the memory layout ``nn.Conv2d`` gives for input ``x``: channels_last for a
    channels_last batch, contiguous otherwise. The channels_last engines fold the planes of
    the batch innermost; putting them back costs one copy of the output."""
    if y.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return y.contiguous(memory_format=torch.channels_last)
    return y.contiguous()


def all_finite(x: torch.Tensor) -> bool:
    """Whether ``x`` holds no NaN or inf, from one sum (about 100x cheaper than
    ``isfinite(x).all()`` on the CPU). A sum that overflows says no: callers then take their
    exact path, which is only slower. Eager only (it reads a value)."""
    return bool(torch.isfinite(x.sum()))
