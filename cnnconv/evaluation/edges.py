"""Thin edge maps to binary edges: hysteresis thresholding, connected components and the
Canny-like :func:`edge_map` (gradients and non-maximum suppression: :mod:`cnnconv.edges`).

Example:
    >>> x = torch.zeros(1, 1, 16, 16); x[..., 4:12, 4:12] = 1.0
    >>> edges = binarize(GradientFilter("sobel").thin(x), 0.1, 0.3)
    >>> edges.dtype, bool(edges[0, 0, 4:12, 4].any())
    (torch.bool, True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnconv.edges import GradientFilter, check_map
from cnnconv.kernels import gaussian_size_from_sigma
from cnnconv.parametric import gaussian_blur

__all__ = ["binarize", "connected_to", "edge_map", "hysteresis"]


def _shift_min(lab: torch.Tensor, big: int, connectivity: int) -> torch.Tensor:
    H, W = lab.shape[-2:]
    p = F.pad(lab, (1, 1, 1, 1), value=big)
    out = lab
    offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        offsets += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for dy, dx in offsets:
        out = torch.minimum(out, p[..., 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W])
    return out


def connected_to(mask: torch.Tensor, seeds: torch.Tensor, connectivity: int = 8) -> torch.Tensor:
    """Pixels of ``mask`` whose connected component (within ``mask``) contains a seed.

    Pure-torch connected components (runs on any device): labels are pixel indices, merged by
    hooking each neighbourhood minimum onto the label's root and pointer jumping, until
    nothing changes.

    Args:
        mask, seeds: boolean ``(B, 1, H, W)``; seeds outside the mask are ignored.
        connectivity: 8 (default) or 4.

    Returns:
        Boolean tensor ``(B, 1, H, W)``.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    B, _, H, W = mask.shape
    n = H * W
    big = n  # background label, one past the last pixel index
    idx = torch.arange(n, device=mask.device).reshape(1, 1, H, W).expand(B, 1, H, W)
    lab = torch.where(mask, idx, torch.full_like(idx, big))
    # Hook and compress (Shiloach-Vishkin style): every pixel holds the index of a pixel of its
    # component; each round, the smallest label around a pixel is also written to the pixel its
    # label points at (hooking whole trees at once), then labels follow their labels until
    # they stop changing. Converges in a few rounds for typical edge maps.
    flat = torch.cat([lab.reshape(B, n), torch.full((B, 1), big, device=mask.device, dtype=lab.dtype)], 1)
    while True:
        cur = flat[:, :n].reshape(B, 1, H, W)
        nb = torch.where(mask, _shift_min(cur, big, connectivity), cur).reshape(B, n)
        new = flat.clone()
        new[:, :n] = torch.minimum(new[:, :n], nb)
        new.scatter_reduce_(1, flat[:, :n], nb, reduce="amin")
        new[:, big] = big
        while True:  # compress: follow labels to the root
            jumped = new.gather(1, new)
            if torch.equal(jumped, new):
                break
            new = jumped
        if torch.equal(new, flat):
            break
        flat = new
    lab = flat[:, :n].reshape(B, 1, H, W)
    seeded = (seeds & mask).reshape(B, n).to(torch.float32)
    hit = torch.zeros(B, n + 1, dtype=torch.float32, device=mask.device)
    hit.scatter_reduce_(1, lab.reshape(B, n), seeded, reduce="amax")
    hit = hit > 0
    hit[:, big] = False
    return hit.gather(1, lab.reshape(B, n)).reshape(B, 1, H, W) & mask


def _threshold(t, like: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        t = t.to(like.dtype).to(like.device)
        if t.ndim == 1:
            t = t.reshape(-1, 1, 1, 1)
        return t
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(t).__name__}: {t!r}")
    return torch.tensor(float(t), dtype=like.dtype, device=like.device)


