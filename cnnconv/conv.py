"""Drop-in ``nn.Conv1d`` / ``nn.Conv2d`` layers computed by FFT, direct convolution or either.

:class:`FFTConv1d` and :class:`FFTConv2d` subclass the PyTorch layers, so construction,
initialisation, ``state_dict`` keys and ``extra_repr`` are PyTorch's; the extra ``method``
argument picks the engine: ``"fft"`` (:func:`cnnconv.fft.fft_conv2d`), ``"direct"``
(``F.conv2d``) or ``"auto"`` (per input shape, :func:`cnnconv.planner.choose_method`). In eval
mode (no weight gradient) the kernel spectrum is cached between calls and recomputed when the
weight changes. :func:`convert` swaps the convolutions of an existing model for these layers and
:func:`convert_back` restores plain PyTorch layers.

Example:
    >>> import torch
    >>> layer = FFTConv2d(3, 8, 31, padding="same", method="fft")
    >>> layer(torch.randn(1, 3, 64, 64)).shape
    torch.Size([1, 8, 64, 64])
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnconv import fft as _fft

__all__ = ["METHODS", "FFTConv1d", "FFTConv2d", "convert", "convert_back"]

METHODS = ("auto", "fft", "direct")


def _check_method(method) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}: {method!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


class _FFTConvMixin:
    """Shared engine selection for the 1-D and 2-D layers (and their subclasses, such as
    :class:`cnnconv.learnable.LearnableConv2d`)."""

    _nd = 2
    # convert_back turns layers of this class into plain PyTorch layers; subclasses that carry
    # more state than a convolution (LearnableConv2d) set it to False and are left alone.
    _convert_back = True

    def _init_fft(self, method: str) -> None:
        self.method = _check_method(method)
        self._spectrum_cache = _fft.SpectrumCache()
        self.last_method: str | None = None

    def _resolve(self, x: torch.Tensor) -> str:
        if self.method != "auto":
            return self.method
        from cnnconv.planner import choose_method

        choice = choose_method(
            tuple(x.shape),
            tuple(self.weight.shape),
            groups=self.groups,
            stride=self.stride,
            dilation=self.dilation,
            dtype=x.dtype,
            device=x.device,
            padding=self.padding,
        )
        return "fft" if choice == "fft" else "direct"

    def _conv_forward(self, input, weight, bias):  # called by nn.ConvNd.forward
        method = self._resolve(input)
        self.last_method = method
        if method == "direct":
            return super()._conv_forward(input, weight, bias)
        fn = _fft.fft_conv2d if self._nd == 2 else _fft.fft_conv1d
        cache = self._spectrum_cache if weight is self.weight else None
        return fn(
            input,
            weight,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            padding_mode=self.padding_mode,
            cache=cache,
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", method={self.method!r}"

    def train(self, mode: bool = True):
        self._spectrum_cache.clear()
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._spectrum_cache.clear()
        return super()._apply(fn, *args, **kwargs)


class FFTConv1d(_FFTConvMixin, nn.Conv1d):
    """``nn.Conv1d`` computed through the FFT (or directly, or whichever is cheaper).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as ``nn.Conv1d``.
        method: ``"auto"`` (planner's choice per input shape), ``"fft"`` or ``"direct"``.

    Shape:
        ``(B, Cin, L) -> (B, Cout, Lout)`` as ``nn.Conv1d``.

    Example:
        >>> layer = FFTConv1d(1, 1, 101, padding="same", method="fft")
        >>> layer(torch.randn(2, 1, 1000)).shape
        torch.Size([2, 1, 1000])
    """

    _nd = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        method: str = "auto",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        self._init_fft(method)


class FFTConv2d(_FFTConvMixin, nn.Conv2d):
    """``nn.Conv2d`` computed through the FFT (or directly, or whichever is cheaper).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as ``nn.Conv2d``.
        method: ``"auto"`` (planner's choice per input shape), ``"fft"`` or ``"direct"``.

    Shape:
        ``(B, Cin, H, W) -> (B, Cout, Hout, Wout)`` as ``nn.Conv2d``.

    Example:
        >>> layer = FFTConv2d(16, 16, 31, padding="same", method="fft")
        >>> layer(torch.randn(2, 16, 64, 64)).shape
        torch.Size([2, 16, 64, 64])
    """

    _nd = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        method: str = "auto",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )
        self._init_fft(method)


_PAIRS = ((nn.Conv1d, FFTConv1d), (nn.Conv2d, FFTConv2d))


def _copy_layer(old: nn.Module, cls, **extra) -> nn.Module:
    new = cls(
        old.in_channels,
        old.out_channels,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        groups=old.groups,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
        device=old.weight.device,
        dtype=old.weight.dtype,
        **extra,
    )
    # Share the very parameters, so optimizers and hooks holding them keep working.
    new.weight = old.weight
    if old.bias is not None:
        new.bias = old.bias
    new.train(old.training)
    return new


def convert(model: nn.Module, method: str = "auto", min_kernel_size: int = 1) -> nn.Module:
    """Replace the ``nn.Conv1d`` / ``nn.Conv2d`` layers of ``model`` (in place) by FFT layers.

    Weights and biases are kept (the same ``Parameter`` objects), so outputs, ``state_dict``
    keys and optimizers are unaffected. Transposed convolutions and layers that already are
    FFT layers are left alone.

    Args:
        model: a module; if it is itself a convolution, the converted layer is returned.
        method: ``"auto"``, ``"fft"`` or ``"direct"`` for the new layers.
        min_kernel_size: only layers whose largest kernel side is at least this are converted.

    Returns:
        The model (converted in place), or the new layer when ``model`` is a convolution.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 31))
        >>> net = convert(net, method="fft", min_kernel_size=7)
        >>> [type(m).__name__ for m in net]
        ['Conv2d', 'ReLU', 'FFTConv2d']
    """
    _check_method(method)
    if isinstance(min_kernel_size, bool) or not isinstance(min_kernel_size, int):
        raise TypeError(f"min_kernel_size must be an int, got {min_kernel_size!r}")
    if min_kernel_size < 1:
        raise ValueError(f"min_kernel_size must be positive, got {min_kernel_size}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")

    def swap(m: nn.Module):
        if isinstance(m, _FFTConvMixin):
            return None
        for base, cls in _PAIRS:
            if type(m) is base and max(m.kernel_size) >= min_kernel_size:
                return _copy_layer(m, cls, method=method)
        return None

    return _replace(model, swap)


def convert_back(model: nn.Module) -> nn.Module:
    """Replace :class:`FFTConv1d` / :class:`FFTConv2d` layers by plain PyTorch layers (in place).

    :class:`cnnconv.learnable.LearnableConv2d` layers (FFTConv2d subclasses that also carry
    kernel names) are left as they are; their ``state_dict`` already loads into ``nn.Conv2d``.

    Args:
        model: a module, or a single FFT layer (then the new layer is returned).

    Returns:
        The model, or the new layer.

    Example:
        >>> net = convert(nn.Sequential(nn.Conv2d(3, 8, 3)), method="fft")
        >>> type(convert_back(net)[0]).__name__
        'Conv2d'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")

    def swap(m: nn.Module):
        for base, cls in _PAIRS:
            if isinstance(m, cls) and m._convert_back:
                return _copy_layer(m, base)
        return None

    return _replace(model, swap)


def _replace(model: nn.Module, swap) -> nn.Module:
    new = swap(model)
    if new is not None:
        return new
    for name, child in list(model.named_children()):
        replaced = _replace(child, swap)
        if replaced is not child:
            setattr(model, name, replaced)
    return model
