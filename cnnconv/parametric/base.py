"""What the parametric layers share: argument checks, the sigma parameter and the kernel cache."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnnconv import kernels as K
from cnnconv.engines.padding import BORDERS


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


def _default_size(sigma, kernel_size: int | None, truncate: float) -> int:
    """``kernel_size`` checked, or ``2 * round(truncate * sigma) + 1`` from the largest sigma."""
    if kernel_size is None:
        s0 = float(torch.as_tensor(sigma).max()) if isinstance(sigma, torch.Tensor) else float(sigma)
        if not truncate > 0:
            raise ValueError(f"truncate must be positive, got {truncate!r}")
        kernel_size = K.gaussian_size_from_sigma(s0, truncate)
    return _check_size(kernel_size)


def _check_channels(value: Any, name: str = "channels") -> int:
    """``value`` if it is a positive int (bools refused) with the layers' message.

    Raises:
        ValueError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_border(border: Any) -> str:
    """``border`` if it is one of :data:`cnnconv.engines.padding.BORDERS`.

    Raises:
        ValueError: otherwise, listing the borders.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(sorted(BORDERS))}, got {border!r}")
    return border


def _check_input(x, channels: int, name: str = "input") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}")


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
    kernel_size: int
    border: str
    per_channel: bool

    def _init_sigma(
        self,
        channels: Any,
        name: str,
        sigma: Any,
        kernel_size: Any,
        truncate: float,
        border: Any,
        per_channel: bool,
        device: Any,
        dtype: Any,
    ) -> int:
        """Check and store the arguments shared by the sigma layers; returns the number of sigmas."""
        _check_channels(channels, name)
        _check_sigma0(sigma)
        self.kernel_size = _default_size(sigma, kernel_size, truncate)
        self.border = _check_border(border)
        self.per_channel = bool(per_channel)
        n = channels if per_channel else 1
        self.log_sigma = _init_log_sigma(sigma, n, device, dtype)
        return n

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
