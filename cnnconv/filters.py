"""Fixed-kernel filter layers.

Each layer stores its arguments, keeps its kernels in non-persistent buffers (they follow
``.to()`` and stay out of ``state_dict``; nothing is trained) and its ``forward`` is one call
into :mod:`cnnconv.functional`, which decides how the filter is computed
(:func:`cnnconv.functional.filter2d`).

Example:
    >>> import torch
    >>> from cnnconv.filters import GaussianBlur, Sobel
    >>> x = torch.rand(2, 3, 32, 32)
    >>> GaussianBlur(2.0)(x).shape, Sobel()(x).shape
    (torch.Size([2, 3, 32, 32]), torch.Size([2, 3, 32, 32]))
"""

from __future__ import annotations

import torch
from torch import nn

from . import functional as CF
from . import kernels as K
from ._padding import check_border, check_mode

__all__ = ["Filter2d", "BoxBlur", "GaussianBlur", "Sobel", "Prewitt", "Scharr", "Laplacian", "Sharpen"]


class _FixedFilter(nn.Module):
    """Common arguments of the fixed-kernel layers: output ``mode``, ``border`` and ``method``."""

    def __init__(self, mode: str, border: str, method: str) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.border = check_border(border)
        self.method = CF._check_method(method)

    def _set_buffer(self, name: str, value: torch.Tensor) -> None:
        """Refill a kernel buffer, keeping the device and dtype it was moved to."""
        old = getattr(self, name, None)
        if isinstance(old, torch.Tensor):
            value = value.to(device=old.device, dtype=old.dtype)
        setattr(self, name, value)

    def _common_repr(self) -> str:
        return f"border={self.border!r}, mode={self.mode!r}, method={self.method!r}"


