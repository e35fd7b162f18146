"""Small models used by the experiments.

- :class:`EdgeDetector`: one learnable convolution with two outputs, the x and y derivatives,
  optionally initialised from a hand-designed pair and constrained (zero-sum, antisymmetric...),
  optionally a pixel-difference convolution (:class:`cnnconv.pdc.PixelDifferenceConv2d`).
- :class:`SmallCNN`: a small classifier whose first convolution (the attribute ``first``, a
  :class:`cnnconv.learnable.LearnableConv2d`) is hand-designed and frozen, hand-designed and
  trainable, or random.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnconv.constraints import constrain
from cnnconv.edges import (
    gradient_direction,
    gradient_kernels,
    gradient_magnitude,
    thin_edges,
)
from cnnconv.learnable import LearnableConv2d
from cnnconv.pdc import PDC_TYPES, PixelDifferenceConv2d, reparameterize_pdc

__all__ = ["DEFAULT_BANK", "FIRST_LAYER_MODES", "EdgeDetector", "SmallCNN"]

FIRST_LAYER_MODES = ("random", "hand", "learnable_hand")

#: Hand-designed first-layer bank of :class:`SmallCNN` (3x3, centred in larger kernels).
DEFAULT_BANK = (
    "identity",
    ("gaussian", {"sigma": 1.0, "size": 3}),
    "sobel_x",
    "sobel_y",
    "laplacian4",
    "laplacian8",
    "sharpen",
    "box",
)


def _check_positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v


class EdgeDetector(nn.Module):
    """A single learnable convolution with 2 outputs ``[gx, gy]`` (an edge detector).

    Args:
        kernel_size: size of the learned kernels (odd recommended; even sizes follow PyTorch's
            ``padding="same"``: ``(k-1)//2`` before).
        init: ``"random"`` (``nn.Conv2d``'s initialisation), a hand-designed pair
            ``"sobel"`` / ``"scharr"`` / ``"prewitt"`` / ``"dog"`` (centred in the kernel; must
            fit), or a ``(2, kh, kw)`` tensor / pair of tensors.
        constraint: ``None``, a constraint name or a sequence of names for
            :func:`cnnconv.constraints.constrain` (e.g. ``("zero_sum", "antisymmetric")``).
        in_channels: input channels; a hand-designed pair is applied to the channel mean
            (see :meth:`LearnableConv2d.from_kernels`).
        sigma: scale for ``init="dog"``.
        normalized: ramp-gain-1 normalisation of the hand-designed pair.
        noise: relative noise added to a hand-designed initialisation.
        generator: random generator for the noise.
        padding_mode: border handling (default ``"replicate"``, as :class:`GradientFilter`).
        method: convolution engine, ``"auto"`` / ``"direct"`` / ``"fft"``.
        bias: learn a bias (default off: a derivative has none).
        pdc: ``None`` (a vanilla convolution) or a pixel-difference type ``"cd"`` / ``"ad"`` /
            ``"rd"`` of :class:`cnnconv.pdc.PixelDifferenceConv2d` (``ad`` and ``rd``: 3x3 only;
            ``rd`` applies 5x5 equivalent kernels). A hand-designed pair must be reachable
            exactly by the type (Sobel: ``cd`` and ``ad``); :meth:`reparameterize` turns the
            trained layer into a plain convolution.
        theta: the pixel-difference ``theta`` (1: pure pixel difference).

    Shape:
        - Input: ``(B, in_channels, H, W)``
        - Output: ``(B, 2, H, W)``

    Example:
        >>> det = EdgeDetector(3, init="sobel")
        >>> det(torch.rand(1, 1, 8, 8)).shape
        torch.Size([1, 2, 8, 8])
    """

    def __init__(
        self,
        kernel_size: int = 3,
        init="random",
        constraint=None,
        in_channels: int = 1,
        *,
        sigma: float = 1.0,
        normalized: bool = True,
        noise: float = 0.0,
        generator: torch.Generator | None = None,
        padding_mode: str = "replicate",
        method: str = "auto",
        bias: bool = False,
        pdc: str | None = None,
        theta: float = 1.0,
        eps: float = 1e-12,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _check_positive_int(kernel_size, "kernel_size")
        _check_positive_int(in_channels, "in_channels")
        self.kernel_size = kernel_size
        self.in_channels = in_channels
        self.eps = float(eps)
        if pdc is not None and pdc not in PDC_TYPES[1:]:
            raise ValueError(f"pdc must be None or one of {', '.join(PDC_TYPES[1:])}, got {pdc!r}")
        self.init = init if isinstance(init, str) else "tensor"
        self.pdc = pdc
        self.conv: LearnableConv2d | PixelDifferenceConv2d
        if isinstance(init, str) and init == "random":
            layer: dict[str, Any] = {
                "padding": "same",
                "bias": bias,
                "padding_mode": padding_mode,
                "device": device,
                "dtype": dtype,
                "method": method,
            }
            if pdc is not None:
                self.conv = PixelDifferenceConv2d(in_channels, 2, kernel_size, pdc=pdc, theta=theta, **layer)
            else:
                self.conv = LearnableConv2d(in_channels, 2, kernel_size, **layer)
        else:
            pair = gradient_kernels(
                init,
                sigma=sigma,
                normalized=normalized,
                kernel_size=kernel_size if isinstance(init, str) and init == "dog" else None,
                dtype=torch.float64,
            )
            if pair.shape[-1] > kernel_size or pair.shape[-2] > kernel_size:
                raise ValueError(
                    f"init {self.init!r} has {pair.shape[-2]}x{pair.shape[-1]} kernels, larger than "
                    f"kernel_size={kernel_size}"
                )
            options: dict[str, Any] = {
                "noise": noise,
                "bias": bias,
                "padding": "same",
                "padding_mode": padding_mode,
                "generator": generator,
                "kernel_size": kernel_size,
                "method": method,
                "device": device,
                "dtype": dtype,
            }
            if pdc is None:
                self.conv = LearnableConv2d.from_kernels(list(pair.unbind(0)), in_channels, **options)
            else:
                self.conv = PixelDifferenceConv2d.from_kernels(
                    list(pair.unbind(0)), in_channels, pdc=pdc, theta=theta, **options
                )
        if constraint is not None:
            if not isinstance(constraint, (str, Sequence)):
                raise TypeError(f"constraint must be a name or a sequence of names, got {constraint!r}")
            names = (constraint,) if isinstance(constraint, str) else tuple(constraint)
            constrain(self.conv, *names)
        self.constraint = constraint

    @property
    def weight(self) -> torch.Tensor:
        """The current (constrained) kernels ``(2, in_channels, k, k)`` (for a pixel-difference
        layer its equivalent kernels, 5x5 for ``rd``)."""
        if isinstance(self.conv, PixelDifferenceConv2d):
            return self.conv.equivalent_weight()
        return self.conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def reparameterize(self) -> EdgeDetector:
        """Replace a pixel-difference layer (in place) by a plain ``nn.Conv2d`` with the same outputs.

        Returns:
            The detector (unchanged without ``pdc``).
        """
        reparameterize_pdc(self)  # replaces the children in place
        return self

    def magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable gradient magnitude ``(B, 1, H, W)``."""
        return gradient_magnitude(self(x), self.eps)

    def direction(self, x: torch.Tensor) -> torch.Tensor:
        """Gradient direction ``atan2(gy, gx)``, radians ``(B, 1, H, W)``."""
        return gradient_direction(self(x))

    def thin(self, x: torch.Tensor) -> torch.Tensor:
        """Non-maximum-suppressed magnitude ``(B, 1, H, W)`` for evaluation."""
        return thin_edges(self(x), eps=self.eps)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, init={self.init!r}, constraint={self.constraint!r}, pdc={self.pdc!r}"


class SmallCNN(nn.Module):
    """Small image classifier whose first layer is hand-designed, learnable-from-hand, or random.

    Layout: ``first`` (k x k, ``same``, bias) -> ReLU -> conv 3x3 (width) -> BN -> ReLU ->
    max-pool 2 -> conv 3x3 (2 width) -> BN -> ReLU -> global average pool -> linear.

    Args:
        num_classes: output classes.
        in_channels: input channels.
        first_layer: ``"hand"`` (the bank, frozen), ``"learnable_hand"`` (the bank, trained)
            or ``"random"`` (``nn.Conv2d`` initialisation, trained). The first layer has
            ``len(kernels)`` outputs in every mode, so the variants are comparable.
        width: channels of the second convolution.
        kernel_size: size of the first layer's kernels (3x3 bank kernels are centred).
        kernels: the hand-designed bank (default :data:`DEFAULT_BANK`, 8 kernels); names,
            ``(name, kwargs)`` pairs or tensors, applied to the channel mean.
        noise: relative noise on the hand-designed kernels (``hand`` and ``learnable_hand``).
        generator: random generator for the noise.

    The first convolution is the attribute ``first`` (module name ``"first"``), a
    :class:`cnnconv.learnable.LearnableConv2d`.

    Example:
        >>> net = SmallCNN(10, first_layer="hand")
        >>> net(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        first_layer: str = "random",
        width: int = 16,
        kernel_size: int = 3,
        *,
        kernels=DEFAULT_BANK,
        noise: float = 0.0,
        generator: torch.Generator | None = None,
        method: str = "auto",
    ) -> None:
        super().__init__()
        _check_positive_int(num_classes, "num_classes")
        _check_positive_int(in_channels, "in_channels")
        _check_positive_int(width, "width")
        _check_positive_int(kernel_size, "kernel_size")
        if first_layer not in FIRST_LAYER_MODES:
            raise ValueError(f"first_layer must be one of {', '.join(FIRST_LAYER_MODES)}, got {first_layer!r}")
        self.first_layer = first_layer
        n_first = len(kernels)
        if first_layer == "random":
            self.first = LearnableConv2d(in_channels, n_first, kernel_size, padding="same", method=method)
        else:
            self.first = LearnableConv2d.from_kernels(
                list(kernels),
                in_channels,
                noise=noise,
                bias=True,
                padding="same",
                generator=generator,
                kernel_size=kernel_size,
                method=method,
            )
            if first_layer == "hand":
                self.first.freeze()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(n_first, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.first(x)))

    def extra_repr(self) -> str:
        return f"first_layer={self.first_layer!r}"
