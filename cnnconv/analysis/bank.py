"""The bank of hand-designed kernels that :func:`cnnconv.analysis.match_kernel` compares with, and
the ranking of its matches.

Registry kernels (:mod:`cnnconv.kernels`) are built at their defaults and at the kernel's size,
the Gaussian families on a grid of sigmas, and placed centred in a common square frame so that
one matrix product compares a kernel with all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cnnconv.analysis._common import _sigma_grid
from cnnconv.kernels import get_kernel
from cnnconv.kernels.transforms import GEOMETRIC

__all__ = ["KernelMatch"]


# Priority among descriptions that fit equally well (lower first): the identity, then the
# convolution flip (the usual reason for a learned kernel to be a rotated copy: a layer written
# for convolution instead of correlation), then a plain sign change, then mirror flips, transposes
# and quarter turns; a geometric transform combined with a sign change comes after all of them.
def _transform_priority(geometric: str, negated: bool) -> int:
    """Rank of a transform among equally good descriptions (lower is simpler)."""
    if geometric == "identity":
        return 2 if negated else 0
    if geometric == "conv_flip" and not negated:
        return 1
    rank = GEOMETRIC.index(geometric)
    return 2 + rank + (len(GEOMETRIC) if negated else 0)


@dataclass
class KernelMatch:
    """One hand-designed kernel near a given kernel, from :func:`match_kernel`.

    Attributes:
        name: bank name (``"sobel_x"``).
        similarity: cosine similarity in [0, 1] after the best transform and sign.
        transform: how the bank kernel maps onto the kernel (see :func:`apply_transform`):
            ``kernel ~= scale * apply_transform(reference, transform)``.
        scale: the positive least-squares scale.
        params: builder arguments of the reference (``{"sigma": 1.5, "size": [7, 7]}``).
        sigma: fitted sigma for Gaussian-family kernels, else ``None``.
        reference: the bank kernel as built (before the transform), on the kernel's device.
        aligned: ``scale * apply_transform(reference, transform)`` centred on the kernel and
            cropped or zero-padded to the kernel's shape: the reference as the kernel sees it.
        start: for a 1-D kernel, the index of the kernel where the first tap of the transformed
            reference lies (negative when it starts before the kernel); ``None`` for 2-D.
    """

    name: str
    similarity: float
    transform: str
    scale: float
    params: dict
    sigma: float | None = None
    reference: torch.Tensor | None = field(default=None, repr=False)
    aligned: torch.Tensor | None = field(default=None, repr=False)
    start: int | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields (the reference tensor is left out)."""
        return {
            "name": self.name,
            "similarity": self.similarity,
            "transform": self.transform,
            "scale": self.scale,
            "params": self.params,
            "sigma": self.sigma,
            "start": self.start,
        }


# Gaussian families whose sigma is fitted. unsharp also has a sigma but a second parameter
# (amount) as well; it is matched at its default parameters.
_SIGMA_FAMILIES = ("gaussian", "gaussian_dx", "gaussian_dy", "gaussian_dxx", "gaussian_dxy", "gaussian_dyy", "log")
_TIE = 1e-6  # similarities closer than this count as equal; the simpler transform wins


def _build(name: str, **kwargs) -> torch.Tensor | None:
    """Registry kernel ``name`` as float64 CPU 2-D, or ``None`` when it cannot be built (bad
    arguments, empty, not finite or all zero)."""
    try:
        k = get_kernel(name, dtype=torch.float64, **kwargs)
    except (TypeError, ValueError):
        return None
    if not isinstance(k, torch.Tensor) or k.ndim not in (1, 2) or k.numel() == 0:
        return None
    k = k.detach().to(device="cpu", dtype=torch.float64)
    if k.ndim == 1:
        k = k.unsqueeze(0)
    if not bool(torch.isfinite(k).all()) or float(k.abs().sum()) == 0:
        return None
    return k


@dataclass
class _Variant:
    name: str
    params: dict
    kernel: torch.Tensor  # float64 CPU, 2-D


