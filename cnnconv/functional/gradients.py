"""Gradient filters: :func:`apply_gradient` and the named operators built on it
(conventions: :mod:`cnnconv.functional`)."""

from __future__ import annotations

import torch

from cnnconv._utils.checks import check_choice
from cnnconv.engines import banded, direct
from cnnconv.engines.checks import (
    all_finite,
    check_eps,
    check_factors,
    check_input,
    from_batch,
    standard_layout,
    to_batch,
)
from cnnconv.engines.padding import check_border, check_mode, output_padding, tracing
from cnnconv.functional.correlation import INPUT_SHAPES, apply_plan
from cnnconv.functional.plan import (
    PAIR_MAX_TAPS,
    FilterPlan,
    check_method,
    plan_gradient,
)

__all__ = [
    "GRADIENT_OUTPUTS",
    "apply_gradient",
    "apply_gradient_plan",
    "derivative_factors",
    "prewitt",
    "scharr",
    "sobel",
    "spatial_gradient",
]

GRADIENT_OUTPUTS = ("x", "y", "xy", "magnitude", "direction")


DERIVATIVE_FACTORS = {
    "sobel": ([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]),
    "prewitt": ([1.0, 1.0, 1.0], [-1.0, 0.0, 1.0]),
    "scharr": ([3.0, 10.0, 3.0], [-1.0, 0.0, 1.0]),
    "diff": ([0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]),
}


def derivative_factors(operator, normalized, dtype, device):
    """``(smooth, diff)`` 1-D factors of a 3x3 derivative operator (x kernel = outer(smooth, diff))."""
    smooth, diff = DERIVATIVE_FACTORS[operator]
    s = torch.tensor(smooth, dtype=dtype, device=device)
    d = torch.tensor(diff, dtype=dtype, device=device)
    if normalized:
        s = s / (s.abs().sum() * d.abs().sum())
    return s, d


def apply_gradient(input, smooth, diff, output="magnitude", border="reflect", mode="same", *, eps=0.0, method="auto"):
    """Gradient filter from 1-D factors: x kernel ``outer(smooth, diff)``, y its transpose.

    The common engine of :func:`sobel`, :func:`prewitt`, :func:`scharr` and the gradient layers.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        smooth: smoothing factor ``(k,)``.
        diff: derivative factor ``(k,)``, positive towards +x / +y under correlation.
        output: ``"x"``, ``"y"``, ``"xy"``, ``"magnitude"`` or ``"direction"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: magnitude is ``sqrt(gx^2 + gy^2 + eps)``; 0 uses ``hypot``.
        method: see :func:`filter2d`.

    Returns:
        Tensor with the input's number of dimensions (``"xy"`` adds a dimension of size 2 at -3).

    Example:
        >>> s, d = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([-1.0, 0.0, 1.0])
        >>> apply_gradient(torch.rand(3, 8, 8), s, d, "xy").shape
        torch.Size([3, 2, 8, 8])
    """
    x4 = to_batch(check_input(input, 2, 4, INPUT_SHAPES), 4)
    check_choice(output, "output", GRADIENT_OUTPUTS)
    check_method(method)
    smooth, diff = check_factors((smooth, diff), x4, "(ky, kx)")
    return apply_gradient_plan(input, plan_gradient(smooth, diff, method, output), output, border, mode, eps=eps)


def apply_gradient_plan(
    input: torch.Tensor,
    plan: FilterPlan,
    output: str = "magnitude",
    border: str = "reflect",
    mode: str = "same",
    *,
    eps: float = 0.0,
) -> torch.Tensor:
    """:func:`apply_gradient` with a plan made beforehand
    (:func:`cnnconv.functional.plan.plan_gradient`), as the gradient layers call it.

    Example:
        >>> from cnnconv.functional.plan import plan_gradient
        >>> s, d = derivative_factors("sobel", False, torch.float32, None)
        >>> apply_gradient_plan(torch.rand(3, 8, 8), plan_gradient(s, d)).shape
        torch.Size([3, 8, 8])
    """
    x4 = to_batch(check_input(input, 2, 4, INPUT_SHAPES), 4)
    check_choice(output, "output", GRADIENT_OUTPUTS)
    eps = check_eps(eps)
    check_mode(mode)
    check_border(border)
    assert plan.factors is not None  # plan_gradient plans the pair as factors
    smooth, diff = plan.factors
    k = smooth.shape[-1]
    h, w = x4.shape[-2:]
    # A graph being captured gets the two filter passes (plain convolutions, nothing in place).
    small = plan.pair is not None and not tracing() and x4.numel() > 0 and not (mode == "valid" and (k > h or k > w))
    pads = output_padding(k, mode, anchor="scipy")
    # The banded engine skips zero taps, so a NaN or inf would not reach every output that a
    # convolution gives it to: inputs with one take the convolution paths.
    if small and plan.pair == "banded" and banded.usable(x4) and all_finite(x4):
        y = banded.gradient(x4, smooth, diff, pads, border, output, eps)
        return from_batch(standard_layout(y, x4), input.ndim + (output == "xy"))
    gx = gy = None
    fresh = False
    if small and output not in ("x", "y") and k <= PAIR_MAX_TAPS:
        gx, gy = (from_batch(g, input.ndim) for g in direct.gradient_pair(x4, smooth, diff, pads, border))
        fresh = not (torch.is_grad_enabled() and input.requires_grad)
    else:
        if output != "y":
            gx = apply_plan(input, plan, mode, border)
        if output != "x":
            gy = apply_plan(input, plan, mode, border, transpose=True)
    return standard_layout(_combine(gx, gy, output, eps, fresh), x4)


