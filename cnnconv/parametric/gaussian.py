"""Gaussian kernels differentiable in sigma, the Gaussian filters and their learnable layers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnconv import kernels as K
from cnnconv.functional import filter2d

from .base import (
    _check_border,
    _check_input,
    _check_size,
    _KernelCache,
    _SigmaMixin,
)

__all__ = [
    "LearnableGaussianBlur",
    "LearnableGaussianDerivative",
    "gaussian_blur",
    "gaussian_derivative_filter",
    "gaussian_derivative_kernel1d",
    "gaussian_kernel1d",
    "hermite_gaussian1d",
]


# --------------------------------------------------------------------------- differentiable kernels
def gaussian_kernel1d(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Sampled Gaussian ``exp(-x^2 / (2 sigma^2))`` on ``x = arange(size) - (size-1)/2``, sum 1.

    :func:`cnnconv.kernels.gaussian1d` with a sigma tensor: differentiable in ``sigma``.

    Args:
        sigma: tensor of any shape ``S`` (positive).
        size: odd kernel length.

    Returns:
        Tensor ``(*S, size)``.

    Example:
        >>> gaussian_kernel1d(torch.tensor(1.0), 5).sum().item()
        1.0
    """
    return K.gaussian1d(sigma, _check_size(size, "size"))


