"""Fixed-kernel filter layers for volumes ``(B, C, D, H, W)``.

The 3-D counterparts of :mod:`cnnconv.filters`: each layer stores its arguments, keeps its
kernels (or their 1-D factors) in non-persistent buffers and its ``forward`` is one call into
:mod:`cnnconv.functional3d`.

Example:
    >>> import torch
    >>> from cnnconv.filters3d import GaussianBlur3d, Sobel3d
    >>> x = torch.rand(2, 3, 8, 16, 16)
    >>> GaussianBlur3d(1.0)(x).shape, Sobel3d("xyz")(x).shape
    (torch.Size([2, 3, 8, 16, 16]), torch.Size([2, 3, 3, 8, 16, 16]))
"""

from __future__ import annotations

from typing import cast

import torch

from cnnconv import functional3d as F3
from cnnconv.engines.separable import outer3
from cnnconv.filters import _Box, _FixedFilter, _Gaussian, _GradientBase, _Separable, _Setting
from cnnconv.functional.gradients3d import apply_gradient_plan3d, gradient_factors3d
from cnnconv.functional.plan import FilterPlan, kernel_copy, plan_filter3d
from cnnconv.functional.volume import apply_plan3d, check_method3d

__all__ = ["BoxBlur3d", "Filter3d", "GaussianBlur3d", "Laplacian3d", "Sobel3d"]


class _FixedFilter3d(_FixedFilter):
    """Common arguments of the 3-D layers: output ``mode``, ``border`` and ``method``."""

    def __init__(self, mode: str, border: str, method: str) -> None:
        check_method3d(method)
        super().__init__(mode, border, method)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return apply_plan3d(input, cast(FilterPlan, self._filter_plan), self.mode, self.border)


class _Separable3d(_Separable, _FixedFilter3d):
    """A layer whose kernel is kept as its three 1-D factors ``kz``, ``ky``, ``kx``."""

    _factor_names = ("kz", "ky", "kx")
    kz: torch.Tensor
    ky: torch.Tensor
    kx: torch.Tensor

    def _planned_method(self) -> str:
        return self.method

    def _make_plan(self) -> FilterPlan:
        return plan_filter3d(None, self._planned_method(), (self.kz, self.ky, self.kx))

    @property
    def kernel(self) -> torch.Tensor:
        """The 3-D kernel ``kz x ky x kx``."""
        return outer3(self.kz, self.ky, self.kx)


class Filter3d(_FixedFilter3d):
    """Depthwise 3-D correlation with a fixed kernel.

    Args:
        kernel: tensor ``(kd, kh, kw)`` shared by all channels or ``(C, kd, kh, kw)`` per channel.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"reflect"`` (default) or another border name, see
            :func:`cnnconv.functional3d.filter3d`.
        method: ``"auto"``, ``"direct"`` or ``"separable"`` (which needs a rank-1 kernel).

    Shape:
        - Input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        - Output: same number of dimensions; spatial size from ``mode``.

    Example:
        >>> f = Filter3d(torch.ones(5, 5, 5) / 125, border="reflect")
        >>> f(torch.rand(1, 3, 8, 8, 8)).shape
        torch.Size([1, 3, 8, 8, 8])
    """

    def __init__(self, kernel, mode: str = "same", border: str = "reflect", *, method: str = "auto") -> None:
        super().__init__(mode, border, method)
        self.register_buffer("kernel", kernel_copy(kernel, {3: "(kd, kh, kw)", 4: "(C, kd, kh, kw)"}), persistent=False)
        self._kernel_buffers("kz", "ky", "kx")
        # The kernel is fixed: find its structure once, here, instead of at every call.
        self._replan()

    kernel: torch.Tensor
    kz: torch.Tensor | None
    ky: torch.Tensor | None
    kx: torch.Tensor | None

    def _make_plan(self) -> FilterPlan:
        plan = plan_filter3d(self.kernel, self.method)
        factors = plan.factors if plan.method == "separable" else None
        self.kz, self.ky, self.kx = (None, None, None) if factors is None else factors
        return plan

    def extra_repr(self) -> str:
        return f"kernel_shape={tuple(self.kernel.shape)}, {self._common_repr()}"


class BoxBlur3d(_Box, _Separable3d):
    """Box (mean) blur of volumes.

    Args:
        kernel_size: int or ``(kd, kh, kw)``.
        border: ``"reflect"`` (default) or another border name, see
            :func:`cnnconv.functional3d.filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        normalized: mean (True) or window sum (False).
        method: ``"auto"``, ``"direct"`` or ``"separable"``.

    Shape:
        - Input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        - Output: same number of dimensions.

    Example:
        >>> BoxBlur3d((3, 5, 5))
        BoxBlur3d(kernel_size=(3, 5, 5), normalized=True, border='reflect', mode='same', method='auto')
    """

    _ndim = 3

    def reset_parameters(self) -> None:
        self._set_factors(F3.box_factors3d(self.kernel_size, self.normalized, torch.get_default_dtype(), None))

    _init_kernel = reset_parameters


