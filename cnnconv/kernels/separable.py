"""The rank-1 test behind the separable engine: :func:`separable_factors`."""

from __future__ import annotations

import torch

__all__ = ["separable_factors"]


def separable_factors(kernel: torch.Tensor, rtol: float = 1e-5):
    """Factor a rank-1 kernel into a column and a row vector, or return ``None``.

    The factors are read from the row and column through the entry of largest magnitude, so
    integer kernels (Sobel, box) factor exactly; the result is accepted when
    ``max|kernel - outer(ky, kx)| <= rtol * max|kernel|``.

    Args:
        kernel: ``(kh, kw)``, or ``(C, kh, kw)`` for per-channel kernels (separable only when
            every channel is).
        rtol: tolerance relative to the largest entry.

    Returns:
        ``(ky, kx)`` with shapes ``(kh,)``, ``(kw,)`` (or ``(C, kh)``, ``(C, kw)``) in the
        kernel's dtype and device, such that ``kernel == ky[..., :, None] * kx[..., None, :]``;
        ``None`` when the kernel is not rank 1 or holds a NaN or inf.

    Example:
        >>> from cnnconv.kernels import laplacian, sobel_x
        >>> ky, kx = separable_factors(sobel_x())
        >>> torch.equal(torch.outer(ky, kx), sobel_x())
        True
        >>> separable_factors(laplacian(4)) is None
        True
    """
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a tensor, got {type(kernel).__name__}")
    if kernel.ndim not in (2, 3):
        raise ValueError(f"kernel must have shape (kh, kw) or (C, kh, kw), got {tuple(kernel.shape)}")
    squeeze = kernel.ndim == 2
    k = kernel.detach().to(torch.float64)
    if not bool(torch.isfinite(k).all()):  # inf * 0 is NaN in a product of factors
        return None
    if squeeze:
        k = k.unsqueeze(0)
    c, _, kw = k.shape
    flat = k.reshape(c, -1)
    idx = flat.abs().argmax(dim=1)
    i0, j0 = idx // kw, idx % kw
    ar = torch.arange(c, device=k.device)
    pivot = flat[ar, idx]  # (C,)
    safe = torch.where(pivot == 0, torch.ones_like(pivot), pivot)
    ky = k[ar, :, j0] / safe[:, None]  # column through the pivot, pivot entry -> 1
    kx = k[ar, i0, :]  # row through the pivot
    err = (k - ky[:, :, None] * kx[:, None, :]).abs().amax(dim=(1, 2))
    scale = flat.abs().amax(dim=1)
    if bool((err > rtol * scale).any()):
        return None
    # Balance the two factors' magnitudes (helps float32 accuracy).
    ny = ky.abs().amax(dim=1).clamp_min(1e-300)
    nx = kx.abs().amax(dim=1).clamp_min(1e-300)
    # A power of two keeps the scaling exact.
    f = torch.exp2(torch.round(0.5 * torch.log2(nx / ny)))
    ky = ky * f[:, None]
    kx = kx / f[:, None]
    ky = ky.to(kernel.dtype)
    kx = kx.to(kernel.dtype)
    if squeeze:
        return ky[0], kx[0]
    return ky, kx
