"""Gradients of volumes: :func:`apply_gradient3d` and the operators built on it (conventions:
:mod:`cnnconv.functional3d`, which re-exports them)."""

from __future__ import annotations

import torch

from cnnconv._utils.checks import check_choice
from cnnconv.engines.checks import check_eps, check_factors, to_batch
from cnnconv.functional.gradients import DERIVATIVE_FACTORS, derivative_factors
from cnnconv.functional.plan import FilterPlan, plan_filter3d
from cnnconv.functional.volume import apply_plan3d, check_input3d, check_method3d

__all__ = [
    "SOBEL3D_OUTPUTS",
    "apply_gradient3d",
    "apply_gradient_plan3d",
    "gradient_factors3d",
    "sobel3d",
    "spatial_gradient3d",
]

SOBEL3D_OUTPUTS = ("x", "y", "z", "xyz", "magnitude")


def gradient_factors3d(operator: str, normalized: bool, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(smooth, diff)`` with the x kernel ``smooth x smooth x diff`` (depth, rows, columns)."""
    check_choice(operator, "operator", tuple(DERIVATIVE_FACTORS))
    s, d = derivative_factors(operator, False, dtype, device)
    if normalized:
        d = d / (s.abs().sum() ** 2 * d.abs().sum())
    return s, d


def apply_gradient3d(input, smooth, diff, output="magnitude", border="reflect", mode="same", *, eps=0.0, method="auto"):
    """Gradient filter of volumes from 1-D factors: derivative ``diff`` along one axis,
    ``smooth`` along the two others.

    The common engine of :func:`sobel3d`, :func:`spatial_gradient3d` and the 3-D gradient layers.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        smooth: smoothing factor ``(k,)``.
        diff: derivative factor ``(k,)``, positive towards +x / +y / +z under correlation.
        output: ``"x"``, ``"y"``, ``"z"``, ``"xyz"`` (stacked at dim -4) or ``"magnitude"``.
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: magnitude ``sqrt(gx^2 + gy^2 + gz^2 + eps)``; 0 computes the Euclidean norm
            (gradient 0 where all three derivatives vanish).
        method: see :func:`filter3d`.

    Returns:
        Tensor with the input's number of dimensions (``"xyz"`` adds a dimension of size 3 at -4).

    Example:
        >>> s, d = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([-1.0, 0.0, 1.0])
        >>> apply_gradient3d(torch.rand(2, 6, 6, 6), s, d, "xyz").shape
        torch.Size([2, 3, 6, 6, 6])
    """
    check_input3d(input)
    check_choice(output, "output", SOBEL3D_OUTPUTS)
    eps = check_eps(eps)
    check_method3d(method)
    x5 = to_batch(input, 5)
    plan = plan_filter3d(None, method, check_factors((smooth, smooth, diff), x5, "(kz, ky, kx)"))
    return apply_gradient_plan3d(input, plan, output, border, mode, eps=eps)


# The plan of a gradient holds the x factors (smooth, smooth, diff); y and z reorder them.
_GRADIENT_ORDER = {"x": (0, 1, 2), "y": (0, 2, 1), "z": (2, 0, 1)}


def apply_gradient_plan3d(
    input: torch.Tensor,
    plan: FilterPlan,
    output: str = "magnitude",
    border: str = "reflect",
    mode: str = "same",
    *,
    eps: float = 0.0,
) -> torch.Tensor:
    """:func:`apply_gradient3d` with the plan of its x factors ``(smooth, smooth, diff)`` made
    beforehand (:func:`cnnconv.functional.plan.plan_filter3d`), as :class:`cnnconv.filters3d.Sobel3d`
    calls it.

    Example:
        >>> from cnnconv.functional.plan import plan_filter3d
        >>> s, d = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([-1.0, 0.0, 1.0])
        >>> apply_gradient_plan3d(torch.rand(6, 6, 6), plan_filter3d(None, factors=(s, s, d)), "z").shape
        torch.Size([6, 6, 6])
    """
    check_input3d(input)
    check_choice(output, "output", SOBEL3D_OUTPUTS)
    eps = check_eps(eps)
    names = "xyz" if output in ("xyz", "magnitude") else output
    grads = [apply_plan3d(input, plan, mode, border, order=_GRADIENT_ORDER[n]) for n in names]
    if output in ("x", "y", "z"):
        return grads[0]
    if output == "xyz":
        return torch.stack(grads, dim=-4)
    gx, gy, gz = grads
    sq = gx * gx + gy * gy + gz * gz  # torch.linalg.vector_norm over the stacked dim is ~40x slower
    if eps > 0:
        return torch.sqrt(sq + eps)
    if torch.is_grad_enabled() and sq.requires_grad:
        # sqrt has no derivative at 0 (flat regions): give them the zero subgradient, not NaN
        flat = sq == 0
        return torch.where(flat, torch.zeros_like(sq), torch.sqrt(torch.where(flat, torch.ones_like(sq), sq)))
    return sq.sqrt_()


def sobel3d(input, output="magnitude", normalized=False, border="reflect", mode="same", *, eps=0.0, method="auto"):
    """3-D Sobel gradient: ``[-1, 0, 1]`` along one axis, ``[1, 2, 1]`` along the two others.

    ``scipy.ndimage.sobel(x, axis)`` per axis (x: last axis, y: rows, z: depth), positive where
    intensity grows along the axis.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        output: ``"x"``, ``"y"``, ``"z"``, ``"xyz"`` (stacked at dim -4:
            ``(..., C, 3, D, H, W)``) or ``"magnitude"``.
        normalized: divide the kernels by the sum of their absolute values (32).
        border: see :func:`filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: the magnitude is ``sqrt(gx^2 + gy^2 + gz^2 + eps)``; 0 the Euclidean norm.
        method: see :func:`filter3d`.

    Returns:
        Tensor with the input's number of dimensions (one more for ``"xyz"``).

    Example:
        >>> x = torch.arange(4.0).expand(4, 4, 4)
        >>> sobel3d(x, "x", border="replicate")[1, 1, 1].item()
        32.0
    """
    check_input3d(input)
    s, d = gradient_factors3d("sobel", normalized, input.dtype, input.device)
    return apply_gradient3d(input, s, d, output, border, mode, eps=eps, method=method)


def spatial_gradient3d(
    input: torch.Tensor,
    operator: str = "diff",
    normalized: bool = True,
    border: str = "reflect",
    *,
    method: str = "auto",
) -> torch.Tensor:
    """First derivatives stacked as ``(..., C, 3, D, H, W)`` (x, y, z), like kornia's.

    With ``border="replicate"`` it equals ``kornia.filters.spatial_gradient3d(input)``
    (central differences ``0.5 * (x[i+1] - x[i-1])``); the default border is ``"reflect"``,
    that of every fixed filter.

    Args:
        input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        operator: ``"diff"`` (``[-1, 0, 1]``, no smoothing), ``"sobel"``, ``"prewitt"`` or
            ``"scharr"`` (their smoothing factor along the two other axes).
        normalized: divide the kernels by the sum of their absolute values.
        border: see :func:`filter3d`.
        method: see :func:`filter3d`.

    Returns:
        Tensor ``(..., C, 3, D, H, W)``.

    Example:
        >>> spatial_gradient3d(torch.rand(1, 2, 4, 8, 8)).shape
        torch.Size([1, 2, 3, 4, 8, 8])
    """
    check_input3d(input)
    s, d = gradient_factors3d(operator, normalized, input.dtype, input.device)
    return apply_gradient3d(input, s, d, "xyz", border, "same", method=method)
