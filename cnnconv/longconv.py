"""Long convolutions for sequence models: causal, depthwise, kernels as long as the sequence.

Sequence models of the S4 / Hyena family mix each channel with its own kernel as long as the
sequence, causally: the output at time ``t`` sees inputs ``0..t`` only,

    y[b, c, t] = sum_{s=0}^{t} k[c, s] * x[b, c, t - s]  (+ D[c] * x[b, c, t]),

so ``k[c, 0]`` weighs the present sample (the signal-processing convention, the kernel is not
flipped; :class:`cnnconv.conv.FFTConv1d` with ``padding="causal"`` gives the same outputs with the
kernel flipped, as ``nn.Conv1d`` correlates). A direct convolution costs ``L^2`` per channel;
through the FFT it costs a few transforms of length ``n >= 2L - 1``: one forward transform of the
input, one inverse transform of the output and, outside eval mode, one of the kernel.

In eval mode (or whenever no gradient can reach the kernel) :class:`LongConv1d` keeps the kernel
spectrum. The cache is checked against a copy of the kernel on every call (``torch.equal``, one
pass over ``C * L`` values, small next to the transforms), so no write to the weight, tracked by
autograd's version counter or not, can make it return a stale result.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from cnnconv.fft import next_fast_len

__all__ = ["LongConv1d", "long_conv1d"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check(input, kernel, skip) -> None:
    for name, t in (("input", input), ("kernel", kernel)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating point tensor, got {t.dtype}")
    if input.ndim not in (2, 3):
        raise ValueError(f"input must be (C, L) or (B, C, L), got shape {tuple(input.shape)}")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be (C, K), got shape {tuple(kernel.shape)}")
    c, length = input.shape[-2], input.shape[-1]
    if kernel.shape[0] != c:
        raise ValueError(f"kernel must have one row per input channel ({c}), got shape {tuple(kernel.shape)}")
    if kernel.shape[1] < 1 or length < 1:
        raise ValueError(
            f"kernel and input need at least one sample, got kernel {tuple(kernel.shape)}, input {tuple(input.shape)}"
        )
    if skip is not None:
        if not isinstance(skip, torch.Tensor):
            raise TypeError(f"skip must be a torch.Tensor or None, got {type(skip).__name__}")
        if skip.shape != (c,):
            raise ValueError(f"skip must have shape ({c},), got {tuple(skip.shape)}")


def fft_length(length: int, kernel_length: int) -> int:
    """Transform length for a causal convolution of ``length`` outputs: no wrap-around reaches them.

    Example:
        >>> fft_length(4096, 4096)
        8192
    """
    return next_fast_len(length + min(kernel_length, length) - 1)


def kernel_spectrum(kernel: torch.Tensor, length: int) -> torch.Tensor:
    """``rfft`` of the kernel, cropped to the ``length`` taps that can reach an output."""
    k = kernel[:, :length]
    return torch.fft.rfft(k, n=fft_length(length, k.shape[-1]))


def long_conv1d(
    input: torch.Tensor, kernel: torch.Tensor, skip: torch.Tensor | None = None, *, spectrum: torch.Tensor | None = None
) -> torch.Tensor:
    """Causal depthwise convolution of each channel with its own (long) kernel, through the FFT.

    Args:
        input: ``(B, C, L)`` or ``(C, L)``.
        kernel: ``(C, K)``; ``kernel[:, 0]`` weighs the present sample. Taps beyond ``L`` cannot
            reach an output and are ignored, so ``K`` may exceed ``L``.
        skip: optional ``(C,)`` weights of a direct term ``skip[c] * x[..., c, t]``.
        spectrum: optional precomputed :func:`kernel_spectrum` of ``kernel`` for this ``L``.

    Returns:
        ``(B, C, L)`` (or ``(C, L)``), contiguous. float16/bfloat16 inputs are transformed in
        float32 (``torch.fft`` has no reduced-precision CPU path) and returned in their dtype.

    Example:
        >>> x = torch.randn(2, 4, 100)
        >>> k = torch.randn(4, 100)
        >>> y = long_conv1d(x, k)
        >>> ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (99, 0)), k.flip(-1)[:, None], groups=4)
        >>> bool(torch.allclose(y, ref, atol=1e-4))
        True
    """
    _check(input, kernel, skip)
    dtype = input.dtype
    compute = torch.float32 if dtype in _LOW_PRECISION else dtype
    x = input.to(compute)
    length = x.shape[-1]
    n = fft_length(length, kernel.shape[-1])
    if spectrum is None:
        spectrum = kernel_spectrum(kernel.to(compute), length)
    elif spectrum.shape[-1] != n // 2 + 1:
        raise ValueError(f"spectrum must have {n // 2 + 1} bins for {length} samples, got {spectrum.shape[-1]}")
    y = torch.fft.irfft(torch.fft.rfft(x, n=n) * spectrum, n=n)[..., :length]
    if skip is not None:
        y = torch.addcmul(y, x, skip.to(compute)[:, None])
    else:
        y = y.contiguous()
    return y.to(dtype)


class LongConv1d(nn.Module):
    """Depthwise causal long convolution with an optional skip term and decay window.

    Each channel has its own kernel of ``length`` taps (as long as the sequences it is meant for;
    shorter inputs use the first taps). The effective kernel is ``weight * window`` where the
    optional window ``exp(-decay * t / length)`` (one rate, or one per channel) makes the kernel
    fade, as in Hyena's implicit filters and the regularised long convolutions of Fu et al.

    Args:
        channels: number of channels ``C``.
        length: kernel length ``K`` (the longest sequence whose every output sees the whole past).
        skip: learn a per-channel direct term ``D * x`` (initialised to 1).
        decay: ``None`` (no window), a rate, or ``C`` rates, each finite and >= 0.
        device, dtype: of the parameters.

    Shape:
        ``(B, C, L) -> (B, C, L)`` for any ``L``; outputs never depend on later inputs.

    Example:
        >>> layer = LongConv1d(8, 1024, decay=3.0)
        >>> layer(torch.randn(2, 8, 1024)).shape
        torch.Size([2, 8, 1024])
    """

    window: torch.Tensor | None  # buffer: the decay window, None without decay

    def __init__(self, channels: int, length: int, *, skip: bool = True, decay=None, device=None, dtype=None) -> None:
        super().__init__()
        for name, v in (("channels", channels), ("length", length)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {v!r}")
            if v < 1:
                raise ValueError(f"{name} must be positive, got {v}")
        if not isinstance(skip, bool):
            raise TypeError(f"skip must be a bool, got {skip!r}")
        self.channels, self.length = channels, length
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(channels, length, **factory))
        self.skip = nn.Parameter(torch.empty(channels, **factory)) if skip else None
        self.decay = self._check_decay(decay, channels)
        window = None
        if self.decay is not None:
            rates = torch.as_tensor(self.decay, dtype=torch.float64).reshape(-1, 1)
            t = torch.arange(length, dtype=torch.float64) / length
            window = torch.exp(-rates * t).expand(channels, length).to(**factory)
        self.register_buffer("window", window, persistent=False)
        self._cache: tuple | None = None
        self.reset_parameters()

    @staticmethod
    def _check_decay(decay, channels: int):
        if decay is None:
            return None
        rates = decay if isinstance(decay, (list, tuple)) else [decay]
        if any(isinstance(r, bool) or not isinstance(r, (int, float)) for r in rates):
            raise TypeError(f"decay must be None, a number or a sequence of numbers, got {decay!r}")
        if len(rates) not in (1, channels) or not all(math.isfinite(r) and r >= 0 for r in rates):
            raise ValueError(f"decay must be one or {channels} finite rates >= 0, got {decay!r}")
        return tuple(float(r) for r in rates) if len(rates) > 1 else float(rates[0])

    def reset_parameters(self) -> None:
        """Kernel taps ~ N(0, 1/length) (unit output variance for unit input); skip = 1."""
        nn.init.normal_(self.weight, std=self.length**-0.5)
        if self.skip is not None:
            nn.init.ones_(self.skip)
        self._cache = None

    def kernel(self) -> torch.Tensor:
        """The effective ``(C, length)`` kernel: ``weight`` times the decay window."""
        return self.weight if self.window is None else self.weight * self.window

    def _spectrum(self, kernel: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
        if torch.is_grad_enabled() and kernel.requires_grad:
            return kernel_spectrum(kernel.to(dtype), length)  # autograd must see the transform
        key = (length, dtype, kernel.device)
        if self._cache is not None and self._cache[0] == key and torch.equal(self._cache[1], kernel):
            return self._cache[2]
        spectrum = kernel_spectrum(kernel.to(dtype), length)
        self._cache = (key, kernel.detach().clone(), spectrum)
        return spectrum

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not isinstance(input, torch.Tensor) or input.ndim != 3 or input.shape[1] != self.channels:
            got = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            raise ValueError(f"input must be (B, {self.channels}, L), got {got}")
        kernel = self.kernel()
        compute = torch.float32 if input.dtype in _LOW_PRECISION else input.dtype
        spectrum = self._spectrum(kernel, input.shape[-1], compute)
        return long_conv1d(input, kernel, self.skip, spectrum=spectrum)

    def _apply(self, fn, *args, **kwargs):
        self._cache = None
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.channels}, {self.length}, skip={self.skip is not None}, decay={self.decay}"
