"""Continuous families fitted to a 2-D kernel: :func:`fit_kernel`.

A first or second Gaussian derivative at any orientation and scale, or a Gabor; each is fitted by
least squares on a coarse grid, then by golden-section searches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cnnconv import kernels
from cnnconv.analysis._common import _as_kernel, _golden, _sigma_grid

__all__ = ["FIT_FAMILIES", "MAX_FIT_SIDE", "KernelFit", "fit_kernel"]

#: Families :func:`fit_kernel` fits, simplest first (a later family must fit better by more than
#: 1e-3 of similarity to be preferred).
FIT_FAMILIES = ("gaussian_derivative", "gaussian_second_derivative", "gabor")
_FIT_PREFERENCE = 1e-3  # similarity a later family must gain over an earlier one to be chosen
_FIT_MARGIN = 1e-3  # similarity a fit must gain over a bank kernel to rank above it
_FIT_CACHE_ELEMENTS = 1 << 21  # coarse bases of at most this many values are kept per shape
_GABOR_THETAS = 12  # coarse orientations of the Gabor fit, over [0, 180)
_GABOR_FREQUENCIES = tuple(0.04 * (0.5 / 0.04) ** (i / 9) for i in range(10))  # cycles per pixel
_FIT_GOLDEN_STEPS = 10  # each bracket (two grid steps) shrinks to 1% of its width
#: Largest side of a kernel :func:`match_kernel` also fits the continuous families to (larger
#: kernels are matched to the bank only; :func:`fit_kernel` takes any inspectable size).
MAX_FIT_SIDE = 32
_FIT_CACHE: dict = {}


@dataclass
class KernelFit:
    """A continuous family fitted to a 2-D kernel by :func:`fit_kernel`.

    Attributes:
        family: ``"gaussian_derivative"`` (first derivative of a Gaussian along ``orientation``,
            ``cos(t) gaussian_dx + sin(t) gaussian_dy``), ``"gaussian_second_derivative"``
            (``cos(t)^2 gaussian_dxx + 2 cos(t) sin(t) gaussian_dxy + sin(t)^2 gaussian_dyy``) or
            ``"gabor"`` (:func:`cnnconv.kernels.gabor`).
        similarity: cosine similarity of the kernel and the fitted kernel, in [0, 1].
        scale: least-squares amplitude: ``kernel ~= scale * family(params)``; negative only for
            the second derivative (a valley instead of a ridge).
        params: ``orientation`` in degrees from +x towards +y (``[0, 360)`` for the first
            derivative, ``[0, 180)`` otherwise) and ``sigma`` in pixels; for ``gabor`` also
            ``frequency`` (cycles per pixel) and ``phase`` (degrees, ``[0, 360)``).
        fitted: ``scale * family(params)`` at the kernel's shape, on the kernel's device.
    """

    family: str
    similarity: float
    scale: float
    params: dict
    fitted: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready fields (the fitted tensor is left out)."""
        return {"family": self.family, "similarity": self.similarity, "scale": self.scale, "params": self.params}


def _family_basis(family: str, shape, sigma: float, thetas, frequencies=()) -> torch.Tensor:
    """Basis kernels ``(P, n, kh * kw)`` (float64 CPU) of ``family`` at one sigma.

    The first derivative has the two basis kernels ``gaussian_dx, gaussian_dy`` (``P = 1``; any
    orientation is their combination); the second derivative one kernel per orientation; the
    Gabor the even and odd carrier per ``(frequency, orientation)`` (any phase is their
    combination).
    """
    size = tuple(shape)
    if family == "gaussian_derivative":
        dx = kernels.gaussian_derivative(sigma, 1, "x", size, dtype=torch.float64)
        dy = kernels.gaussian_derivative(sigma, 1, "y", size, dtype=torch.float64)
        return torch.stack([dx, dy]).reshape(1, 2, -1)
    t = torch.tensor(thetas, dtype=torch.float64)[:, None]
    c, s = torch.cos(t), torch.sin(t)
    if family == "gaussian_second_derivative":
        parts = [
            kernels.get_kernel(name, sigma=sigma, size=size, dtype=torch.float64).reshape(1, -1)
            for name in ("gaussian_dxx", "gaussian_dxy", "gaussian_dyy")
        ]
        return (c * c * parts[0] + 2 * c * s * parts[1] + s * s * parts[2]).unsqueeze(1)
    y, x = torch.meshgrid(kernels._grid(shape[0]), kernels._grid(shape[1]), indexing="ij")
    x, y = x.reshape(1, -1), y.reshape(1, -1)
    envelope = torch.exp(-(x * x + y * y) / (2 * sigma * sigma)) / (2 * math.pi * sigma * sigma)
    f = torch.tensor(frequencies, dtype=torch.float64)[:, None, None]
    arg = 2 * math.pi * f * (x * c + y * s)  # (F, T, kh * kw)
    return torch.stack([envelope * torch.cos(arg), envelope * torch.sin(arg)], dim=2).flatten(0, 1)


