"""Parametric learnable filters: between fixed kernels and free ones.

- :class:`LearnableGaussianBlur`: a Gaussian blur whose sigma is a trained parameter.
- :class:`LearnableGaussianDerivative`: a derivative-of-Gaussian edge filter with learnable
  sigma and orientation, steered from the x/y pair (``cos(theta) Gx + sin(theta) Gy``).
- :class:`StructuredConv2d`: kernels that are learned combinations of a fixed
  Gaussian-derivative basis ("structured receptive fields").

Conventions shared by all three:

- **Sigma stays positive**: it is stored as ``log_sigma`` and used as ``exp(log_sigma)``
  (``log_sigma`` clamped to ``[-30, 30]`` so that a wild optimizer step cannot overflow it).
- **The kernel size is fixed at construction** (default ``2 * round(truncate * sigma0) + 1``
  from the initial sigma, as scipy.ndimage sizes it). It does not follow sigma during training:
  a size that jumps with sigma would make the output a discontinuous function of sigma and break
  its gradient. If sigma is expected to grow, pass a larger ``kernel_size`` (e.g. 21 for sigma up
  to about 2.5 with ``truncate=4``).
- **Kernels are rebuilt from the parameters on every forward in training mode**, and cached in
  eval mode when no gradient is needed (``torch.no_grad()`` / ``torch.inference_mode()``). The
  cache is used only while the parameters equal a copy kept with it (so every write counts,
  including ``param.data`` writes and fused optimizer steps), and is dropped on ``.train()`` /
  ``.eval()`` and dtype/device moves. In eval mode with gradients enabled the kernel is
  rebuilt, so gradients still reach sigma.
- Kernels are written for correlation (PyTorch's convention) and the derivative sign follows
  :mod:`cnnconv.kernels`: the x-derivative is positive where intensity grows to the right, the
  y-derivative where it grows downwards; a first-derivative kernel has gain 1 on a unit ramp.
- Orientation ``theta`` is in radians, measured from +x (columns) towards +y (rows, downwards),
  the same convention as :func:`cnnconv.edges.gradient_direction` (``atan2(gy, gx)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnconv.engines.padding import BORDERS, pad

__all__ = [
    "gaussian_kernel1d",
    "gaussian_derivative_kernel1d",
    "hermite_gaussian1d",
    "gaussian_blur",
    "gaussian_derivative_filter",
    "LearnableGaussianBlur",
    "LearnableGaussianDerivative",
    "StructuredConv2d",
]


# --------------------------------------------------------------------------- checks
def _check_sigma0(sigma) -> None:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, torch.Tensor)):
        raise TypeError(f"sigma must be a number, got {type(sigma).__name__}: {sigma!r}")
    values = sigma.detach().flatten().tolist() if isinstance(sigma, torch.Tensor) else [sigma]
    if not values or not all(v > 0 and math.isfinite(v) for v in values):
        raise ValueError(f"sigma must be positive, got {sigma!r}")


def _check_size(kernel_size, name: str = "kernel_size") -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"{name} must be an int, got {type(kernel_size).__name__}: {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{name} must be odd and positive, got {kernel_size}")
    return kernel_size


def _size_from_sigma(sigma: float, truncate: float) -> int:
    if not truncate > 0:
        raise ValueError(f"truncate must be positive, got {truncate!r}")
    return 2 * int(round(truncate * float(sigma))) + 1


def _check_border(border) -> str:
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(sorted(BORDERS))}, got {border!r}")
    return border


def _check_input(x, channels: int, name: str = "input") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}")


def _grid(size: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2.0


# --------------------------------------------------------------------------- differentiable kernels
def gaussian_kernel1d(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Sampled Gaussian ``exp(-x^2 / (2 sigma^2))`` on ``x = arange(size) - (size-1)/2``, sum 1.

    Differentiable with respect to ``sigma`` (same values as :func:`cnnconv.kernels.gaussian1d`).

    Args:
        sigma: tensor of any shape ``S`` (positive).
        size: odd kernel length.

    Returns:
        Tensor ``(*S, size)``.

    Example:
        >>> gaussian_kernel1d(torch.tensor(1.0), 5).sum().item()
        1.0
    """
    size = _check_size(size, "size")
    x = _grid(size, sigma)
    s = sigma.unsqueeze(-1)
    # softmax = exp / sum, stable; the floor keeps a sigma that underflowed to 0 a finite delta.
    var = (s * s).clamp_min(torch.finfo(sigma.dtype).tiny)
    return torch.softmax(-(x * x) / (2 * var), dim=-1)