def gaussian_derivative_kernel1d(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """First derivative of Gaussian for correlation, ``x g(x)`` scaled to gain 1 on a unit ramp.

    :func:`cnnconv.kernels.gaussian_derivative1d` (``order=1``) with a sigma tensor:
    differentiable in ``sigma``.

    Returns:
        Tensor ``(*sigma.shape, size)``.

    Example:
        >>> d = gaussian_derivative_kernel1d(torch.tensor(1.0, dtype=torch.float64), 7)
        >>> round(float((d * torch.arange(7.0, dtype=torch.float64)).sum()), 6)
        1.0
    """
    return K.gaussian_derivative1d(sigma, 1, _check_size(size, "size"))


def hermite_gaussian1d(sigma: torch.Tensor, size: int, order: int) -> torch.Tensor:
    """``(-1)^n d^n/dx^n`` of the unit-sum Gaussian: ``sigma^-n He_n(x / sigma) g(x)``.

    :func:`cnnconv.kernels.hermite_gaussian1d` with a sigma tensor: differentiable in
    ``sigma``; odd orders are positive on a rising ramp under correlation (like Sobel).

    Returns:
        Tensor ``(*sigma.shape, size)``.
    """
    return K.hermite_gaussian1d(sigma, _check_size(size, "size"), order)


# --------------------------------------------------------------------------- functional
def _as_channel_sigma(sigma, channels: int, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(sigma, torch.Tensor):
        sigma = torch.tensor(float(sigma), dtype=like.dtype, device=like.device)
    sigma = sigma.to(like.dtype)
    if sigma.numel() not in (1, channels):
        raise ValueError(f"sigma must have 1 or {channels} values, got shape {tuple(sigma.shape)}")
    return sigma.reshape(-1).expand(channels)


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
    c, kernel_size = _check_filter_args(x, kernel_size, border)
    g = gaussian_kernel1d(_as_channel_sigma(sigma, c, x), kernel_size)  # (C, k)
    return _blur(x, g, border)


def _check_filter_args(x: Any, kernel_size: Any, border: Any) -> tuple[int, int]:
    """The checks of the functional filters: ``(channels, kernel_size)``."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"input must have shape (B, C, H, W), got {getattr(x, 'shape', type(x))}")
    kernel_size = _check_size(kernel_size)
    _check_border(border)
    return x.shape[1], kernel_size


def _blur(x: torch.Tensor, g: torch.Tensor, border: str) -> torch.Tensor:
    """Correlation with ``outer(g, g)`` (``same`` size): ``g`` is ``(k,)`` or one per channel ``(C, k)``."""
    return filter2d(x, None, "same", border, factors=(g, g))


def _factors(sigma: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-D Gaussian ``g`` and its first derivative ``d``, each ``(*S, k)`` for sigma of shape ``S``."""
    return gaussian_kernel1d(sigma, size), gaussian_derivative_kernel1d(sigma, size)


def _derivative_pair(g: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Gx, Gy)`` kernels ``(*S, k, k)`` from the factors of :func:`_factors`."""
    gx = g.unsqueeze(-1) * d.unsqueeze(-2)  # rows smooth, columns differentiate
    gy = d.unsqueeze(-1) * g.unsqueeze(-2)
    return gx, gy


def _steer(gx: torch.Tensor, gy: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``cos(theta) Gx + sin(theta) Gy`` for ``theta`` of shape ``(1 or C,)``."""
    t = theta[:, None, None]
    return torch.cos(t) * gx + torch.sin(t) * gy


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
    c, kernel_size = _check_filter_args(x, kernel_size, border)
    s = _as_channel_sigma(sigma, c, x)
    theta = (
        _as_channel_sigma(orientation, c, x)
        if isinstance(orientation, torch.Tensor)
        else (torch.full((c,), float(orientation), dtype=x.dtype, device=x.device))
    )
    k = _steer(*_derivative_pair(*_factors(s, kernel_size)), theta)
    return filter2d(x, k, "same", border)


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
        self._init_sigma(channels, "channels", sigma, kernel_size, truncate, border, per_channel, device, dtype)
        self.channels = channels
        self.truncate = float(truncate)

    def kernel1d(self) -> torch.Tensor:
        """The 1-D kernels ``(1 or channels, kernel_size)`` (cached in eval without grad)."""
        return self._cached(lambda: gaussian_kernel1d(self.sigma, self.kernel_size))

    def kernel(self) -> torch.Tensor:
        """The 2-D kernels ``(1 or channels, kernel_size, kernel_size)``."""
        g = self.kernel1d()
        return g.unsqueeze(-1) * g.unsqueeze(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.channels)
        g = self.kernel1d()
        return _blur(x, g if self.per_channel else g[0], self.border)

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
        if isinstance(orientation, bool) or not isinstance(orientation, (int, float, torch.Tensor)):
            raise TypeError(f"orientation must be a number, got {type(orientation).__name__}: {orientation!r}")
        n = self._init_sigma(
            in_channels, "in_channels", sigma, kernel_size, truncate, border, per_channel, device, dtype
        )
        self.in_channels = in_channels
        theta = torch.as_tensor(orientation, dtype=self.log_sigma.dtype).to(self.log_sigma.device)
        if theta.numel() not in (1, n):
            raise ValueError(f"orientation must have 1 or {n} values, got shape {tuple(theta.shape)}")
        self.orientation = nn.Parameter(theta.reshape(-1).expand(n).clone())
        self.log_sigma.requires_grad_(learn_sigma)
        self.orientation.requires_grad_(learn_orientation)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1-D Gaussian and derivative ``(g, d)``, each ``(1 or C, k)`` (cached in eval without grad)."""
        return self._cached(lambda: _factors(self.sigma, self.kernel_size))

    def kernel_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Gx, Gy)``, each ``(1 or C, k, k)``."""
        return _derivative_pair(*self.factors())

    def kernel(self) -> torch.Tensor:
        """The steered kernels ``(1 or C, k, k)``."""
        return _steer(*self.kernel_pair(), self.orientation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels)
        k = self.kernel()
        return filter2d(x, k if self.per_channel else k[0], "same", self.border)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """The unsteered x/y derivatives, ``(B, 2C, H, W)`` as ``[gx_0, gy_0, gx_1, ...]``."""
        _check_input(x, self.in_channels)
        g, d = self.factors() if self.per_channel else (f[0] for f in self.factors())
        gx = filter2d(x, None, "same", self.border, factors=(g, d))  # rows smooth, columns differentiate
        gy = filter2d(x, None, "same", self.border, factors=(d, g))
        return torch.stack([gx, gy], dim=2).flatten(1, 2)

    def extra_repr(self) -> str:
        s = [round(v, 4) for v in self.sigma.detach().tolist()]
        t = [round(v, 4) for v in self.orientation.detach().tolist()]
        return (
            f"in_channels={self.in_channels}, sigma={s}, orientation={t}, "
            f"kernel_size={self.kernel_size}, border={self.border!r}"
        )