def _span_fit(basis: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares fit of ``target`` (unit norm, flat) in the span of each basis ``(P, n, D)``
    (``n`` = 1 or 2): the similarities ``(P,)`` (norm of the projection) and coefficients
    ``(P, n)``. Gram-Schmidt on elementwise products (small batched matrix products and
    pseudo-inverses in float64 are far slower); a second kernel within 1e-9 of the first's
    direction adds nothing."""
    b0 = basis[:, 0]
    n0 = b0.norm(dim=-1).clamp_min(1e-300)
    p0 = (b0 * target).sum(-1) / n0
    if basis.shape[1] == 1:
        return p0.abs(), (p0 / n0).unsqueeze(-1)
    b1 = basis[:, 1]
    m = (b0 * b1).sum(-1) / n0  # component of b1 along b0's unit vector
    r = b1 - (m / n0).unsqueeze(-1) * b0
    nr = r.norm(dim=-1)
    independent = nr > 1e-9 * b1.norm(dim=-1)
    nr = torch.where(independent, nr, torch.ones_like(nr))
    p1 = torch.where(independent, (r * target).sum(-1) / nr, torch.zeros_like(nr))
    c1 = p1 / nr
    return torch.hypot(p0, p1), torch.stack([p0 / n0 - c1 * m / n0, c1], dim=-1)


def _coarse_chunks(family: str, shape):
    """``(sigma, basis, thetas)`` chunks of the coarse grid of ``family`` for ``shape``.

    Kept per shape when small; for large kernels the chunks are built one at a time, one sigma
    (and, when that is still large, one orientation) each, so memory stays bounded.
    """
    key = (family, tuple(shape))
    if key in _FIT_CACHE:
        return _FIT_CACHE[key]
    steps = 36 if family == "gaussian_second_derivative" else _GABOR_THETAS
    thetas = [math.pi * i / steps for i in range(steps)]
    sigmas = _sigma_grid(shape)
    if family == "gabor":
        sigmas = [s for s in sigmas[::3] if s >= 0.5]
    rows = {"gaussian_derivative": 2, "gaussian_second_derivative": steps}.get(
        family, 2 * steps * len(_GABOR_FREQUENCIES)
    )
    values = rows * shape[0] * shape[1]
    if values * len(sigmas) <= _FIT_CACHE_ELEMENTS:
        if len(_FIT_CACHE) >= 64:
            _FIT_CACHE.clear()
        _FIT_CACHE[key] = [(s, _family_basis(family, shape, s, thetas, _GABOR_FREQUENCIES), thetas) for s in sigmas]
        return _FIT_CACHE[key]
    groups = [[t] for t in thetas] if values > _FIT_CACHE_ELEMENTS else [thetas]
    return ((s, _family_basis(family, shape, s, g, _GABOR_FREQUENCIES), g) for s in sigmas for g in groups)


def _coarse_fit(family: str, target: torch.Tensor, shape) -> tuple[float, list[float]]:
    """Best coarse-grid similarity and parameters ``[theta, log sigma(, log frequency)]``."""
    best: tuple[float, list[float]] = (-1.0, [])
    for sigma, basis, thetas in _coarse_chunks(family, shape):
        sim, coef = _span_fit(basis, target)
        i = int(sim.argmax())
        if float(sim[i]) > best[0]:
            if family == "gaussian_derivative":
                params = [math.atan2(float(coef[0, 1]), float(coef[0, 0])), math.log(sigma)]
            elif family == "gaussian_second_derivative":
                params = [thetas[i], math.log(sigma)]
            else:
                fi, ti = divmod(i, len(thetas))
                params = [thetas[ti], math.log(sigma), math.log(_GABOR_FREQUENCIES[fi])]
            best = (float(sim[i]), params)
    return best


def _fit_at(family: str, target: torch.Tensor, shape, params) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Similarity, coefficients and basis of ``family`` at ``params`` (see :func:`_coarse_fit`)."""
    theta, sigma = params[0], math.exp(params[1])
    frequencies = [math.exp(params[2])] if family == "gabor" else ()
    basis = _family_basis(family, shape, sigma, [theta], frequencies)
    sim, coef = _span_fit(basis, target)
    return float(sim[0]), coef[0], basis[0]


def _refine_fit(family: str, target: torch.Tensor, shape, params: list[float]) -> list[float]:
    """Coordinate-wise golden-section refinement of the coarse parameters (two rounds, each
    coordinate within one coarse grid step of the current value)."""
    grid = _sigma_grid(shape)
    log_step = math.log(grid[1] / grid[0]) * (3 if family == "gabor" else 1)
    steps = [math.pi / (36 if family == "gaussian_second_derivative" else _GABOR_THETAS), log_step]
    if family == "gabor":
        steps.append(math.log(_GABOR_FREQUENCIES[1] / _GABOR_FREQUENCIES[0]))
    free = range(1, 2) if family == "gaussian_derivative" else range(len(params))  # theta: closed form
    params = list(params)
    cache: dict = {}

    def score_at(p):
        key = tuple(p)
        if key not in cache:
            cache[key] = _fit_at(family, target, shape, p)[0]
        return cache[key]

    for _ in range(2):
        for j in free:

            def score(v, j=j):
                return score_at([*params[:j], v, *params[j + 1 :]])

            candidates = [params[j], *_golden(score, params[j] - steps[j], params[j] + steps[j], _FIT_GOLDEN_STEPS)]
            params[j] = max(candidates, key=score)
        if len(free) == 1:
            break
    return params


def _finish_fit(family: str, kernel: torch.Tensor, params: list[float]) -> KernelFit:
    shape = tuple(kernel.shape)
    norm = float(kernel.norm())
    sim, coef, basis = _fit_at(family, (kernel / norm).cpu().reshape(-1), shape, params)
    fitted = (coef @ basis * norm).reshape(shape)
    sigma = math.exp(params[1])
    if family == "gaussian_derivative":
        theta = math.degrees(math.atan2(float(coef[1]), float(coef[0]))) % 360.0
        out = {"orientation": theta, "sigma": sigma}
        scale = math.hypot(float(coef[0]), float(coef[1])) * norm
    elif family == "gaussian_second_derivative":
        out = {"orientation": math.degrees(params[0]) % 180.0, "sigma": sigma}
        scale = float(coef[0]) * norm
    else:
        # a cos(arg) + b sin(arg) = A cos(arg + phase), A = hypot(a, b), phase = atan2(-b, a); the
        # Gabor for theta + 180 degrees is the one for theta with the opposite phase.
        theta, phase = params[0], math.atan2(-float(coef[1]), float(coef[0]))
        turns = math.floor(theta / math.pi)
        if turns % 2:
            phase = -phase
        out = {
            "orientation": math.degrees(theta - turns * math.pi) % 180.0,
            "sigma": sigma,
            "frequency": math.exp(params[2]),
            "phase": math.degrees(phase) % 360.0,
        }
        scale = math.hypot(float(coef[0]), float(coef[1])) * norm
    return KernelFit(family, min(sim, 1.0), scale, out, fitted.to(kernel.device))


def _check_fit_kernel(kernel: torch.Tensor) -> None:
    if kernel.ndim != 2 or min(kernel.shape) < 3:
        raise ValueError(f"kernel must be 2-D with both sides at least 3 to be fitted, got shape {tuple(kernel.shape)}")


def fit_kernel(k: Any, families: Sequence[str] = FIT_FAMILIES) -> list[KernelFit]:
    """Fit continuous families (orientation, scale, frequency, phase) to a 2-D kernel.

    Each family is fitted by least squares (cosine similarity, free amplitude):

    - ``"gaussian_derivative"``: ``a (cos t gaussian_dx(s) + sin t gaussian_dy(s))``; for each
      sigma the orientation and amplitude are in closed form (projection on the two basis
      kernels), sigma by a grid and a golden-section search in log sigma.
    - ``"gaussian_second_derivative"``: ``a (cos^2 t dxx + 2 cos t sin t dxy + sin^2 t dyy)``
      at sigma ``s``; orientation and sigma by a grid (5 degrees), then golden-section searches.
    - ``"gabor"``: ``a gabor(s, t, f, phase)`` (:func:`cnnconv.kernels.gabor`); phase and
      amplitude in closed form (projection on the even and odd carriers), orientation,
      frequency (0.04 to 0.5 cycles per pixel) and sigma by a coarse grid, then two rounds of
      golden-section searches, one parameter at a time.

    The sigma grid spans ``[0.25, max(2, largest side)]`` (the Gabor's from 0.5); refinement
    may go one grid step beyond. Memory stays within one sigma's (or, for large kernels, one
    orientation's) basis kernels; :func:`match_kernel` fits only kernels up to
    :data:`MAX_FIT_SIDE`.

    Args:
        k: kernel ``(kh, kw)``, both sides at least 3, any device.
        families: names from :data:`FIT_FAMILIES`.

    Returns:
        One :class:`KernelFit` per family, best first: a later family of :data:`FIT_FAMILIES`
        comes first only when better by more than 1e-3. Empty for an all-zero kernel.

    Example:
        >>> from cnnconv import kernels
        >>> k = kernels.gabor(2.0, 0.5, 0.2, 1.0, dtype=torch.float64)
        >>> fit = fit_kernel(k, ["gabor"])[0]
        >>> round(fit.params["orientation"], 2), round(fit.params["frequency"], 3), round(fit.similarity, 6)
        (28.65, 0.2, 1.0)
    """
    kernel = _as_kernel(k)
    _check_fit_kernel(kernel)
    if isinstance(families, str) or not all(f in FIT_FAMILIES for f in families):
        raise ValueError(f"families must be a list of names from {', '.join(FIT_FAMILIES)}, got {families!r}")
    norm = float(kernel.norm())
    if norm == 0:
        return []
    return _rank_fits([_fit_family(f, kernel) for f in families])


def _best_fit(kernel: torch.Tensor) -> KernelFit:
    """The best family of :data:`FIT_FAMILIES` for a non-zero kernel, judged on the coarse
    grids (with the same preference as :func:`fit_kernel`); only that one is refined."""
    shape = tuple(kernel.shape)
    target = (kernel / kernel.norm()).cpu().reshape(-1)
    coarse = [(f, *_coarse_fit(f, target, shape)) for f in FIT_FAMILIES]
    family, _, params = min(coarse, key=lambda c: -c[1] + _FIT_PREFERENCE * FIT_FAMILIES.index(c[0]))
    return _finish_fit(family, kernel, _refine_fit(family, target, shape, params))


def _fit_family(family: str, kernel: torch.Tensor) -> KernelFit:
    shape = tuple(kernel.shape)
    target = (kernel / kernel.norm()).cpu().reshape(-1)
    _, params = _coarse_fit(family, target, shape)
    return _finish_fit(family, kernel, _refine_fit(family, target, shape, params))


def _rank_fits(fits: Iterable[KernelFit]) -> list[KernelFit]:
    """Fits best first; a later family of :data:`FIT_FAMILIES` must gain more than 1e-3."""
    return sorted(fits, key=lambda f: -f.similarity + _FIT_PREFERENCE * FIT_FAMILIES.index(f.family))
