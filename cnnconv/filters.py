"""Fixed-kernel filter layers.

Each layer stores its arguments as read-only attributes (a different filter is a new layer), keeps its kernels in
non-persistent buffers (they follow ``.to()`` and stay out of ``state_dict``; nothing is trained) and its
``forward`` is one call into :mod:`cnnconv.functional`, which decides how the filter is computed
(:func:`cnnconv.functional.filter2d`). Each layer makes its :class:`~cnnconv.functional.plan.FilterPlan` when it is
built, and again when its buffers are moved (``.to()``, ``.double()``) or a kernel buffer is changed in place: what
was derived from it (separable factors, the choice of engine) is derived again. Every layer pads with
``border="reflect"`` unless told otherwise.

The layers can be captured as graphs: ``torch.export.export``, ``torch.onnx.export`` (both exporters),
``torch.compile(fullgraph=True)`` and ``torch.jit.trace`` record the border padding and one or two
depthwise convolutions (see :func:`cnnconv.functional.filter2d`).

Example:
    >>> import torch
    >>> from cnnconv.filters import GaussianBlur, Sobel
    >>> x = torch.rand(2, 3, 32, 32)
    >>> GaussianBlur(2.0)(x).shape, Sobel()(x).shape
    (torch.Size([2, 3, 32, 32]), torch.Size([2, 3, 32, 32]))
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import cast

import torch
from torch import nn

from cnnconv import kernels as K
from cnnconv._utils.checks import check_choice
from cnnconv.engines.checks import check_eps
from cnnconv.engines.padding import check_border, check_mode, tracing
from cnnconv.functional.blur import box_plan, gaussian_factors, gaussian_settings, int_sizes
from cnnconv.functional.correlation import apply_plan
from cnnconv.functional.gradients import (
    GRADIENT_OUTPUTS,
    apply_gradient_plan,
    derivative_factors,
)
from cnnconv.functional.plan import FilterPlan, check_method, kernel_copy, plan_filter, plan_gradient

__all__ = ["BoxBlur", "Filter2d", "GaussianBlur", "Laplacian", "Prewitt", "Scharr", "Sharpen", "Sobel"]


class _Setting:
    """A constructor argument of a fixed layer, readable but not assignable: the layer's
    buffers were built from it, so a different value needs a new layer. A dict is kept as such
    (a read-only view cannot be copied or pickled) and read through a read-only view."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        value = self if obj is None else obj.__dict__["_setting_values"][self.name]
        return MappingProxyType(value) if isinstance(value, dict) else value

    def __set__(self, obj, value) -> None:
        cls = type(obj).__name__
        raise AttributeError(
            f"{cls}.{self.name} is fixed when the layer is built; build a new {cls} with {self.name}={value!r} instead"
        )


class _FixedFilter(nn.Module):
    """Common arguments of the fixed-kernel layers: output ``mode``, ``border`` and ``method``."""

    mode = _Setting()
    border = _Setting()
    method = _Setting()

    def __init__(self, mode: str, border: str, method: str) -> None:
        super().__init__()
        self._settings(mode=check_mode(mode), border=check_border(border), method=check_method(method))
        self._filter_plan: FilterPlan | None = None
        self._planned_for: torch.Tensor | None = None

    def _settings(self, **values) -> None:
        """Store the values of :class:`_Setting` attributes (at construction only)."""
        self.__dict__.setdefault("_setting_values", {}).update(values)

    def _make_plan(self) -> FilterPlan:
        """The plan of the layer's current buffers."""
        raise NotImplementedError

    def _replan(self) -> None:
        """Plan again from the current buffers (and remember the kernel values planned for)."""
        self._filter_plan = self._make_plan()
        kernel = self._buffers.get("kernel")
        self._planned_for = None if kernel is None else kernel.detach().clone()

    def _apply(self, *args, **kwargs):
        module = super()._apply(*args, **kwargs)
        if self._filter_plan is not None:  # the buffers were replaced: plan for the new ones
            self._replan()
        return module

    def _kernel_buffers(self, *names: str) -> None:
        """Register the non-persistent kernel buffers ``names``, empty until :meth:`_refill`."""
        for name in names:
            self.register_buffer(name, None, persistent=False)

    def _refill(self, **buffers: torch.Tensor) -> None:
        """Refill kernel buffers, keeping the device and dtype they were moved to, and plan again."""
        for name, value in buffers.items():
            old = getattr(self, name, None)
            if isinstance(old, torch.Tensor):
                value = value.to(device=old.device, dtype=old.dtype)
            setattr(self, name, value)
        self._replan()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return apply_plan(input, cast(FilterPlan, self._filter_plan), self.mode, self.border)

    def _common_repr(self) -> str:
        return f"border={self.border!r}, mode={self.mode!r}, method={self.method!r}"

    def extra_repr(self) -> str:
        """The layer's own settings in the order they were stored, then the common ones."""
        values = self.__dict__["_setting_values"]
        own = [f"{k}={v!r}, " for k, v in values.items() if k not in ("mode", "border", "method")]
        return "".join(own) + self._common_repr()


