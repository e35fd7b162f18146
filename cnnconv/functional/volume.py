"""The 3-D dispatch: :func:`filter3d` and :func:`apply_plan3d` (conventions:
:mod:`cnnconv.functional3d`, which re-exports them)."""

from __future__ import annotations

import torch

from cnnconv._utils.checks import check_choice
from cnnconv.engines import direct, separable
from cnnconv.engines.checks import (
    all_finite,
    check_factors,
    check_input,
    check_kernel,
    from_batch,
    to_batch,
)
from cnnconv.engines.padding import check_border, check_mode, output_padding, pad3d
from cnnconv.engines.separable import outer3
from cnnconv.functional.plan import METHODS3D, FilterPlan, plan_filter3d

__all__ = ["apply_plan3d", "check_input3d", "check_method3d", "filter3d"]

_INPUT_SHAPES = "(D, H, W), (C, D, H, W) or (B, C, D, H, W)"
_KERNEL_SHAPES = {3: "(kd, kh, kw)", 4: "(C, kd, kh, kw)"}


def check_input3d(input) -> torch.Tensor:
    """``input`` if it is a real floating point ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``."""
    return check_input(input, 3, 5, _INPUT_SHAPES)


def check_method3d(method) -> str:
    """Validate a ``method`` name of :func:`filter3d` and return it."""
    return check_choice(method, "method", METHODS3D)


# --------------------------------------------------------------------------- dispatch


def filter3d(
    input: torch.Tensor,
    kernel: torch.Tensor | None,
    mode: str = "same",
    border: str = "reflect",
    *,
    method: str = "auto",
    factors=None,
    anchor: str = "scipy",
) -> torch.Tensor:
    """Depthwise 3-D correlation with a border mode: the dispatch every 3-D filter goes through.

    Methods: ``"direct"`` (depthwise ``F.conv3d``), ``"separable"`` (three 1-D passes; needs a
    rank-1 kernel, see :func:`separable_factors3d`, or ``factors``) or ``"auto"``: separable
    for rank-1 kernels of more than 27 taps, direct otherwise. Kernels that require grad are
    applied directly so the gradient reaches them. An input holding a NaN or inf is filtered
    directly, so non-finite values spread exactly as through ``F.conv3d`` with the full kernel.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)`` floating point tensor.
        kernel: ``(kd, kh, kw)`` shared by all channels or ``(C, kd, kh, kw)`` per channel. May
            be ``None`` when ``factors`` is given (the 3-D kernel is then only built for the
            direct method).
        mode: ``"full"``, ``"same"`` or ``"valid"`` (scipy.signal output sizes).
        border: ``"reflect"`` (default), ``"zeros"``, ``"replicate"``, ``"circular"`` or any
            other name :func:`cnnconv.engines.padding.check_border` accepts.
        method: ``"auto"``, ``"direct"`` or ``"separable"``.
        factors: optional ``(kz, ky, kx)`` with ``kernel = kz x ky x kx``: ``(kd,)``, ``(kh,)``,
            ``(kw,)`` or per channel ``(C, k)`` each.
        anchor: where an even kernel sits in ``same`` mode: ``"scipy"`` (element ``k // 2`` on
            the output voxel) or ``"torch"`` (``(k - 1) // 2``). See :mod:`cnnconv.engines.padding`.

    Returns:
        Contiguous tensor with the input's number of dimensions; each spatial size is
        ``n + k - 1`` (full), ``n`` (same) or ``n - k + 1`` (valid).

    Example:
        >>> x = torch.rand(2, 3, 8, 16, 16)
        >>> filter3d(x, torch.ones(3, 3, 3) / 27, border="reflect").shape
        torch.Size([2, 3, 8, 16, 16])
    """
    check_method3d(method)
    return _filter3d(input, kernel, factors, mode, border, anchor, method=method)


def apply_plan3d(
    input: torch.Tensor, plan: FilterPlan, mode: str = "same", border: str = "reflect", *, order=(0, 1, 2)
) -> torch.Tensor:
    """:func:`filter3d` with a plan made beforehand (:func:`cnnconv.functional.plan.plan_filter3d`),
    as the layers of :mod:`cnnconv.filters3d` call it.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        plan: the kernel's plan.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: see :func:`filter3d`.
        order: which of the plan's factors goes along depth, rows and columns (a plan of
            factors only; the three derivatives of a gradient share one plan).

    Example:
        >>> from cnnconv.functional.plan import plan_filter3d
        >>> apply_plan3d(torch.ones(6, 6, 6), plan_filter3d(torch.ones(5, 5, 5) / 125)).allclose(torch.ones(6, 6, 6))
        True
    """
    factors = None if plan.factors is None else tuple(plan.factors[i] for i in order)
    return _filter3d(input, plan.kernel, factors, mode, border, "scipy", plan=plan)


def _filter3d(input, kernel, factors, mode, border, anchor, *, method="auto", plan=None):
    """The body of :func:`filter3d` (``plan`` None: planned here) and :func:`apply_plan3d`."""
    x = check_input3d(input)
    ndim = x.ndim
    x5 = to_batch(x, 5)
    check_mode(mode)
    check_border(border)
    if kernel is not None:
        kernel = check_kernel(kernel, x5, _KERNEL_SHAPES)
        size = tuple(kernel.shape[-3:])
    if factors is not None:
        factors = check_factors(factors, x5, "(kz, ky, kx)")
        lengths = tuple(f.shape[-1] for f in factors)
        if kernel is not None and lengths != size:
            raise ValueError(f"factors have lengths {lengths} but the kernel is {size}")
        size = lengths
    elif kernel is None:
        raise TypeError("kernel must be a torch.Tensor when factors is not given, got None")
    b, c = x5.shape[:2]
    if mode == "valid" and any(k > n for k, n in zip(size, x5.shape[2:])):
        raise ValueError(f"kernel of size {size} is larger than the input {tuple(x5.shape[2:])} in valid mode")
    kd, kh, kw = size
    pads = output_padding((kd, kh), mode, anchor=anchor) + output_padding((1, kw), mode, anchor=anchor)[2:]
    out_size = [n + pads[2 * i] + pads[2 * i + 1] - k + 1 for i, (n, k) in enumerate(zip(x5.shape[2:], size))]
    if x5.numel() == 0:
        return from_batch(x5.new_zeros(b, c, *(max(n, 0) for n in out_size)), ndim)
    plan = plan or plan_filter3d(kernel, method, factors)
    method = plan.method
    if factors is None and plan.factors is not None:  # found by the plan
        factors = tuple(f.to(device=x5.device, dtype=x5.dtype) for f in plan.factors)
    if method == "separable" and not torch.compiler.is_compiling() and not all_finite(x5.detach()):
        method = "direct"  # NaN/inf spread as through the full kernel
    xp = pad3d(x5, pads, border)
    if method == "separable":
        out = separable.valid3d(xp, *factors)
    else:
        out = direct.valid3d(xp, outer3(*factors) if kernel is None else kernel)
    return from_batch(out.contiguous(), ndim)
