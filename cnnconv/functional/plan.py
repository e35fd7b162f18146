"""The one dispatch: which engine computes a fixed filter (:class:`FilterPlan`).

:func:`plan_filter` reads what decides the engine from the kernel (constant? rank 1? being
learned?) and its size, once; the input's shape enters only for large kernels, where
:meth:`FilterPlan.engine` asks :func:`cnnconv.planner.choose_method`. This module is the only
place that asks the planner. :func:`cnnconv.functional.filter2d` and
:func:`cnnconv.functional.apply_gradient` build a plan per call; the layers of
:mod:`cnnconv.filters` build one when they are made (and again when their kernel changes) and
run it with :func:`cnnconv.functional.apply_plan`.

Rules of ``method="auto"``:

1. a constant kernel at least ``BOX_MIN_LENGTH`` long on either axis: ``"box"``;
2. at most ``SMALL_TAPS`` taps: ``"direct"``, or ``"separable"`` for a rank-1 kernel larger
   than 3x3 with both sides longer than 1;
3. rank 1 and at most ``SEPARABLE_MAX_LENGTH`` per axis: ``"separable"``;
4. otherwise the planner's choice for the input's shape (``"planner"`` in the plan), or
   without the planner: separable for rank 1, FFT from ``FFT_MIN_TAPS`` taps up, else direct.

Kernels that require grad are applied as given (direct, or FFT from ``FFT_MIN_TAPS`` taps).

Example:
    >>> plan_filter(torch.ones(31, 31)).method
    'box'
    >>> plan_filter(torch.outer(torch.rand(9), torch.rand(9))).method
    'separable'
    >>> plan_filter(torch.rand(3, 3)).method
    'direct'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch

from cnnconv import kernels as K
from cnnconv._utils.checks import check_choice
from cnnconv.engines import banded, box
from cnnconv.engines.padding import tracing
from cnnconv.engines.separable import outer3

__all__ = [
    "METHODS",
    "METHODS3D",
    "FilterPlan",
    "check_method",
    "plan_filter",
    "plan_filter3d",
    "plan_gradient",
    "separable_factors3d",
]

METHODS = ("auto", "direct", "separable", "fft", "box")
METHODS3D = ("auto", "direct", "separable")

# Rank-1 3-D kernels with more taps than this (3x3x3) are computed as three 1-D passes by "auto".
SEPARABLE_MIN_TAPS_3D = 27

# Kernels with at most this many taps are computed directly (or separably), whatever the
# planner's cost model says.
SMALL_TAPS = 25

# Rank-1 kernels up to this length per axis always use two 1-D passes: measured faster than
# the FFT for depthwise filtering of 512x512 planes up to k = 64.
SEPARABLE_MAX_LENGTH = 64

# Box windows at least this long (on either axis) use running sums; shorter ones are cheaper
# as two 1-D convolutions.
BOX_MIN_LENGTH = 17

# Own fallback rule when the planner is unavailable: non-separable kernels with more taps than
# this use the FFT engine.
FFT_MIN_TAPS = 17 * 17

# Gradient factors up to this length share one padded copy in the two-convolution path.
PAIR_MAX_TAPS = 5


def check_method(method: object) -> str:
    """Validate a ``method`` name of :func:`cnnconv.functional.filter2d` and return it."""
    return check_choice(method, "method", METHODS)


def kernel_copy(kernel: object, shapes: dict[int, str]) -> torch.Tensor:
    """A detached copy of ``kernel``, a real floating point tensor (or what ``torch.as_tensor``
    makes one of) whose number of dimensions is a key of ``shapes`` (their names, for the error)."""
    if not isinstance(kernel, torch.Tensor):
        kernel = torch.as_tensor(kernel, dtype=torch.get_default_dtype())
    if kernel.ndim not in shapes or kernel.numel() == 0:
        raise ValueError(f"kernel must have shape {' or '.join(shapes.values())}, got {tuple(kernel.shape)}")
    if kernel.is_complex() or not kernel.is_floating_point():
        raise TypeError(f"kernel must be a real floating point tensor, got dtype {kernel.dtype}")
    return kernel.detach().clone()


@dataclass(frozen=True, eq=False)
class FilterPlan:
    """How a depthwise filter is computed, decided once from its kernel.

    Attributes:
        method: ``"direct"``, ``"separable"``, ``"box"``, ``"fft"``, or ``"planner"`` (decided
            per input shape by :meth:`engine`); for a graph being captured, the method asked
            for (the graph computes it in plain ops).
        size: ``(kh, kw)`` (``(kd, kh, kw)`` in 3-D).
        factors: ``(ky, kx)`` with ``kernel = outer(ky, kx)`` (``(kz, ky, kx)`` in 3-D), or ``None``.
        box_scale: the constant of a box kernel (per channel ``(C,)``), or ``None``.
        learn: the kernel or its factors require grad.
        pair: for gradients (:func:`plan_gradient`): ``"banded"`` (the banded engine where the
            input allows it, else ``"direct"``), ``"direct"`` (both gradients from one padded
            copy) or ``None`` (two filter passes by ``method``).
        auto: ``method`` was chosen by the ``"auto"`` rules.
        kernel: the kernel planned for, or ``None`` when given as ``factors``.
    """

    method: str
    size: tuple[int, ...]
    factors: tuple[torch.Tensor, ...] | None = None
    box_scale: torch.Tensor | None = None
    learn: bool = False
    pair: str | None = None
    auto: bool = False
    kernel: torch.Tensor | None = None

    def engine(self, x4: torch.Tensor, size: tuple[int, int], mode: str) -> str:
        """The engine for the batch ``x4`` and the kernel ``size`` (smaller than :attr:`size`
        when factors longer than the input were folded onto it: ``"auto"`` then decides
        again for the folded size)."""
        if self.method == "planner" or (self.auto and size != self.size):
            return _auto(size, self.learn, self.box_scale is not None, self.factors is not None, x4, mode)
        return self.method


def plan_filter(
    kernel: torch.Tensor | None, method: str = "auto", factors=None, *, pair: str | None = None
) -> FilterPlan:
    """The :class:`FilterPlan` of a kernel ``(kh, kw)`` / ``(C, kh, kw)`` or of its ``factors``.

    Args:
        kernel: the kernel, or ``None`` when ``factors`` is given.
        method: ``"auto"``, ``"direct"``, ``"separable"``, ``"fft"`` or ``"box"``.
        factors: optional ``(ky, kx)`` with ``kernel = outer(ky, kx)``.
        pair: see :attr:`FilterPlan.pair` (:func:`plan_gradient` sets it).

    Raises:
        ValueError: ``"box"`` for a kernel that is not constant, ``"separable"`` for one that
            is not rank 1.
    """
    check_method(method)
    given = kernel
    size: tuple[int, int]
    if kernel is not None:
        size = (int(kernel.shape[-2]), int(kernel.shape[-1]))
    else:  # factors (ky, kx)
        size = cast("tuple[int, int]", tuple(int(f.shape[-1]) for f in factors))
    learn = any(t is not None and t.requires_grad for t in (kernel, *(factors or ())))
    if tracing():  # no decision read from values: the graph computes what was asked for
        return FilterPlan(method, size, None if factors is None else tuple(factors), learn=learn, kernel=given)
    if kernel is None and method == "box":
        kernel = factors[0][..., :, None] * factors[1][..., None, :]
    box_scale = None
    if method == "box" or (method == "auto" and not learn and factors is None):
        assert kernel is not None  # given, built from the factors above, or needed for lack of factors
        box_scale = box.scale_of(kernel)
    if method == "box" and box_scale is None:
        raise ValueError("method='box' needs a constant kernel, got a kernel with differing entries")
    if factors is None and (method == "separable" or (method == "auto" and not learn)):
        assert kernel is not None  # one of kernel and factors is given
        factors = K.separable_factors(kernel)
    if method == "separable" and factors is None:
        raise ValueError("method='separable' needs a rank-1 kernel or factors, got a kernel of higher rank")
    auto = method == "auto"
    if auto:
        method = _auto(size, learn, box_scale is not None, factors is not None)
    return FilterPlan(method, size, None if factors is None else tuple(factors), box_scale, learn, pair, auto, given)


def plan_gradient(smooth, diff, method: str = "auto", output: str = "magnitude") -> FilterPlan:
    """The plan of a gradient pair: x kernel ``outer(smooth, diff)``, y its transpose.

    Factors of at most :data:`cnnconv.engines.banded.MAX_TAPS` taps that need no gradient go
    to the banded engine (``"auto"``) or, for both gradients and at most ``PAIR_MAX_TAPS``
    taps, to one padded copy shared by two convolutions; the others run as two filters.
    """
    check_method(method)
    small = (
        not tracing()
        and isinstance(smooth, torch.Tensor)
        and isinstance(diff, torch.Tensor)
        and smooth.ndim == diff.ndim == 1
        and smooth.shape == diff.shape
        and smooth.shape[0] <= banded.MAX_TAPS
        and not (smooth.requires_grad or diff.requires_grad)
    )
    pair = None
    if small and method == "auto":
        pair = "banded"
    elif small and output not in ("x", "y") and method == "direct" and smooth.shape[0] <= PAIR_MAX_TAPS:
        pair = "direct"
    return plan_filter(None, method, (smooth, diff), pair=pair)


def use_box(kh: int, kw: int) -> bool:
    """Whether a constant kernel of this size uses running sums."""
    return max(kh, kw) >= BOX_MIN_LENGTH


def _own_rule(size: tuple[int, int], is_box: bool, separable: bool) -> str:
    kh, kw = size
    if is_box and use_box(kh, kw):
        return "box"
    if separable and kh > 1 and kw > 1 and kh * kw > 9:  # 3x3: one 9-tap pass beats two
        return "separable"
    if kh * kw >= FFT_MIN_TAPS:
        try:
            from cnnconv import fft  # noqa: F401
        except ImportError:
            return "direct"
        return "fft"
    return "direct"


def _auto(
    size: tuple[int, int],
    learn: bool,
    is_box: bool,
    separable: bool,
    x4: torch.Tensor | None = None,
    mode: str = "same",
) -> str:
    """The ``"auto"`` choice; ``"planner"`` where the planner decides and no input is given."""
    if learn:
        return "fft" if _own_rule(size, False, False) == "fft" else "direct"
    return _by_size(size, is_box, separable, x4, mode)


def _by_size(
    size: tuple[int, int], is_box: bool, separable: bool, x4: torch.Tensor | None = None, mode: str = "same"
) -> str:
    """Rules 1-4 of the module notes; ``"planner"`` for rule 4 when no input is given."""
    kh, kw = size
    if is_box and use_box(kh, kw):
        return "box"
    if kh * kw <= SMALL_TAPS:  # a transform never pays off for a handful of taps
        return "separable" if separable and min(kh, kw) > 1 and kh * kw > 9 else "direct"
    if separable and max(kh, kw) <= SEPARABLE_MAX_LENGTH:
        return "separable"
    if x4 is None:
        return "planner"
    try:
        from cnnconv.planner import choose_method
    except ImportError:
        return _own_rule(size, is_box, separable)
    channels = int(x4.shape[1])
    try:
        method = choose_method(
            tuple(x4.shape),
            (channels, 1, kh, kw),
            groups=channels,
            dtype=x4.dtype,
            device=x4.device,
            separable=separable,
            full=mode == "full",
        )
    except Exception:  # a planner failure must not break filtering
        return _own_rule(size, is_box, separable)
    if method == "separable" and not separable:
        return "direct"
    return method if method in ("direct", "separable", "fft") else _own_rule(size, is_box, separable)


def plan_filter3d(kernel: torch.Tensor | None, method: str = "auto", factors=None) -> FilterPlan:
    """The :class:`FilterPlan` of a 3-D kernel ``(kd, kh, kw)`` / ``(C, kd, kh, kw)`` or of its
    ``factors`` ``(kz, ky, kx)``: ``"separable"`` (three 1-D passes) for rank-1 kernels of more
    than ``SEPARABLE_MIN_TAPS_3D`` taps under ``"auto"``, ``"direct"`` otherwise. Kernels that
    require grad, and any kernel while a graph is compiled, are not inspected.

    Example:
        >>> plan_filter3d(torch.ones(5, 5, 5)).method, plan_filter3d(torch.ones(3, 3, 3)).method
        ('separable', 'direct')
    """
    check_choice(method, "method", METHODS3D)
    size = tuple(int(n) for n in kernel.shape[-3:]) if kernel is not None else tuple(int(f.shape[-1]) for f in factors)
    learn = any(t is not None and t.requires_grad for t in (kernel, *(factors or ())))
    if factors is None and not learn and not torch.compiler.is_compiling() and method in ("auto", "separable"):
        assert kernel is not None  # one of kernel and factors is given
        factors = separable_factors3d(kernel)
    if method == "separable" and factors is None:
        if learn:
            raise ValueError(
                "method='separable' cannot pass gradients to a kernel that requires grad: give its factors or method='direct'"
            )
        raise ValueError("method='separable' needs a rank-1 kernel or factors, got a kernel of higher rank")
    auto = method == "auto"
    if auto:
        taps = size[0] * size[1] * size[2]
        method = "separable" if factors is not None and not learn and taps > SEPARABLE_MIN_TAPS_3D else "direct"
    return FilterPlan(method, size, None if factors is None else tuple(factors), learn=learn, auto=auto, kernel=kernel)


def separable_factors3d(kernel: torch.Tensor, rtol: float = 1e-5):
    """Factor a rank-1 3-D kernel into three vectors, or return ``None``.

    The kernel is split as depth x plane, then the plane as column x row (both with
    :func:`cnnconv.kernels.separable_factors`), and the product of the three factors is checked
    against the kernel: accepted when ``max|kernel - kz x ky x kx| <= rtol * max|kernel|``.
    Kernels with a NaN or inf are never separable.

    Args:
        kernel: ``(kd, kh, kw)``, or ``(C, kd, kh, kw)`` (separable only when every channel is).
        rtol: tolerance relative to the largest entry.

    Returns:
        ``(kz, ky, kx)`` with shapes ``(kd,)``, ``(kh,)``, ``(kw,)`` (or ``(C, k)`` each), in the
        kernel's dtype (the default dtype for integer kernels) and device; ``None`` when the
        kernel is not rank 1.

    Example:
        >>> k = torch.ones(3, 3, 3)
        >>> kz, ky, kx = separable_factors3d(k)
        >>> torch.equal(kz[:, None, None] * ky[:, None] * kx, k)
        True
        >>> separable_factors3d(torch.eye(3).expand(3, 3, 3)) is None
        True
    """
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a tensor, got {type(kernel).__name__}")
    if kernel.ndim not in (3, 4):
        raise ValueError(f"kernel must have shape (kd, kh, kw) or (C, kd, kh, kw), got {tuple(kernel.shape)}")
    k = kernel.detach().to(torch.float64)
    if not bool(torch.isfinite(k).all()):
        return None
    kd, kh, kw = k.shape[-3:]
    depth = K.separable_factors(k.reshape(*k.shape[:-3], kd, kh * kw), rtol)
    if depth is None:
        return None
    kz, plane = depth
    rows = K.separable_factors(plane.reshape(*plane.shape[:-1], kh, kw), rtol)
    if rows is None:
        return None
    ky, kx = rows
    err = (k - outer3(kz, ky, kx)).abs().flatten(-3).amax(-1)
    if bool((err > rtol * k.abs().flatten(-3).amax(-1)).any()):
        return None
    dtype = kernel.dtype if kernel.is_floating_point() else torch.get_default_dtype()
    return tuple(f.to(dtype=dtype) for f in (kz, ky, kx))
