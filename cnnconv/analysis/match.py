"""Nearest hand-designed kernels of a learned one: :func:`match_kernel`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from cnnconv.analysis._common import _as_kernel, _describe_type, _golden, _sigma_grid
from cnnconv.analysis.bank import (
    _SIGMA_FAMILIES,
    KernelMatch,
    _Bank,
    _build,
    _make_bank,
    _place,
    _placements,
    _rank_key,
    _registry_bank,
    _same_direction,
    _transform_priority,
    _Variant,
)
from cnnconv.analysis.fit import _FIT_MARGIN, FIT_FAMILIES, MAX_FIT_SIDE, _best_fit
from cnnconv.analysis.match1d import _match_1d
from cnnconv.kernels import list_kernels
from cnnconv.kernels.transforms import (
    GEOMETRIC,
    TRANSFORMS,
    apply_transform,
    inverse_transform,
    parse_transform,
    transform_name,
)

__all__ = ["match_kernel"]


def match_kernel(k: Any, bank: Any = None, top: int = 3) -> list[KernelMatch]:
    """Nearest hand-designed kernels under scale, sign, rotations by 90 degrees and flips.

    Every kernel of the bank is compared with the given one under the eight symmetries of the
    square (the convolution flip, i.e. the 180-degree rotation, among them) and both signs, by
    cosine similarity; the scale is free. Kernels of different sizes are compared centred, the
    smaller one zero-padded. Registry kernels whose builder takes a size are also built at the
    kernel's size; for the Gaussian families (``gaussian``, ``gaussian_dx/dy/dxx/dyy``, ``log``)
    sigma is fitted by least squares (a grid, then a golden-section search in log sigma) within
    ``[0.25, max(2, largest side)]``.

    With the default bank, a 2-D kernel with sides from 3 to :data:`MAX_FIT_SIDE` is also fitted
    by the continuous families of :func:`fit_kernel` (first and second Gaussian derivative at any
    orientation, Gabor); the best family is one of the matches, named ``"gaussian_derivative"``,
    ``"gaussian_second_derivative"`` or ``"gabor"``, with transform ``identity`` (``negated``
    for a second derivative of negative amplitude), its fitted parameters in ``params`` (``orientation`` in degrees, ``sigma``, and for the Gabor
    ``frequency`` and ``phase``) and ``aligned`` the fitted kernel. It ranks above a bank kernel
    only when more similar by more than 1e-3.

    When several descriptions fit equally well (within 1e-6) the simplest wins, in this order:
    ``identity``, ``conv_flip``, ``negated``, ``flip_lr``, ``flip_ud``, ``transpose``,
    ``anti_transpose``, ``rot90``, ``rot270``, then the same flips and turns ``+negated``. A Sobel
    x rotated by 180 degrees is therefore ``sobel_x`` under ``conv_flip`` rather than ``negated``.

    A 1-D kernel ``(k,)`` is matched in 1-D against :data:`BANK_1D`: ``identity``,
    ``difference`` ``[-1, 0, 1] / 2``, ``second_difference`` ``[1, -2, 1]``, ``box`` (width
    fitted), ``gaussian``, ``gaussian_derivative``, ``gaussian_derivative2`` (sigma fitted) and
    ``exponential`` ``exp(-t / tau)`` (tau fitted), under ``identity``, ``conv_flip`` (reversal)
    and the sign. The kernel is first cropped to its support (leading and trailing taps holding
    at most 1e-12 of the energy), the references are centred on that support, and
    :attr:`KernelMatch.start` says where the reference lies; memory stays linear in ``k``.

    Args:
        k: kernel ``(kh, kw)`` or ``(k,)``, any device.
        bank: ``None`` for every registered kernel of :mod:`cnnconv.kernels` (for 1-D kernels:
            :data:`BANK_1D`); a list of such names; or a mapping of names to tensors (used as
            given, no fit).
        top: number of matches to return: one per bank name, leaving out a name that is only a
            transformed copy of a better match (``sobel_y`` under ``transpose`` after ``sobel_x``).

    Returns:
        Up to ``top`` :class:`KernelMatch`, best first; empty for an all-zero kernel.

    Example:
        >>> from cnnconv import kernels
        >>> m = match_kernel(kernels.gaussian(1.3, 9), top=1)[0]
        >>> m.name, m.transform, round(m.sigma, 4)
        ('gaussian', 'identity', 1.3)
    """
    kernel = _as_kernel(k, allow_1d=True)
    if isinstance(top, bool) or not isinstance(top, int):
        raise TypeError(f"top must be an int, got {top!r}")
    if top < 1:
        raise ValueError(f"top must be positive, got {top}")
    if kernel.ndim == 1:
        if bank is not None and not isinstance(bank, (Mapping, list, tuple)):
            raise TypeError(f"bank must be None, a list of names or a mapping of tensors, got {_describe_type(bank)}")
        return _match_1d(kernel, bank, top)
    shape = tuple(kernel.shape)
    if bank is None:
        bank_: _Bank = _registry_bank(list_kernels(), shape)
    elif isinstance(bank, Mapping):
        variants = []
        for name, ref in bank.items():
            if not isinstance(name, str):
                raise TypeError(f"bank names must be strings, got {name!r}")
            variants.append(_Variant(name, {}, _as_kernel(ref, f"bank[{name!r}]").cpu()))
        bank_ = _make_bank(variants, shape, fit_sigma=False)
    elif isinstance(bank, (list, tuple)):
        known = set(list_kernels())
        unknown = [n for n in bank if not isinstance(n, str) or n not in known]
        if unknown:
            raise ValueError(f"bank names must be registered kernels, got unknown {unknown}")
        bank_ = _registry_bank(list(bank), shape)
    else:
        raise TypeError(f"bank must be None, a list of names or a mapping of tensors, got {_describe_type(bank)}")
    norm = float(kernel.norm())
    if norm == 0:
        return []
    device = kernel.device
    kh, kw = shape
    frame = bank_.frame
    origin = _placements(kh, kw, frame)[0]
    target = _place(kernel / norm, frame, origin)
    geometric = list(GEOMETRIC)
    # The kernel under each geometric transform g; g(kernel) ~ b means kernel ~ inverse(g)(b),
    # and inverse(g) is the transform reported.
    stack = torch.stack([TRANSFORMS[g](target) for g in geometric]).reshape(len(geometric), -1)
    cos = (stack @ bank_.matrix.to(device).T).cpu().tolist()  # (8, rows)

    variants = bank_.variants
    order: dict[str, int] = {}
    for v in variants:
        order.setdefault(v.name, len(order))
    best: dict[str, tuple] = {}  # name -> (rank key, (similarity, transform index, row))
    for ti, (g, values) in enumerate(zip(geometric, cos)):
        inverse = inverse_transform(g)
        priorities = (_transform_priority(inverse, False), _transform_priority(inverse, True))
        for ri, c in enumerate(values):
            name = variants[bank_.owners[ri][0]].name
            fitted = bank_.fit_sigma and name in _SIGMA_FAMILIES
            rk = _rank_key(abs(c), priorities[c < 0], fitted, order[name])
            if name not in best or rk < best[name][0]:
                best[name] = (rk, (abs(c), ti, ri))

    refined: set[str] = set()

    def finish(name, info, refine: bool) -> KernelMatch:
        sim, ti, ri = info
        vi, offset = bank_.owners[ri]
        v = variants[vi]
        t_row = stack[ti].reshape(frame, frame)
        params, sigma, ref = dict(v.params), None, v.kernel
        if bank_.fit_sigma and name in _SIGMA_FAMILIES:
            sigma = params["sigma"]  # the grid's best, refined below when it matters
            if refine:
                sigma, sim, ref = _fit_sigma(name, t_row, sigma, shape, frame, offset)
                params["sigma"] = sigma
                refined.add(name)
        placed = _place(ref, frame, offset).to(device)
        dot = float((t_row * placed).sum())
        # kernel ~= a * inverse(g)(b): a = <g(kernel), b> / |b|^2; the sign goes into the transform.
        scale = abs(dot) * norm / float((ref * ref).sum())
        transform = transform_name(inverse_transform(geometric[ti]), dot < 0)
        aligned = scale * apply_transform(placed, transform)[origin[0] : origin[0] + kh, origin[1] : origin[1] + kw]
        return KernelMatch(name, min(sim, 1.0), transform, scale, params, sigma, ref.to(device), aligned)

    def key(m: KernelMatch):
        # A continuous fit has more free parameters: it ranks above a bank kernel only when
        # better by more than _FIT_MARGIN.
        sim = m.similarity - _FIT_MARGIN if m.name in FIT_FAMILIES else m.similarity
        return _rank_key(sim, _transform_priority(*parse_transform(m.transform)), m.sigma is not None, order[m.name])

    # Refining sigma gains less than 0.05 of similarity over the grid, so only the families within
    # 0.05 of the top-th coarse score can enter the top; they are refined before the final ranking.
    ranked = sorted(best.items(), key=lambda item: item[1][0])
    cutoff = ranked[min(top, len(ranked)) - 1][1][1][0] - 0.05
    matches = [finish(name, info, info[0] >= cutoff) for name, (_, info) in ranked]
    if bank is None and min(shape) >= 3 and max(shape) <= MAX_FIT_SIDE:
        fit = _best_fit(kernel)
        assert fit.fitted is not None  # _best_fit always returns the fitted kernel
        order[fit.family] = len(order)
        refined.add(fit.family)
        matches.append(
            KernelMatch(
                fit.family,
                fit.similarity,
                "negated" if fit.scale < 0 else "identity",
                abs(fit.scale),
                fit.params,
                fit.params["sigma"],
                fit.fitted / fit.scale,
                fit.fitted,
            )
        )
    matches.sort(key=key)

    # A name whose aligned kernel is the same as a better match's (sobel_y under "transpose" next
    # to sobel_x) adds nothing: keep the first of such copies, fixed and fitted kernels apart.
    kept: list[KernelMatch] = []
    for m in matches:
        if m.sigma is not None and m.name not in refined:
            m = finish(m.name, best[m.name][1], True)  # moved up by a removed copy: refine now
        duplicate = any(
            (m.sigma is None) == (other.sigma is None) and _same_direction(m.aligned, other.aligned) for other in kept
        )
        if not duplicate:
            kept.append(m)
        if len(kept) == top:
            break
    return kept


def _fit_sigma(name, t_row, sigma0, shape, frame, offset):
    """Golden-section search in log sigma around the grid's best sigma, maximising |cosine|."""
    grid = _sigma_grid(shape)
    i = min(range(len(grid)), key=lambda j: abs(grid[j] - sigma0))
    lo = math.log(grid[max(i - 1, 0)])
    hi = math.log(grid[min(i + 1, len(grid) - 1)])
    device = t_row.device
    cache = {}

    def score(log_sigma):
        if log_sigma not in cache:
            ref = _build(name, sigma=math.exp(log_sigma), size=tuple(shape))
            if ref is None:
                cache[log_sigma] = (-1.0, None)
            else:
                placed = _place(ref, frame, offset).to(device)
                cache[log_sigma] = (abs(float((t_row * placed).sum())) / float(ref.norm()), ref)
        return cache[log_sigma][0]

    candidates = [math.log(sigma0), lo, hi, *_golden(score, lo, hi)]
    best_log = max(candidates, key=score)
    sim, ref = cache[best_log]
    return math.exp(best_log), sim, ref