def gaussian_derivative_kernel1d(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """First derivative of Gaussian for correlation, ``x g(x)`` scaled to gain 1 on a unit ramp.

    Same values as :func:`cnnconv.kernels.gaussian_derivative1d` with ``order=1``, but
    differentiable with respect to ``sigma``.

    Returns:
        Tensor ``(*sigma.shape, size)``.

    Example:
        >>> d = gaussian_derivative_kernel1d(torch.tensor(1.0, dtype=torch.float64), 7)
        >>> round(float((d * torch.arange(7.0, dtype=torch.float64)).sum()), 6)
        1.0
    """
    g = gaussian_kernel1d(sigma, size)
    x = _grid(size, sigma)
    d = x * g
    return d / (d * x).sum(-1, keepdim=True).clamp_min(torch.finfo(sigma.dtype).tiny)


def hermite_gaussian1d(sigma: torch.Tensor, size: int, order: int) -> torch.Tensor:
    """``(-1)^n d^n/dx^n`` of the unit-sum Gaussian: ``sigma^-n He_n(x / sigma) g(x)``.

    ``He_n`` are the probabilists' Hermite polynomials; the sign makes odd orders positive on a
    rising ramp under correlation (like Sobel). Differentiable in ``sigma``.

    Returns:
        Tensor ``(*sigma.shape, size)``.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    g = gaussian_kernel1d(sigma, size)
    s = sigma.unsqueeze(-1)
    t = _grid(size, sigma) / s
    he_prev, he = torch.ones_like(t), t  # He_0, He_1
    if order == 0:
        return g
    for n in range(1, order):
        he_prev, he = he, t * he - n * he_prev
    return he * g / s**order


# --------------------------------------------------------------------------- functional
def _as_channel_sigma(sigma, channels: int, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(sigma, torch.Tensor):
        sigma = torch.tensor(float(sigma), dtype=like.dtype, device=like.device)
    sigma = sigma.to(like.dtype)
    if sigma.numel() not in (1, channels):
        raise ValueError(f"sigma must have 1 or {channels} values, got shape {tuple(sigma.shape)}")
    return sigma.reshape(-1).expand(channels)


def _same_pads(k: int) -> tuple[int, int, int, int]:
    r = k // 2
    return (r, r, r, r)


def gaussian_blur(x: torch.Tensor, sigma, kernel_size: int, border: str = "reflect") -> torch.Tensor:
    """Gaussian blur, differentiable with respect to ``sigma`` (two 1-D passes, ``same`` size).

    Args:
        x: ``(B, C, H, W)``.
        sigma: positive number or tensor with 1 or ``C`` values.
        kernel_size: odd, fixed length of the 1-D kernels.
        border: ``zeros``, ``reflect`` (scipy ``mirror``), ``replicate`` or ``circular``.

    Returns:
        Tensor ``(B, C, H, W)``.

    Example:
        >>> gaussian_blur(torch.rand(1, 3, 8, 8), 1.0, 5).shape
        torch.Size([1, 3, 8, 8])
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"input must have shape (B, C, H, W), got {getattr(x, 'shape', type(x))}")
    kernel_size = _check_size(kernel_size)
    _check_border(border)
    c = x.shape[1]
    g = gaussian_kernel1d(_as_channel_sigma(sigma, c, x), kernel_size)  # (C, k)
    return _separable(x, g, g, border)


def _separable(x: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, border: str) -> torch.Tensor:
    c, k = ky.shape
    xp = pad(x, _same_pads(k), border)
    y = F.conv2d(xp, ky.reshape(c, 1, k, 1).to(x.dtype), groups=c)
    return F.conv2d(y, kx.reshape(c, 1, 1, k).to(x.dtype), groups=c)


