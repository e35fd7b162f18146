"""Learnable convolution layers that start from hand-designed kernels.

:class:`LearnableConv2d` is a drop-in subclass of :class:`torch.nn.Conv2d` (through
:class:`cnnconv.conv.FFTConv2d`, whose engine choice it uses): same constructor
arguments in the same order, same parameters and ``state_dict`` keys, so its weights load into a
plain ``nn.Conv2d`` and back. It adds

- :meth:`LearnableConv2d.from_kernels`: build a layer whose output channels are hand-designed
  kernels (registry names such as ``"sobel_x"`` or tensors), optionally perturbed by noise;
- :meth:`LearnableConv2d.freeze` / :meth:`LearnableConv2d.unfreeze`;
- ``method="auto" | "direct" | "fft"``: ``"fft"`` runs :func:`cnnconv.fft.fft_conv2d` (same
  semantics as ``F.conv2d``), ``"auto"`` asks :func:`cnnconv.planner.choose_method`.

Constraints (zero-sum, antisymmetric, ...) are added with :func:`cnnconv.constraints.constrain`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from cnnconv import conv as _conv
from cnnconv.kernels.transforms import centre_pad

__all__ = ["METHODS", "LearnableConv2d"]

METHODS = _conv.METHODS


def _build_kernel(spec) -> tuple[torch.Tensor, str]:
    """Turn a registry name, ``(name, kwargs)`` pair or tensor into a float64 ``(kh, kw)`` kernel."""
    from cnnconv.kernels import get_kernel

    if isinstance(spec, str):
        return get_kernel(spec, dtype=torch.float64), spec
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict):
        name, kwargs = spec
        return get_kernel(name, **{**kwargs, "dtype": torch.float64}), name
    if isinstance(spec, torch.Tensor):
        if spec.ndim != 2:
            raise ValueError(f"kernel tensors must be 2-D (kh, kw), got shape {tuple(spec.shape)}")
        if not spec.is_floating_point():
            raise TypeError(f"kernel tensors must be floating point, got dtype {spec.dtype}")
        return spec.detach().to(device="cpu", dtype=torch.float64), "tensor"
    raise TypeError(
        f"kernels must be registry names, (name, kwargs) pairs or 2-D tensors, got {type(spec).__name__}: {spec!r}"
    )


def _check_kernel_size(kernel_size) -> tuple[int, int]:
    """``kernel_size`` as ``(kh, kw)``: an int or a pair of positive ints."""
    size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    if not (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in size)
    ):
        raise ValueError(f"kernel_size must be an int or a pair of positive ints, got {kernel_size!r}")
    return tuple(size)


def _parse_kernels(kernels, in_channels, noise, channel_mode) -> list[tuple[torch.Tensor, str]]:
    """Check the common arguments of ``from_kernels`` and build each kernel: a list of
    ``(float64 CPU kernel, name)``."""
    if isinstance(kernels, str) or (isinstance(kernels, tuple) and len(kernels) == 2 and isinstance(kernels[1], dict)):
        kernels = [kernels]
    elif isinstance(kernels, torch.Tensor):
        if kernels.ndim == 2:
            kernels = [kernels]
        elif kernels.ndim == 3:
            kernels = list(kernels.unbind(0))
        else:
            raise ValueError(f"a kernel tensor must be (kh, kw) or (n, kh, kw), got shape {tuple(kernels.shape)}")
    if not isinstance(kernels, Sequence) or len(kernels) == 0:
        raise ValueError(f"kernels must be a non-empty sequence, got {kernels!r}")
    if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise < math.inf:
        raise ValueError(f"noise must be a finite non-negative number, got {noise!r}")
    if channel_mode not in ("mean", "sum"):
        raise ValueError(f"channel_mode must be 'mean' or 'sum', got {channel_mode!r}")

    built = [_build_kernel(k) for k in kernels]
    for i, (k, name) in enumerate(built):
        if not torch.isfinite(k).all():
            bad = k[~torch.isfinite(k)][0].item()
            raise ValueError(f"kernels must be finite, got {bad} in kernel {i} ({name})")
    return built


def _add_noise(bank: torch.Tensor, noise: float, generator) -> torch.Tensor:
    """``bank`` ``(n, kh, kw)`` plus i.i.d. Gaussian noise of ``noise * rms`` of each kernel."""
    if noise == 0:
        return bank
    gdev = generator.device if generator is not None else "cpu"
    eps = torch.randn(bank.shape, generator=generator, device=gdev, dtype=torch.float64).cpu()
    return bank + noise * bank.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() * eps


def _largest_size(built: list[tuple[torch.Tensor, str]]) -> tuple[int, int]:
    """The size of the largest kernel of ``built``, per axis."""
    return (max(k.shape[0] for k, _ in built), max(k.shape[1] for k, _ in built))


def _centred_bank(
    built: list[tuple[torch.Tensor, str]], size: tuple[int, int] | None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """The kernels centred in ``size`` (default: the largest), ``(n, kh, kw)`` float64, and the size."""
    size = _largest_size(built) if size is None else size
    return torch.stack([centre_pad(k, size) for k, _ in built]), size


#: ``weights(built, size)`` -> ``(bank, size)``: the layer weights ``(n, kh, kw)`` for the parsed
#: kernels and the requested ``kernel_size`` (``None``: the builder's default).
_WeightBuilder = Callable[
    [list[tuple[torch.Tensor, str]], "tuple[int, int] | None"], tuple[torch.Tensor, tuple[int, int]]
]


def _from_kernels(
    cls: type,
    kernels: Any,
    in_channels: int,
    weights: _WeightBuilder,
    layer_options: dict[str, Any],
    *,
    noise: float = 0.0,
    bias: bool = False,
    padding: Any = "same",
    padding_mode: str = "zeros",
    generator: torch.Generator | None = None,
    kernel_size: Any = None,
    channel_mode: str = "mean",
    stride: Any = 1,
    dilation: Any = 1,
    method: str = "auto",
    device: Any = None,
    dtype: Any = None,
) -> Any:
    """``from_kernels`` of :class:`LearnableConv2d` and :class:`cnnconv.pdc.PixelDifferenceConv2d`.

    Parses the kernels, asks ``weights`` for the weight bank and size, builds
    ``cls(in_channels, n, size, ..., **layer_options)``, fills every input channel (plus the
    relative noise) and sets ``kernel_names``.
    """
    built = _parse_kernels(kernels, in_channels, noise, channel_mode)
    bank, size = weights(built, None if kernel_size is None else _check_kernel_size(kernel_size))
    layer = cls(
        in_channels,
        len(built),
        size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=1,
        bias=bias,
        padding_mode=padding_mode,
        device=device,
        dtype=dtype,
        method=method,
        **layer_options,
    )
    _fill(layer, _add_noise(bank, noise, generator), channel_mode)
    layer.kernel_names = [name for _, name in built]
    return layer


def _fill(layer, bank: torch.Tensor, channel_mode: str) -> None:
    """Copy ``bank`` ``(out, kh, kw)`` into every input channel of ``layer.weight`` (divided by
    the number of input channels for ``channel_mode="mean"``) and zero the bias."""
    in_channels = layer.weight.shape[1]
    scale = 1.0 / in_channels if channel_mode == "mean" else 1.0
    weight = (bank * scale).unsqueeze(1).expand(-1, in_channels, -1, -1)
    with torch.no_grad():
        layer.weight.copy_(weight.to(layer.weight.dtype))
        if layer.bias is not None:
            layer.bias.zero_()


class LearnableConv2d(_conv.FFTConv2d):
    """``nn.Conv2d`` with hand-designed initialisation, freezing and a choice of engine.

    A subclass of :class:`cnnconv.conv.FFTConv2d` (itself an ``nn.Conv2d``): the engine choice,
    the eval-mode spectrum cache and ``last_method`` are the FFT layer's.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: exactly as :class:`torch.nn.Conv2d` (same order).
        method: ``"direct"`` (``F.conv2d``), ``"fft"`` (:func:`cnnconv.fft.fft_conv2d`) or
            ``"auto"`` (chosen per input shape by :func:`cnnconv.planner.choose_method`; the
            planner's ``"separable"`` answer runs direct, because a learned kernel is not
            rank 1 in general). Keyword only.

    Shape:
        - Input: ``(B, in_channels, H, W)``
        - Output: as ``nn.Conv2d``.

    The ``state_dict`` has exactly ``nn.Conv2d``'s keys (``weight``, ``bias``), so
    ``nn.Conv2d(...).load_state_dict(layer.state_dict())`` works and vice versa. (A layer with
    constraints stores ``parametrizations.weight.original`` instead; call
    :func:`cnnconv.constraints.remove_constraints` first, or save
    :func:`cnnconv.constraints.export_state_dict`'s checkpoint of the model.) :func:`cnnconv.conv.convert_back`
    leaves these layers alone.

    Example:
        >>> layer = LearnableConv2d.from_kernels(["sobel_x", "sobel_y"], in_channels=1)
        >>> layer(torch.rand(2, 1, 16, 16)).shape
        torch.Size([2, 2, 16, 16])
    """

    _convert_back = False

    kernel_names: list[str] | None = None  # set by from_kernels

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_kernels(cls, kernels, in_channels: int = 1, **options: Any) -> LearnableConv2d:
        """Build a layer with one output channel per hand-designed kernel.

        Multi-channel input: each kernel is placed on every input channel. With
        ``channel_mode="mean"`` (default) it is divided by ``in_channels``, so output ``o`` is
        kernel ``o`` applied to the mean of the input channels (a grey image repeated over the
        channels gives exactly the single-channel response). ``channel_mode="sum"`` keeps the
        kernel unscaled on every channel (kernel applied to the channel sum).

        Args:
            kernels: sequence of registry names (``"sobel_x"``), ``(name, kwargs)`` pairs
                (``("gaussian", {"sigma": 1.5})``), 2-D tensors, or one ``(n, kh, kw)`` tensor;
                every value finite.
            in_channels: number of input channels.
            noise: relative noise: each kernel gets i.i.d. Gaussian noise of standard deviation
                ``noise * rms(kernel)`` (scale free, so normalised and raw Sobel behave alike).
                0 reproduces the hand-designed filters exactly. A finite number >= 0.
            bias: add a bias (initialised to zero, so the output is still exact).
            padding: as ``nn.Conv2d`` (default ``"same"``: output size = input size; for even
                kernels PyTorch puts ``(k-1)//2`` before and the rest after).
            padding_mode: as ``nn.Conv2d``.
            generator: random generator for the noise (reproducible initialisation).
            kernel_size: size of the layer's kernels, an int or a ``(kh, kw)`` pair; smaller
                kernels are zero-padded around their centre (default: the largest kernel's size).
            channel_mode: ``"mean"`` or ``"sum"``, see above.
            stride, dilation, method, device, dtype: layer arguments.

            Every argument after ``in_channels`` is keyword only; the defaults are
            ``noise=0.0, bias=False, padding="same", padding_mode="zeros", generator=None,
            kernel_size=None, channel_mode="mean", stride=1, dilation=1, method="auto",
            device=None, dtype=None``.

        Returns:
            A :class:`LearnableConv2d` with ``out_channels = len(kernels)``, ``groups=1``, and
            ``kernel_names`` listing where each kernel came from.

        Example:
            >>> layer = LearnableConv2d.from_kernels(["sobel_x", ("gaussian", {"sigma": 1.0})])
            >>> layer.weight.shape
            torch.Size([2, 1, 9, 9])
        """
        return _from_kernels(cls, kernels, in_channels, _centred_bank, {}, **options)

    # ------------------------------------------------------------------ training state
    def freeze(self) -> LearnableConv2d:
        """Stop gradients to every parameter of the layer (weights, bias, constraint originals).

        Returns:
            ``self``, for chaining.
        """
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def unfreeze(self) -> LearnableConv2d:
        """Make every parameter trainable again. Returns ``self``."""
        for p in self.parameters():
            p.requires_grad_(True)
        return self

    @property
    def frozen(self) -> bool:
        """True when no parameter requires a gradient."""
        return not any(p.requires_grad for p in self.parameters())
