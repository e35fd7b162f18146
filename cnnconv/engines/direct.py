"""Depthwise convolution engines: every plane of the batch as one channels_last image.

Each engine takes an already padded batch ``(B, C, Hp, Wp)`` and returns the valid correlation
``(B, C, Hp - kh + 1, Wp - kw + 1)``.

Example:
    >>> x, k = torch.rand(2, 3, 8, 8), torch.rand(3, 3)
    >>> torch.allclose(valid(x, k), F.conv2d(x, k.expand(3, 1, 3, 3), groups=3), atol=1e-6)
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnconv.engines.workspace import fold, fold_pad, unfold

__all__ = ["depthwise_weight", "fft_valid", "gradient_pair", "graph_valid", "plane_weight", "valid", "valid3d"]


def depthwise_weight(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    """``(kh, kw)`` or ``(C, kh, kw)`` -> ``(C, 1, kh, kw)`` contiguous (any number of axes)."""
    if kernel.ndim == 2:
        kernel = kernel.expand(channels, -1, -1)
    return kernel.unsqueeze(1).contiguous()


def plane_weight(kernel: torch.Tensor, b: int, c: int) -> torch.Tensor:
    """``(kh, kw)`` shared or ``(C, kh, kw)`` per channel -> ``(B*C, 1, kh, kw)``."""
    if kernel.ndim == 2:
        return kernel.expand(b * c, *kernel.shape).unsqueeze(1).contiguous()
    return kernel.repeat(b, 1, 1).unsqueeze(1)


def valid(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid depthwise correlation of a padded batch with ``(kh, kw)`` or ``(C, kh, kw)``."""
    b, c = x.shape[:2]
    y = F.conv2d(fold(x), plane_weight(kernel, b, c), groups=b * c)
    return unfold(y, b, c)


def fft_valid(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid depthwise correlation computed by :func:`cnnconv.fft.fft_conv2d`."""
    from cnnconv.fft import fft_conv2d

    c = x.shape[1]
    return fft_conv2d(x, depthwise_weight(kernel, c), groups=c)


def graph_valid(x: torch.Tensor, kernel, factors, method: str) -> torch.Tensor:
    """Valid correlation of a padded batch in plain graph ops, for a graph being captured (see
    :func:`cnnconv.engines.padding.tracing`): the two 1-D depthwise convolutions of ``factors`` (for
    ``method="box"`` without them: the kernel's first column and a row of ones, trusting the
    kernel to be constant), or one depthwise convolution with the kernel."""
    c = int(x.shape[1])  # a constant of the graph: ONNX's Conv needs the weight's shape
    if factors is None and method == "box":
        factors = (kernel[..., :, 0], torch.ones_like(kernel[..., 0, :]))
    if factors is None or (kernel is not None and method in ("direct", "fft")):
        return F.conv2d(x, depthwise_weight(kernel, c), groups=c)
    ky, kx = factors
    y = F.conv2d(x, depthwise_weight(ky.unsqueeze(-1), c), groups=c)
    return F.conv2d(y, depthwise_weight(kx.unsqueeze(-2), c), groups=c)


def gradient_pair(x4: torch.Tensor, smooth: torch.Tensor, diff: torch.Tensor, pads, border: str):
    """x and y gradients (kernels ``outer(smooth, diff)`` and its transpose) of a ``(B, C, H, W)``
    batch from one padded channels_last copy: two depthwise convolutions.

    The factors must need no gradient; an input that does is not padded into the workspace
    (:func:`cnnconv.engines.workspace.fold_pad`), so no graph can hold the buffer.
    """
    b, c = x4.shape[:2]
    smooth = smooth.to(dtype=x4.dtype, device=x4.device)
    diff = diff.to(dtype=x4.dtype, device=x4.device)
    folded = fold_pad(x4, pads, border, reuse=True)
    gx, gy = (
        unfold(F.conv2d(folded, plane_weight(kernel, b, c), groups=b * c), b, c)
        for kernel in (torch.outer(smooth, diff), torch.outer(diff, smooth))
    )
    return gx, gy


def valid3d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid depthwise 3-D correlation of a padded ``(B, C, Dp, Hp, Wp)`` batch with
    ``(kd, kh, kw)`` shared or ``(C, kd, kh, kw)`` per channel."""
    c = x.shape[1]
    weight = kernel.expand(c, *kernel.shape) if kernel.ndim == 3 else kernel
    return F.conv3d(x, weight.unsqueeze(1).contiguous(), groups=c)