@dataclass
class _Bank:
    """Bank kernels placed in a common square frame, ready for one matrix product."""

    variants: list
    frame: int
    matrix: torch.Tensor  # (rows, frame * frame), unit rows, float64 CPU
    owners: list  # row -> (variant index, offset)
    fit_sigma: bool


_BANK_CACHE: dict = {}


def _registry_variants(names, shape) -> list[_Variant]:
    """Bank kernels for a kernel of ``shape``: each name at its default and at ``shape`` when its
    builder takes a size; Gaussian families on a grid of sigmas at ``shape``."""
    size = list(shape)
    variants = []
    for name in names:
        if name in _SIGMA_FAMILIES:
            for sigma in _sigma_grid(shape):
                k = _build(name, sigma=sigma, size=tuple(size))
                if k is not None:
                    variants.append(_Variant(name, {"sigma": sigma, "size": size}, k))
            continue
        k = _build(name)
        if k is not None:
            variants.append(_Variant(name, {}, k))
    # Fixed kernels rebuilt at the kernel's size, unless that gives a kernel already in the bank
    # (e.g. "sobel5_x" at size 3 is "sobel_x").
    fixed = [v.kernel for v in variants if not v.params]
    for name in names:
        if name in _SIGMA_FAMILIES:
            continue
        options = [{"size": tuple(size)}] + ([{"size": size[0]}] if size[0] == size[1] else [])
        for params in options:
            k = _build(name, **params)
            if k is None or any(k.shape == f.shape and torch.allclose(k, f, rtol=0, atol=1e-12) for f in fixed):
                continue
            fixed.append(k)
            variants.append(_Variant(name, {"size": size}, k))
    return variants


def _make_bank(variants, shape, fit_sigma: bool) -> _Bank:
    variants = [v for v in variants if float(v.kernel.norm()) > 0]
    if not variants:
        raise ValueError("bank must hold at least one non-zero kernel, got none")
    frame = max(list(shape) + [max(v.kernel.shape) for v in variants])
    rows, owners = [], []
    for vi, v in enumerate(variants):
        unit = v.kernel / v.kernel.norm()
        for offset in _placements(v.kernel.shape[0], v.kernel.shape[1], frame):
            rows.append(_place(unit, frame, offset).reshape(-1))
            owners.append((vi, offset))
    return _Bank(variants, frame, torch.stack(rows), owners, fit_sigma)


def _registry_bank(names, shape) -> _Bank:
    key = (tuple(names), tuple(shape))
    if key not in _BANK_CACHE:
        if len(_BANK_CACHE) >= 64:
            _BANK_CACHE.clear()
        _BANK_CACHE[key] = _make_bank(_registry_variants(names, shape), shape, fit_sigma=True)
    return _BANK_CACHE[key]


def _placements(kh: int, kw: int, frame: int) -> list[tuple[int, int]]:
    """Top-left offsets that centre a ``kh x kw`` kernel in a square frame (two when ambiguous)."""
    rows = sorted({(frame - kh) // 2, (frame - kh + 1) // 2})
    cols = sorted({(frame - kw) // 2, (frame - kw + 1) // 2})
    return [(r, c) for r in rows for c in cols]


def _place(k: torch.Tensor, frame: int, offset) -> torch.Tensor:
    out = k.new_zeros(frame, frame)
    r, c = offset
    out[r : r + k.shape[0], c : c + k.shape[1]] = k
    return out


def _same_direction(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Whether two aligned references are the same kernel up to a positive scale (their unit
    vectors within 1e-9 everywhere): a transformed copy that adds nothing to a match list."""
    if a is None or b is None:
        return False
    b = b.to(a.device)
    return float((a / a.norm().clamp_min(1e-300) - b / b.norm().clamp_min(1e-300)).abs().max()) < 1e-9


def _rank_key(similarity: float, priority: int, fitted: bool, order: int) -> tuple[int, int, bool, int]:
    # Best similarity first; among ties the simpler transform, then a fixed kernel before a
    # fitted one (Sobel x is also a derivative of Gaussian with sigma 0.85), then bank order.
    return (-round(similarity / _TIE), priority, fitted, order)