def _derivative_pair(sigma: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Gx, Gy)`` kernels ``(*S, k, k)`` for sigma of shape ``S``."""
    g = gaussian_kernel1d(sigma, size)
    d = gaussian_derivative_kernel1d(sigma, size)
    gx = g.unsqueeze(-1) * d.unsqueeze(-2)  # rows smooth, columns differentiate
    gy = d.unsqueeze(-1) * g.unsqueeze(-2)
    return gx, gy


def gaussian_derivative_filter(
    x: torch.Tensor, sigma, orientation, kernel_size: int, border: str = "reflect"
) -> torch.Tensor:
    """Directional derivative of Gaussian ``cos(theta) * Gx + sin(theta) * Gy``, per channel.

    Differentiable with respect to ``sigma`` and ``orientation`` (radians, from +x towards +y).

    Args:
        x: ``(B, C, H, W)``.
        sigma: positive number or tensor with 1 or ``C`` values.
        orientation: number or tensor with 1 or ``C`` values.
        kernel_size: odd, fixed.
        border: border mode.

    Returns:
        Tensor ``(B, C, H, W)``.

    Example:
        >>> gaussian_derivative_filter(torch.rand(1, 1, 9, 9), 1.0, 0.0, 7).shape
        torch.Size([1, 1, 9, 9])
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"input must have shape (B, C, H, W), got {getattr(x, 'shape', type(x))}")
    kernel_size = _check_size(kernel_size)
    _check_border(border)
    c = x.shape[1]
    s = _as_channel_sigma(sigma, c, x)
    theta = _as_channel_sigma(orientation, c, x) if isinstance(orientation, torch.Tensor) else (
        torch.full((c,), float(orientation), dtype=x.dtype, device=x.device)
    )
    gx, gy = _derivative_pair(s, kernel_size)
    k = torch.cos(theta)[:, None, None] * gx + torch.sin(theta)[:, None, None] * gy
    return F.conv2d(pad(x, _same_pads(kernel_size), border), k.unsqueeze(1), groups=c)


# --------------------------------------------------------------------------- kernel cache
def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.device == b.device and a.shape == b.shape and torch.equal(a, b)