def hysteresis(nms: torch.Tensor, low, high, *, connectivity: int = 8) -> torch.Tensor:
    """Hysteresis thresholding: pixels ``> low`` connected to a pixel ``> high``.

    Same definition as ``skimage.filters.apply_hysteresis_threshold`` (strict inequalities),
    whose components are 4-connected in 2-D (``connectivity=4``); scikit-image's Canny links
    8-connected pixels (``connectivity=8``, the default here).

    Args:
        nms: ``(B, 1, H, W)`` edge strength, usually :func:`non_max_suppression`'s output.
        low, high: thresholds (numbers, or tensors of shape ``(B,)`` for per-image values).
        connectivity: 8 or 4.

    Returns:
        Boolean tensor ``(B, 1, H, W)``.

    Example:
        >>> s = torch.tensor([[0.0, 0.3, 0.3, 0.9, 0.0, 0.3]]).reshape(1, 1, 1, 6)
        >>> hysteresis(s, 0.2, 0.5).int().flatten().tolist()
        [0, 1, 1, 1, 0, 0]
    """
    check_map(nms, "nms")
    lo, hi = _threshold(low, nms, "low"), _threshold(high, nms, "high")
    if bool((lo > hi).any()):
        raise ValueError(f"low must not exceed high, got low={low!r}, high={high!r}")
    return connected_to(nms > lo, nms > hi, connectivity)


def binarize(
    nms: torch.Tensor, low=0.1, high=0.2, *, relative: bool = True, use_hysteresis: bool = True, connectivity: int = 8
) -> torch.Tensor:
    """Thin binary edge map ``(B, 1, H, W)`` from a suppressed magnitude ``nms`` (e.g.
    :meth:`cnnconv.edges.GradientFilter.thin`): thresholds (with ``relative=True`` fractions
    of each image's largest value), then hysteresis or ``nms > high``."""
    if relative:
        peak = nms.amax(dim=(1, 2, 3))  # per image
        low_t = _threshold(low, nms, "low") * peak.reshape(-1, 1, 1, 1)
        high_t = _threshold(high, nms, "high") * peak.reshape(-1, 1, 1, 1)
        low_t, high_t = low_t.reshape(-1), high_t.reshape(-1)
    else:
        low_t, high_t = low, high
    if use_hysteresis:
        return hysteresis(nms, low_t, high_t, connectivity=connectivity)
    return nms > _threshold(high_t, nms, "high")


def edge_map(
    x: torch.Tensor,
    kernel="sobel",
    *,
    sigma: float | None = None,
    low=0.1,
    high=0.2,
    relative: bool = True,
    use_hysteresis: bool = True,
    connectivity: int = 8,
    color: str = "max",
    border: str = "reflect",
) -> torch.Tensor:
    """Thin binary edge map: optional Gaussian smoothing, gradient, NMS, thresholds.

    Args:
        x: ``(B, C, H, W)`` image.
        kernel: gradient kernels (as :class:`GradientFilter`).
        sigma: Gaussian pre-smoothing (``None``: none); for ``kernel="dog"`` it is the DoG scale.
        low, high: thresholds; with ``relative=True`` fractions of each image's largest
            suppressed magnitude.
        use_hysteresis: link weak to strong edges; otherwise ``nms > high``.
        connectivity: hysteresis connectivity (8 or 4).
        color, border: as :class:`GradientFilter`.

    Returns:
        Boolean tensor ``(B, 1, H, W)``.

    Example:
        >>> x = torch.zeros(1, 1, 16, 16); x[..., 4:12, 4:12] = 1.0
        >>> e = edge_map(x, sigma=1.0)
        >>> e.shape, e.dtype
        (torch.Size([1, 1, 16, 16]), torch.bool)
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if sigma is not None and not (isinstance(kernel, str) and kernel.lower() == "dog"):
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        x = gaussian_blur(x, float(sigma), gaussian_size_from_sigma(sigma), border="reflect")
    f = GradientFilter(
        kernel,
        sigma=1.0 if sigma is None else sigma,
        in_channels=x.shape[1],
        color=color,
        border=border,
        dtype=x.dtype,
        device=x.device,
    )
    return binarize(f.thin(x), low, high, relative=relative, use_hysteresis=use_hysteresis, connectivity=connectivity)