def _combine(gx, gy, output: str, eps: float, fresh: bool) -> torch.Tensor:
    """The requested ``output`` of :func:`apply_gradient` from the two gradients (``fresh``:
    they are ours to overwrite)."""
    if output == "x":
        return gx
    if output == "y":
        return gy
    if output == "xy":
        return torch.stack((gx, gy), dim=-3)
    if output == "magnitude" and eps > 0:
        return torch.sqrt(gx * gx + gy * gy + eps)
    if torch.is_grad_enabled() and (gx.requires_grad or gy.requires_grad):
        # hypot and atan2 have no derivative where gx = gy = 0 (flat regions, corners under
        # reflect): give them the zero subgradient there instead of NaN.
        flat = (gx == 0) & (gy == 0)
        gx = torch.where(flat, torch.ones_like(gx), gx)
        value = torch.hypot(gx, gy) if output == "magnitude" else torch.atan2(gy, gx)
        return torch.where(flat, torch.zeros_like(value), value)
    if output == "magnitude":
        if tracing():  # ONNX has no hypot
            return torch.sqrt(gx * gx + gy * gy)
        if fresh:  # no autograd, gx and gy are ours: sqrt(gx^2 + gy^2) in place, no allocation
            return gx.square_().addcmul_(gy, gy).sqrt_()
        return torch.hypot(gx, gy)
    return torch.atan2(gy, gx)


def _gradient_filter(input, operator, output, normalized, border, mode, eps, method):
    check_input(input, 2, 4, INPUT_SHAPES)
    s, d = derivative_factors(operator, normalized, input.dtype, input.device)
    return apply_gradient(input, s, d, output, border, mode, eps=eps, method=method)


_GRADIENT_DOC = """{title} gradient filter.

    ``x`` is positive where intensity grows to the right, ``y`` where it grows downwards (the
    kernels of :func:`cnnconv.kernels.{name}_x`, applied by correlation).

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        output: ``"x"``, ``"y"``, ``"xy"`` (stacked at dim -3: ``(..., C, 2, H, W)``),
            ``"magnitude"`` or ``"direction"`` (``atan2(gy, gx)`` in radians).
        normalized: divide the kernels by the sum of their absolute values.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: the magnitude is ``sqrt(gx^2 + gy^2 + eps)`` (kornia uses 1e-6 for a finite
            gradient at zero); 0 computes ``hypot(gx, gy)``.
        method: see :func:`filter2d`.

    Returns:
        Tensor with the input's number of dimensions (one more for ``"xy"``).

    Example:
        >>> x = torch.arange(25.0).reshape(5, 5)
        >>> {name}(x, output="x", border="replicate")[2, 2].item() > 0
        True
    """


def sobel(input, output="magnitude", normalized=False, border="reflect", mode="same", *, eps=0.0, method="auto"):
    return _gradient_filter(input, "sobel", output, normalized, border, mode, eps, method)


def prewitt(input, output="magnitude", normalized=False, border="reflect", mode="same", *, eps=0.0, method="auto"):
    return _gradient_filter(input, "prewitt", output, normalized, border, mode, eps, method)


def scharr(input, output="magnitude", normalized=False, border="reflect", mode="same", *, eps=0.0, method="auto"):
    return _gradient_filter(input, "scharr", output, normalized, border, mode, eps, method)


sobel.__doc__ = _GRADIENT_DOC.format(title="Sobel", name="sobel")
prewitt.__doc__ = _GRADIENT_DOC.format(title="Prewitt", name="prewitt")
scharr.__doc__ = _GRADIENT_DOC.format(title="Scharr", name="scharr")


def spatial_gradient(
    input: torch.Tensor,
    operator: str = "sobel",
    normalized: bool = True,
    border: str = "reflect",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """First derivatives stacked as ``(..., C, 2, H, W)`` (x then y), like kornia's.

    ``border="replicate"`` gives kornia's ``spatial_gradient`` exactly; the default is
    ``"reflect"``, that of every fixed filter.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        operator: ``"sobel"``, ``"prewitt"``, ``"scharr"`` or ``"diff"`` (``[-1, 0, 1]``,
            a central difference when normalized).
        normalized: divide the kernels by the sum of their absolute values.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        method: see :func:`filter2d`.

    Returns:
        Tensor ``(..., C, 2, H, W)``.

    Example:
        >>> spatial_gradient(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 2, 8, 8])
    """
    check_input(input, 2, 4, INPUT_SHAPES)
    check_choice(operator, "operator", tuple(DERIVATIVE_FACTORS))
    s, d = derivative_factors(operator, normalized, input.dtype, input.device)
    return apply_gradient(input, s, d, "xy", border, "same", method=method)