class _KernelCache(nn.Module):
    """Rebuild a kernel on every training forward; cache it in eval when no gradient is needed.

    The cache holds a copy of the parameters and buffers it was built from and is used only
    while they are equal to it (``torch.equal``): version counters and addresses miss writes
    such as ``param.data.mul_()``, numpy views, fused optimizer steps or ``param.data = ...``
    on reused memory, and inference tensors have no version counter. A kernel built under
    ``torch.inference_mode()`` is reused only there (autograd cannot record inference tensors).
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache = None

    def _cached(self, build):
        params = list(self.parameters())
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        if self.training or needs_grad:
            self._cache = None
            return build()
        tensors = params + list(self.buffers())
        inference = torch.is_inference_mode_enabled()
        if self._cache is not None:
            copies, was_inference, kernel = self._cache
            same = len(copies) == len(tensors) and all(map(_same_tensor, copies, tensors))
            if same and was_inference == inference:
                return kernel
        with torch.no_grad():
            self._cache = ([t.detach().clone() for t in tensors], inference, build())
        return self._cache[2]

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._cache = None
        return super()._apply(fn, *args, **kwargs)


class _SigmaMixin:
    log_sigma: nn.Parameter

    @property
    def sigma(self) -> torch.Tensor:
        """Current sigma, ``exp(log_sigma)`` (always positive; log_sigma clamped to +-30)."""
        return _exp_sigma(self.log_sigma)

    def set_sigma(self, sigma) -> None:
        """Set sigma (number or tensor of the parameter's shape) without tracking gradients."""
        _check_sigma0(sigma)
        with torch.no_grad():
            value = torch.as_tensor(sigma, dtype=self.log_sigma.dtype, device=self.log_sigma.device)
            self.log_sigma.copy_(value.log().expand_as(self.log_sigma))


def _exp_sigma(log_sigma: torch.Tensor) -> torch.Tensor:
    # The clamp keeps sigma and sigma^2 finite and non-zero in float32 after any optimizer step.
    return log_sigma.clamp(-30.0, 30.0).exp()


def _init_log_sigma(sigma, n: int, device, dtype) -> nn.Parameter:
    _check_sigma0(sigma)
    value = torch.as_tensor(sigma, dtype=dtype or torch.get_default_dtype()).to(device)
    if value.numel() not in (1, n):
        raise ValueError(f"sigma must have 1 or {n} values, got shape {tuple(value.shape)}")
    return nn.Parameter(value.reshape(-1).log().expand(n).clone())


# --------------------------------------------------------------------------- modules
class LearnableGaussianBlur(_SigmaMixin, _KernelCache):
    """Depthwise Gaussian blur whose sigma is learned.

    Args:
        channels: number of input (= output) channels.
        sigma: initial sigma (positive).
        kernel_size: odd, fixed kernel length; default ``2 * round(truncate * sigma) + 1`` from
            the initial sigma. It does not change while sigma trains (see the module docstring).
        truncate: radius in sigmas for the default size.
        border: ``reflect`` (default, scipy ``mirror``), ``zeros``, ``replicate``, ``circular``.
        per_channel: one sigma per channel instead of one shared sigma.
        device, dtype: of the parameter.

    Shape:
        - Input: ``(B, channels, H, W)``
        - Output: ``(B, channels, H, W)``

    Example:
        >>> blur = LearnableGaussianBlur(3, sigma=1.0, kernel_size=9)
        >>> blur(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(
        self,
        channels: int,
        sigma=1.0,
        kernel_size: int | None = None,
        *,
        truncate: float = 4.0,
        border: str = "reflect",
        per_channel: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        _check_sigma0(sigma)
        self.channels = channels
        self.truncate = float(truncate)
        if kernel_size is None:
            s0 = float(torch.as_tensor(sigma).max()) if isinstance(sigma, torch.Tensor) else float(sigma)
            kernel_size = _size_from_sigma(s0, truncate)
        self.kernel_size = _check_size(kernel_size)
        self.border = _check_border(border)
        self.per_channel = bool(per_channel)
        self.log_sigma = _init_log_sigma(sigma, channels if per_channel else 1, device, dtype)

    def kernel1d(self) -> torch.Tensor:
        """The 1-D kernels ``(1 or channels, kernel_size)`` (cached in eval without grad)."""
        return self._cached(lambda: gaussian_kernel1d(self.sigma, self.kernel_size))

    def kernel(self) -> torch.Tensor:
        """The 2-D kernels ``(1 or channels, kernel_size, kernel_size)``."""
        g = self.kernel1d()
        return g.unsqueeze(-1) * g.unsqueeze(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels)
        g = self.kernel1d().expand(self.channels, -1)
        return _separable(x, g, g, self.border)

    def extra_repr(self) -> str:
        s = self.sigma.detach()
        sig = f"{s.item():.4g}" if s.numel() == 1 else str([round(v, 4) for v in s.tolist()])
        return (
            f"channels={self.channels}, sigma={sig}, kernel_size={self.kernel_size}, "
            f"border={self.border!r}, per_channel={self.per_channel}"
        )


class LearnableGaussianDerivative(_SigmaMixin, _KernelCache):
    """Derivative-of-Gaussian filter with learnable sigma and orientation (steerable).

    The x/y pair ``Gx``, ``Gy`` (first derivatives of a Gaussian of scale sigma, gain 1 on a unit
    ramp) is steered to ``cos(theta) Gx + sin(theta) Gy``: the derivative along the direction
    ``theta`` (radians, from +x towards +y, i.e. clockwise on screen).

    Args:
        in_channels: channels, filtered independently (depthwise). First, like
            :class:`LearnableGaussianBlur`'s ``channels``.
        sigma: initial sigma (positive).
        orientation: initial theta in radians.
        kernel_size: odd, fixed; default ``2 * round(truncate * sigma) + 1``.
        truncate: radius in sigmas for the default size.
        border: border mode (default ``reflect``).
        learn_sigma, learn_orientation: which parameters train.
        per_channel: one sigma and one theta per channel instead of shared ones.

    Shape:
        - Input: ``(B, C, H, W)``
        - Output of ``forward``: ``(B, C, H, W)`` (the steered derivative); of ``gradient``:
          ``(B, 2C, H, W)`` ordered ``[gx_0, gy_0, gx_1, gy_1, ...]``.

    Example:
        >>> dog = LearnableGaussianDerivative(1, sigma=1.0, orientation=0.0)
        >>> dog(torch.rand(1, 1, 16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(
        self,
        in_channels: int = 1,
        sigma=1.0,
        orientation=0.0,
        kernel_size: int | None = None,
        *,
        truncate: float = 4.0,
        border: str = "reflect",
        learn_sigma: bool = True,
        learn_orientation: bool = True,
        per_channel: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        _check_sigma0(sigma)
        if isinstance(orientation, bool) or not isinstance(orientation, (int, float, torch.Tensor)):
            raise TypeError(f"orientation must be a number, got {type(orientation).__name__}: {orientation!r}")
        self.in_channels = in_channels
        if kernel_size is None:
            s0 = float(torch.as_tensor(sigma).max()) if isinstance(sigma, torch.Tensor) else float(sigma)
            kernel_size = _size_from_sigma(s0, truncate)
        self.kernel_size = _check_size(kernel_size)
        self.border = _check_border(border)
        self.per_channel = bool(per_channel)
        n = in_channels if per_channel else 1
        self.log_sigma = _init_log_sigma(sigma, n, device, dtype)
        theta = torch.as_tensor(orientation, dtype=self.log_sigma.dtype).to(self.log_sigma.device)
        if theta.numel() not in (1, n):
            raise ValueError(f"orientation must have 1 or {n} values, got shape {tuple(theta.shape)}")
        self.orientation = nn.Parameter(theta.reshape(-1).expand(n).clone())
        self.log_sigma.requires_grad_(learn_sigma)
        self.orientation.requires_grad_(learn_orientation)

    def kernel_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Gx, Gy)``, each ``(1 or C, k, k)``."""
        return self._cached(lambda: _derivative_pair(self.sigma, self.kernel_size))

    def kernel(self) -> torch.Tensor:
        """The steered kernels ``(1 or C, k, k)``."""
        gx, gy = self.kernel_pair()
        t = self.orientation[:, None, None]
        return torch.cos(t) * gx + torch.sin(t) * gy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels)
        c = self.in_channels
        k = self.kernel().expand(c, -1, -1).unsqueeze(1).to(x.dtype)
        return F.conv2d(pad(x, _same_pads(self.kernel_size), self.border), k, groups=c)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """The unsteered x/y derivatives, ``(B, 2C, H, W)`` as ``[gx_0, gy_0, gx_1, ...]``."""
        _check_input(x, self.in_channels)
        c = self.in_channels
        gx, gy = self.kernel_pair()
        k = torch.stack([gx.expand(c, -1, -1), gy.expand(c, -1, -1)], dim=1)  # (C, 2, k, k)
        k = k.reshape(2 * c, 1, self.kernel_size, self.kernel_size).to(x.dtype)
        return F.conv2d(pad(x, _same_pads(self.kernel_size), self.border), k, groups=c)

    def extra_repr(self) -> str:
        s = [round(v, 4) for v in self.sigma.detach().tolist()]
        t = [round(v, 4) for v in self.orientation.detach().tolist()]
        return (
            f"in_channels={self.in_channels}, sigma={s}, orientation={t}, "
            f"kernel_size={self.kernel_size}, border={self.border!r}"
        )


def _basis_orders(order: int) -> list[tuple[int, int]]:
    """``(ny, nx)`` derivative orders with ``ny + nx <= order``, by total order then nx first."""
    return [(n - nx, nx) for n in range(order + 1) for nx in range(n, -1, -1)]


class StructuredConv2d(_KernelCache):
    """Convolution whose kernels are learned combinations of a Gaussian-derivative basis.

    ``weight[o, i] = sum_b alpha[o, i, b] * basis_b`` with ``basis_b(y, x) = h_ny(y) h_nx(x)``
    for all derivative orders ``ny + nx <= order`` (6 functions for ``order=2``: G, Gx, Gy, Gxx,
    Gxy, Gyy), where ``h_n`` is :func:`hermite_gaussian1d`; every basis kernel is scaled to
    unit L2 norm. The basis is fixed unless ``learn_sigma=True``.

    Args:
        in_channels, out_channels: as ``nn.Conv2d``.
        kernel_size: odd, fixed size of the kernels.
        sigma: scale of the Gaussian basis (positive).
        order: highest derivative order (0 to 4).
        stride: as ``nn.Conv2d``.
        padding: ``"same"`` (default), ``"valid"`` or an int.
        padding_mode: ``zeros``, ``reflect``, ``replicate``, ``circular``.
        bias: add a learned bias.
        learn_sigma: train sigma as well.

    The composed kernel is exposed as the ``weight`` property ``(out, in, k, k)`` (not stored in
    the ``state_dict``, which holds ``alpha``, ``log_sigma`` and ``bias``).

    Example:
        >>> conv = StructuredConv2d(1, 4, 7, sigma=1.5)
        >>> conv(torch.rand(2, 1, 16, 16)).shape
        torch.Size([2, 4, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        sigma=1.0,
        order: int = 2,
        *,
        stride: int = 1,
        padding="same",
        padding_mode: str = "zeros",
        bias: bool = True,
        learn_sigma: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 4:
            raise ValueError(f"order must be an integer from 0 to 4, got {order!r}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if not (padding in ("same", "valid") or (isinstance(padding, int) and padding >= 0)):
            raise ValueError(f"padding must be 'same', 'valid' or a non-negative int, got {padding!r}")
        if padding == "same" and stride != 1:
            raise ValueError(f"padding='same' needs stride=1, got stride={stride}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _check_size(kernel_size)
        self.order = order
        self.stride = stride
        self.padding = padding
        self.padding_mode = _check_border(padding_mode)
        self.orders = _basis_orders(order)
        self.log_sigma = _init_log_sigma(sigma, 1, device, dtype)
        self.log_sigma.requires_grad_(learn_sigma)
        nb = len(self.orders)
        self.alpha = nn.Parameter(torch.empty(out_channels, in_channels, nb, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    @property
    def sigma(self) -> torch.Tensor:
        """Scale of the basis, ``exp(log_sigma)``."""
        return _exp_sigma(self.log_sigma)

    def reset_parameters(self) -> None:
        """Random coefficients giving about ``nn.Conv2d``'s per-kernel energy (unit-norm basis)."""
        nb = len(self.orders)
        std = 1.0 / math.sqrt(3.0 * self.in_channels * nb)
        with torch.no_grad():
            self.alpha.normal_(0.0, std)
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
                self.bias.uniform_(-bound, bound)

    def basis(self) -> torch.Tensor:
        """The basis kernels ``(n_basis, k, k)``, each with unit L2 norm."""
        s = self.sigma[0]
        h = [hermite_gaussian1d(s, self.kernel_size, n) for n in range(self.order + 1)]
        b = torch.stack([h[ny].unsqueeze(-1) * h[nx].unsqueeze(-2) for ny, nx in self.orders])
        return b / b.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()

    @property
    def weight(self) -> torch.Tensor:
        """The composed kernels ``(out, in, k, k)``."""
        return self._cached(lambda: torch.einsum("oib,bhw->oihw", self.alpha, self.basis()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels)
        w = self.weight.to(x.dtype)
        k = self.kernel_size
        if self.padding == "valid":
            pads = (0, 0, 0, 0)
        elif self.padding == "same":
            pads = _same_pads(k)
        else:
            pads = (self.padding,) * 4
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.conv2d(pad(x, pads, self.padding_mode), w, b, stride=self.stride)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"sigma={self.sigma.item():.4g}, order={self.order}, stride={self.stride}, "
            f"padding={self.padding!r}, padding_mode={self.padding_mode!r}, bias={self.bias is not None}"
        )