class Filter2d(_FixedFilter):
    """Depthwise correlation with a fixed kernel.

    Args:
        kernel: tensor ``(kh, kw)`` shared by all channels or ``(C, kh, kw)`` per channel, or a
            registered kernel name (``"sobel_x"``, ``"log"``...; see
            :func:`cnnconv.kernels.list_kernels`) built with ``kernel_kwargs``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
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

    def __init__(self, kernel, mode: str = "same", border: str = "zeros", *, method: str = "auto", **kernel_kwargs) -> None:
        super().__init__(mode, border, method)
        self.kernel_name = None
        if isinstance(kernel, str):
            self.kernel_name = kernel
            kernel = K.get_kernel(kernel, **kernel_kwargs)
        elif kernel_kwargs:
            raise TypeError(f"kernel_kwargs are only used with a kernel name, got {sorted(kernel_kwargs)}")
        if not isinstance(kernel, torch.Tensor):
            kernel = torch.as_tensor(kernel, dtype=torch.get_default_dtype())
        if kernel.ndim not in (2, 3) or kernel.numel() == 0:
            raise ValueError(f"kernel must have shape (kh, kw) or (C, kh, kw), got {tuple(kernel.shape)}")
        if kernel.is_complex() or not kernel.is_floating_point():
            raise TypeError(f"kernel must be a real floating point tensor, got dtype {kernel.dtype}")
        self.kernel_kwargs = dict(kernel_kwargs)
        kernel = kernel.detach().clone()
        self.register_buffer("kernel", kernel, persistent=False)
        # The kernel is fixed: find its structure once, here, instead of at every call.
        factors = K.separable_factors(kernel) if method in ("auto", "separable") else None
        self._method = method
        if method == "auto" and CF._box_scale(kernel) is not None and CF._use_box(*kernel.shape[-2:]):
            self._method, factors = "box", None
        self.register_buffer("ky", None if factors is None else factors[0], persistent=False)
        self.register_buffer("kx", None if factors is None else factors[1], persistent=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        factors = None if self.ky is None else (self.ky, self.kx)
        return CF.filter2d(input, self.kernel, self.mode, self.border, method=self._method, factors=factors)

    def extra_repr(self) -> str:
        name = f"{self.kernel_name!r}" if self.kernel_name is not None else "tensor"
        kw = "".join(f", {k}={v!r}" for k, v in self.kernel_kwargs.items())
        return f"kernel={name}, kernel_shape={tuple(self.kernel.shape)}{kw}, {self._common_repr()}"


class BoxBlur(_FixedFilter):
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

    def __init__(self, kernel_size=3, border: str = "reflect", mode: str = "same", *, normalized: bool = True, method: str = "auto") -> None:
        super().__init__(mode, border, method)
        self.kernel_size = CF._positive_size(kernel_size, "kernel_size")
        self.normalized = bool(normalized)
        self.register_buffer("kernel", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._set_buffer("kernel", K.box(self.kernel_size, normalized=self.normalized))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # Decided from the size alone, so compiled graphs need no checks of kernel values.
        method, factors = CF._box_plan(self.kernel, self.normalized, self.method)
        return CF.filter2d(input, self.kernel, self.mode, self.border, method=method, factors=factors)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, normalized={self.normalized}, {self._common_repr()}"


class GaussianBlur(_FixedFilter):
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

    def __init__(self, sigma, kernel_size=None, border: str = "reflect", mode: str = "same", *, truncate: float = 4.0, method: str = "auto") -> None:
        super().__init__(mode, border, method)
        self.sigma = CF._sigma_pair(sigma)
        if not truncate > 0:
            raise ValueError(f"truncate must be positive, got {truncate!r}")
        self.truncate = float(truncate)
        if kernel_size is None:
            kernel_size = tuple(K.gaussian_size_from_sigma(s, self.truncate) for s in self.sigma)
        self.kernel_size = CF._odd_size(kernel_size, "kernel_size")
        self.register_buffer("ky", None, persistent=False)
        self.register_buffer("kx", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._set_buffer("ky", K.gaussian1d(self.sigma[0], self.kernel_size[0]))
        self._set_buffer("kx", K.gaussian1d(self.sigma[1], self.kernel_size[1]))

    @property
    def kernel(self) -> torch.Tensor:
        """The 2-D kernel ``outer(ky, kx)``."""
        return torch.outer(self.ky, self.kx)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return CF.filter2d(input, None, self.mode, self.border, method=self.method, factors=(self.ky, self.kx))

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, kernel_size={self.kernel_size}, truncate={self.truncate}, {self._common_repr()}"


class _Gradient(_FixedFilter):
    _operator = "sobel"

    def __init__(self, output: str = "magnitude", normalized: bool = False, border: str = "reflect", mode: str = "same", *, eps: float = 0.0, method: str = "auto") -> None:
        super().__init__(mode, border, method)
        self.output = CF._check_choice(output, "output", CF.GRADIENT_OUTPUTS)
        self.normalized = bool(normalized)
        self.eps = CF._check_eps(eps)
        self.register_buffer("smooth", None, persistent=False)
        self.register_buffer("diff", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        smooth, diff = CF._derivative_factors(self._operator, self.normalized, torch.get_default_dtype(), None)
        self._set_buffer("smooth", smooth)
        self._set_buffer("diff", diff)

    @property
    def kernel_x(self) -> torch.Tensor:
        """The x-derivative kernel ``outer(smooth, diff)``."""
        return torch.outer(self.smooth, self.diff)

    @property
    def kernel_y(self) -> torch.Tensor:
        """The y-derivative kernel (transpose of :attr:`kernel_x`)."""
        return torch.outer(self.diff, self.smooth)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return CF.apply_gradient(input, self.smooth, self.diff, self.output, self.border, self.mode, eps=self.eps, method=self.method)

    def extra_repr(self) -> str:
        return f"output={self.output!r}, normalized={self.normalized}, eps={self.eps}, {self._common_repr()}"


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


class Laplacian(_FixedFilter):
    """3x3 Laplacian (4- or 8-neighbour).

    Args:
        neighbours: 4 (``[[0,1,0],[1,-4,1],[0,1,0]]``) or 8 (centre -8).
        normalized: divide the kernel by the sum of its absolute values.
        border: ``"zeros"``, ``"reflect"`` (default), ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: see :func:`cnnconv.functional.filter2d`.

    Shape:
        - Input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        - Output: same number of dimensions.

    Example:
        >>> Laplacian(8)(torch.rand(1, 8, 8)).shape
        torch.Size([1, 8, 8])
    """

    def __init__(self, neighbours: int = 4, normalized: bool = False, border: str = "reflect", mode: str = "same", *, method: str = "auto") -> None:
        super().__init__(mode, border, method)
        if neighbours not in (4, 8):
            raise ValueError(f"neighbours must be 4 or 8, got {neighbours!r}")
        self.neighbours = int(neighbours)
        self.normalized = bool(normalized)
        self.register_buffer("kernel", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._set_buffer("kernel", K.laplacian(self.neighbours, normalized=self.normalized))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return CF.filter2d(input, self.kernel, self.mode, self.border, method=self.method)

    def extra_repr(self) -> str:
        return f"neighbours={self.neighbours}, normalized={self.normalized}, {self._common_repr()}"


class Sharpen(_FixedFilter):
    """3x3 sharpen ``[[0,-1,0],[-1,5,-1],[0,-1,0]]``.

    Args:
        border: ``"zeros"``, ``"reflect"`` (default), ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        method: see :func:`cnnconv.functional.filter2d`.

    Shape:
        - Input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        - Output: same number of dimensions.

    Example:
        >>> Sharpen()
        Sharpen(border='reflect', mode='same', method='auto')
    """

    def __init__(self, border: str = "reflect", mode: str = "same", *, method: str = "auto") -> None:
        super().__init__(mode, border, method)
        self.register_buffer("kernel", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._set_buffer("kernel", K.sharpen())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return CF.filter2d(input, self.kernel, self.mode, self.border, method=self.method)

    def extra_repr(self) -> str:
        return self._common_repr()