class _KernelFilter(_FixedFilter):
    """A fixed layer whose ``kernel`` buffer is followed: changed in place, it is planned again."""

    kernel: torch.Tensor

    def _follow_kernel(self) -> None:
        """Plan again when the ``kernel`` buffer's values differ from those last planned for. The values are compared
        with a kept copy (``torch.equal``, one pass over a small kernel), because writes through ``.data``, numpy or
        a reused address move no version counter. Skipped while a graph is captured."""
        if tracing():
            return
        kernel = self.kernel
        seen = self._planned_for
        layout = (kernel.shape, kernel.dtype, kernel.device)
        if seen is None or (seen.shape, seen.dtype, seen.device) != layout or not torch.equal(seen, kernel):
            self._replan()

    def _make_plan(self) -> FilterPlan:
        return plan_filter(self.kernel, self.method)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._follow_kernel()
        return super().forward(input)


class _BuiltKernelFilter(_KernelFilter):
    """A kernel layer whose kernel is built from its settings by ``_build_kernel``."""

    def _build_kernel(self) -> torch.Tensor:
        raise NotImplementedError

    def _init_kernel(self) -> None:
        self._kernel_buffers("kernel")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._refill(kernel=self._build_kernel())


class Filter2d(_KernelFilter):
    """Depthwise correlation with a fixed kernel.

    Args:
        kernel: tensor ``(kh, kw)`` shared by all channels or ``(C, kh, kw)`` per channel, or a
            registered kernel name (``"sobel_x"``, ``"log"``...; see
            :func:`cnnconv.kernels.list_kernels`) built with ``kernel_kwargs``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"reflect"`` (default, as every fixed filter: see :mod:`cnnconv.functional`),
            ``"zeros"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        method: ``"auto"``, ``"direct"``, ``"separable"``, ``"fft"`` or ``"box"``.
        **kernel_kwargs: builder arguments when ``kernel`` is a name (e.g. ``sigma=2.0``).

    Shape:
        - Input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        - Output: same number of dimensions; spatial size from ``mode``.

    Example:
        >>> f = Filter2d("gaussian", sigma=1.0, border="reflect")
        >>> f(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self, kernel, mode: str = "same", border: str = "reflect", *, method: str = "auto", **kernel_kwargs
    ) -> None:
        super().__init__(mode, border, method)
        kernel_name = kernel if isinstance(kernel, str) else None
        if kernel_name is not None:
            kernel = K.get_kernel(kernel_name, **kernel_kwargs)
        elif kernel_kwargs:
            raise TypeError(f"kernel_kwargs are only used with a kernel name, got {sorted(kernel_kwargs)}")
        kernel = kernel_copy(kernel, {2: "(kh, kw)", 3: "(C, kh, kw)"})
        self._settings(kernel_name=kernel_name, kernel_kwargs=dict(kernel_kwargs))
        self.register_buffer("kernel", kernel, persistent=False)
        self._kernel_buffers("ky", "kx")
        # Find the kernel's structure once, here, instead of at every call.
        self._replan()

    kernel_name = _Setting()
    kernel_kwargs = _Setting()

    def _make_plan(self) -> FilterPlan:
        plan = plan_filter(self.kernel, self.method)
        factors: tuple[torch.Tensor | None, ...] = (None, None) if plan.factors is None else plan.factors
        self.ky, self.kx = factors
        return plan

    def extra_repr(self) -> str:
        name = f"{self.kernel_name!r}" if self.kernel_name is not None else "tensor"
        kw = "".join(f", {k}={v!r}" for k, v in self.kernel_kwargs.items())
        return f"kernel={name}, kernel_shape={tuple(self.kernel.shape)}{kw}, {self._common_repr()}"


class _Box(_FixedFilter):
    """The settings of the 2-D and 3-D box blur layers (``_ndim`` sizes)."""

    _ndim = 2
    _init_kernel: Callable[[], None]  # of the layer kind it is mixed with

    def __init__(
        self,
        kernel_size=3,
        border: str = "reflect",
        mode: str = "same",
        *,
        normalized: bool = True,
        method: str = "auto",
    ) -> None:
        super().__init__(mode, border, method)
        self._settings(kernel_size=int_sizes(kernel_size, self._ndim, "kernel_size"), normalized=bool(normalized))
        self._init_kernel()

    kernel_size = _Setting()
    normalized = _Setting()


class BoxBlur(_Box, _BuiltKernelFilter):
    """Box (mean) blur, computed with cumulative sums for large windows.

    Args:
        kernel_size: int or ``(kh, kw)``.
        border: ``"zeros"``, ``"reflect"`` (default, OpenCV's ``BORDER_REFLECT_101``),
            ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        normalized: mean (True) or window sum (False).
        method: see :func:`cnnconv.functional.filter2d`.

    Shape:
        - Input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        - Output: same number of dimensions.

    Example:
        >>> BoxBlur(5)(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    def _build_kernel(self) -> torch.Tensor:
        return K.box(self.kernel_size, normalized=self.normalized)

    def _make_plan(self) -> FilterPlan:
        kernel = self.kernel
        # As built, then moved by .to() / .double(): the values the untouched buffer holds.
        box = self._build_kernel().to(device=kernel.device, dtype=kernel.dtype)
        if not torch.equal(kernel, box):  # changed in place: filtered as the kernel it now holds
            return plan_filter(kernel, self.method)
        # Decided from the size alone, so compiled graphs need no checks of kernel values.
        return box_plan(kernel, self.normalized, self.method)


class _Separable(_FixedFilter):
    """A layer whose kernel is kept as its 1-D factors, one buffer per axis (``_factor_names``)."""

    _factor_names: tuple[str, ...] = ("ky", "kx")

    def __init__(self, mode: str, border: str, method: str) -> None:
        super().__init__(mode, border, method)
        self._kernel_buffers(*self._factor_names)

    def _set_factors(self, factors) -> None:
        self._refill(**dict(zip(self._factor_names, factors, strict=True)))


class _Gaussian(_Separable):
    """The settings and factors of the 2-D and 3-D Gaussian blur layers."""

    def __init__(
        self,
        sigma,
        kernel_size=None,
        border: str = "reflect",
        mode: str = "same",
        *,
        truncate: float = 4.0,
        method: str = "auto",
    ) -> None:
        super().__init__(mode, border, method)
        sigma, truncate, size = gaussian_settings(sigma, kernel_size, truncate, len(self._factor_names))
        self._settings(sigma=sigma, kernel_size=size, truncate=truncate)
        self.reset_parameters()

    sigma = _Setting()
    truncate = _Setting()
    kernel_size = _Setting()

    def reset_parameters(self) -> None:
        self._set_factors(gaussian_factors(self.sigma, self.kernel_size, torch.get_default_dtype(), None))


class GaussianBlur(_Gaussian):
    """Gaussian blur as two 1-D passes.

    Args:
        sigma: positive float or ``(sigma_y, sigma_x)``.
        kernel_size: odd int or ``(kh, kw)``; default ``2 * round(truncate * sigma) + 1``.
        border: ``"zeros"``, ``"reflect"`` (default), ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        truncate: kernel radius in standard deviations when the size comes from sigma.
        method: see :func:`cnnconv.functional.filter2d`.

    Shape:
        - Input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        - Output: same number of dimensions.

    Example:
        >>> GaussianBlur(1.5)
        GaussianBlur(sigma=(1.5, 1.5), kernel_size=(13, 13), truncate=4.0, border='reflect', mode='same', method='auto')
    """

    ky: torch.Tensor
    kx: torch.Tensor

    def _make_plan(self) -> FilterPlan:
        return plan_filter(None, self.method, (self.ky, self.kx))

    @property
    def kernel(self) -> torch.Tensor:
        """The 2-D kernel ``outer(ky, kx)``."""
        return torch.outer(self.ky, self.kx)


class _GradientBase(_FixedFilter):
    """The settings, factors and ``forward`` of the 2-D and 3-D gradient layers."""

    _operator = "sobel"
    _outputs = GRADIENT_OUTPUTS
    _factor_fn = staticmethod(derivative_factors)
    _apply_plan = staticmethod(apply_gradient_plan)

    def __init__(
        self,
        output: str = "magnitude",
        normalized: bool = False,
        border: str = "reflect",
        mode: str = "same",
        *,
        eps: float = 0.0,
        method: str = "auto",
    ) -> None:
        super().__init__(mode, border, method)
        self._settings(
            output=check_choice(output, "output", self._outputs), normalized=bool(normalized), eps=check_eps(eps)
        )
        self._kernel_buffers("smooth", "diff")
        self.reset_parameters()

    smooth: torch.Tensor
    diff: torch.Tensor
    output = _Setting()
    normalized = _Setting()
    eps = _Setting()

    def reset_parameters(self) -> None:
        smooth, diff = self._factor_fn(self._operator, self.normalized, torch.get_default_dtype(), None)
        self._refill(smooth=smooth, diff=diff)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        plan = cast(FilterPlan, self._filter_plan)  # made in __init__
        return self._apply_plan(input, plan, self.output, self.border, self.mode, eps=self.eps)


class _Gradient(_GradientBase):
    def _make_plan(self) -> FilterPlan:
        return plan_gradient(self.smooth, self.diff, self.method, self.output)

    @property
    def kernel_x(self) -> torch.Tensor:
        """The x-derivative kernel ``outer(smooth, diff)``."""
        return torch.outer(self.smooth, self.diff)

    @property
    def kernel_y(self) -> torch.Tensor:
        """The y-derivative kernel (transpose of :attr:`kernel_x`)."""
        return torch.outer(self.diff, self.smooth)


_GRADIENT_DOC = """{title} gradient filter (3x3; x positive where intensity grows to the right).

    Args:
        output: ``"x"``, ``"y"``, ``"xy"`` (stacked at dim -3), ``"magnitude"`` or
            ``"direction"`` (``atan2(gy, gx)``, radians).
        normalized: divide the kernels by the sum of their absolute values.
        border: ``"zeros"``, ``"reflect"`` (default), ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        eps: magnitude ``sqrt(gx^2 + gy^2 + eps)``; 0 computes ``hypot(gx, gy)``.
        method: see :func:`cnnconv.functional.filter2d`.

    Shape:
        - Input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        - Output: same shape (``"xy"``: ``(..., C, 2, H, W)``).

    Example:
        >>> {title}(output="xy")(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 2, 8, 8])
    """


class Sobel(_Gradient):
    __doc__ = _GRADIENT_DOC.format(title="Sobel")
    _operator = "sobel"


class Prewitt(_Gradient):
    __doc__ = _GRADIENT_DOC.format(title="Prewitt")
    _operator = "prewitt"


class Scharr(_Gradient):
    __doc__ = _GRADIENT_DOC.format(title="Scharr")
    _operator = "scharr"


class Laplacian(_BuiltKernelFilter):
    """3x3 Laplacian (4- or 8-neighbour).

    Args:
        neighbours: 4 (``[[0,1,0],[1,-4,1],[0,1,0]]``) or 8 (centre -8).
        normalized: divide the kernel by the sum of its absolute values.
        {small_filter_args}

    Example:
        >>> Laplacian(8)(torch.rand(1, 8, 8)).shape
        torch.Size([1, 8, 8])
    """

    def __init__(
        self,
        neighbours: int = 4,
        normalized: bool = False,
        border: str = "reflect",
        mode: str = "same",
        *,
        method: str = "auto",
    ) -> None:
        super().__init__(mode, border, method)
        if neighbours not in (4, 8):
            raise ValueError(f"neighbours must be 4 or 8, got {neighbours!r}")
        self._settings(neighbours=int(neighbours), normalized=bool(normalized))
        self._init_kernel()

    neighbours = _Setting()
    normalized = _Setting()

    def _build_kernel(self) -> torch.Tensor:
        return K.laplacian(self.neighbours, normalized=self.normalized)


class Sharpen(_BuiltKernelFilter):
    """3x3 sharpen ``[[0,-1,0],[-1,5,-1],[0,-1,0]]``.

    Args:
        {small_filter_args}

    Example:
        >>> Sharpen()
        Sharpen(border='reflect', mode='same', method='auto')
    """

    def __init__(self, border: str = "reflect", mode: str = "same", *, method: str = "auto") -> None:
        super().__init__(mode, border, method)
        self._init_kernel()

    def _build_kernel(self) -> torch.Tensor:
        return K.sharpen()


_SMALL_FILTER_ARGS = """border: ``"zeros"``, ``"reflect"`` (default), ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: see :func:`cnnconv.functional.filter2d`.

    Shape:
        - Input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        - Output: same number of dimensions."""
Laplacian.__doc__ = cast(str, Laplacian.__doc__).replace("{small_filter_args}", _SMALL_FILTER_ARGS)
Sharpen.__doc__ = cast(str, Sharpen.__doc__).replace("{small_filter_args}", _SMALL_FILTER_ARGS)