class GaussianBlur3d(_Gaussian, _Separable3d):
    """Gaussian blur of volumes as three 1-D passes.

    Args:
        sigma: positive float or ``(sigma_z, sigma_y, sigma_x)``.
        kernel_size: odd int or ``(kd, kh, kw)``; default ``2 * round(truncate * sigma) + 1``.
        border: ``"reflect"`` (default) or another border name, see
            :func:`cnnconv.functional3d.filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        truncate: kernel radius in standard deviations when the size comes from sigma.
        method: ``"auto"`` (three 1-D passes), ``"separable"`` or ``"direct"``.

    Shape:
        - Input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        - Output: same number of dimensions.

    Example:
        >>> GaussianBlur3d(1.0)
        GaussianBlur3d(sigma=(1.0, 1.0, 1.0), kernel_size=(9, 9, 9), truncate=4.0, border='reflect', mode='same', method='auto')
    """

    def _planned_method(self) -> str:
        return "separable" if self.method == "auto" else self.method


class Sobel3d(_GradientBase, _FixedFilter3d):
    """3-D Sobel gradient (3x3x3; ``[-1, 0, 1]`` along one axis, ``[1, 2, 1]`` along the others).

    Args:
        output: ``"x"``, ``"y"``, ``"z"``, ``"xyz"`` (stacked at dim -4) or ``"magnitude"``.
        normalized: divide the kernels by the sum of their absolute values (32).
        border: ``"reflect"`` (default) or another border name, see
            :func:`cnnconv.functional3d.filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: magnitude ``sqrt(gx^2 + gy^2 + gz^2 + eps)``; 0 the Euclidean norm.
        method: ``"auto"``, ``"direct"`` or ``"separable"``.

    Shape:
        - Input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        - Output: same shape (``"xyz"``: ``(..., C, 3, D, H, W)``).

    Example:
        >>> Sobel3d("z")(torch.rand(2, 6, 6, 6)).shape
        torch.Size([2, 6, 6, 6])
    """

    _outputs = F3.SOBEL3D_OUTPUTS
    _factor_fn = staticmethod(gradient_factors3d)
    _apply_plan = staticmethod(apply_gradient_plan3d)

    def _make_plan(self) -> FilterPlan:
        return plan_filter3d(None, self.method, (self.smooth, self.smooth, self.diff))

    @property
    def kernel(self) -> torch.Tensor:
        """The x, y and z kernels stacked ``(3, 3, 3, 3)``."""
        s, d = self.smooth, self.diff
        return torch.stack((outer3(s, s, d), outer3(s, d, s), outer3(d, s, s)))


class Laplacian3d(_FixedFilter3d):
    """3x3x3 Laplacian (6- or 26-neighbour).

    Args:
        neighbours: 6 (face neighbours, centre -6, ``scipy.ndimage.laplace``) or 26 (centre -26).
        normalized: divide the kernel by the sum of its absolute values.
        border: ``"reflect"`` (default) or another border name, see
            :func:`cnnconv.functional3d.filter3d`.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: ``"auto"`` or ``"direct"`` (the kernel is not rank 1).

    Shape:
        - Input: ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        - Output: same number of dimensions.

    Example:
        >>> Laplacian3d(26)(torch.rand(1, 5, 5, 5)).shape
        torch.Size([1, 5, 5, 5])
    """

    def __init__(
        self,
        neighbours: int = 6,
        normalized: bool = False,
        border: str = "reflect",
        mode: str = "same",
        *,
        method: str = "auto",
    ) -> None:
        super().__init__(mode, border, method)
        if neighbours not in (6, 26):
            raise ValueError(f"neighbours must be 6 or 26, got {neighbours!r}")
        if method == "separable":
            raise ValueError("method='separable' needs a rank-1 kernel, got the Laplacian (rank > 1)")
        self._settings(neighbours=int(neighbours), normalized=bool(normalized))
        self._kernel_buffers("kernel")
        self.reset_parameters()

    kernel: torch.Tensor
    neighbours = _Setting()
    normalized = _Setting()

    def reset_parameters(self) -> None:
        self._refill(kernel=F3.laplacian_kernel3d(self.neighbours, self.normalized, torch.get_default_dtype(), None))

    def _make_plan(self) -> FilterPlan:
        return plan_filter3d(self.kernel, "direct")
