"""Convolutions whose kernels are learned combinations of a Gaussian-derivative basis."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnconv.engines.padding import output_padding, pad

from .base import (
    _check_border,
    _check_channels,
    _check_input,
    _check_size,
    _exp_sigma,
    _init_log_sigma,
    _KernelCache,
)
from .gaussian import hermite_gaussian1d

__all__ = ["StructuredConv2d"]


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
        _check_channels(in_channels, "in_channels")
        _check_channels(out_channels, "out_channels")
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
        if self.padding == "valid":
            pads = (0, 0, 0, 0)
        elif self.padding == "same":
            pads = output_padding(self.kernel_size, "same")
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
