""":func:`cnnconv.analysis.match_kernel` for 1-D kernels: the bank :data:`BANK_1D`, matched under
reversal and sign, with the families' width, sigma or decay fitted."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from cnnconv import kernels
from cnnconv.analysis._common import _as_kernel, _golden, _sigma_grid
from cnnconv.analysis.bank import (
    KernelMatch,
    _rank_key,
    _same_direction,
    _transform_priority,
)
from cnnconv.kernels.transforms import transform_name

__all__ = ["BANK_1D"]

# Fixed 1-D references (correlation taps), then the families whose parameter is fitted.
_FIXED_1D = {
    "identity": (1.0,),
    "difference": (-0.5, 0.0, 0.5),
    "second_difference": (1.0, -2.0, 1.0),
}
_FAMILIES_1D = ("box", "gaussian", "gaussian_derivative", "gaussian_derivative2", "exponential")
BANK_1D = tuple(_FIXED_1D) + _FAMILIES_1D
_SUPPORT_TOL = 1e-12  # leading and trailing taps holding at most this share of the energy are cropped


def _family_1d(name: str, value: float, m: int) -> tuple[torch.Tensor, int] | None:
    """A 1-D family member for a support of ``m`` taps: ``(taps, start)``, the float64 CPU taps
    and the index of the support where they start, or ``None`` when it is degenerate.

    Only the taps above about 1e-14 of the peak are built (the rest would be zeros): far tails
    would underflow into slow subnormal arithmetic for nothing."""
    if name == "exponential":  # exp(-t / tau) from the first tap
        n = min(m, math.ceil(32.0 * value) + 1)
        return torch.exp(-torch.arange(n, dtype=torch.float64) / value), 0
    # Gaussian families, centred: a window of the same parity as m keeps the exact centre.
    n = min(m, 2 * math.ceil(8.0 * value) + 1 + (1 - m % 2))
    if name == "gaussian":
        k = kernels.gaussian1d(value, n, dtype=torch.float64)
    else:
        k = kernels.gaussian_derivative1d(value, 1 if name == "gaussian_derivative" else 2, n, dtype=torch.float64)
    if not bool(torch.isfinite(k).all()) or float(k.abs().sum()) == 0:
        return None
    return k, (m - n) // 2


def _placed_dots(t: torch.Tensor, r: torch.Tensor) -> list[tuple[float, int]]:
    """``(dot, start)`` of ``r`` centred on ``t`` (two placements when the parities differ);
    ``start`` is the index of ``t`` where ``r[0]`` lies (negative when ``r`` is longer)."""
    m, n = t.numel(), r.numel()
    out = []
    for start in sorted({(m - n) // 2, (m - n + 1) // 2}):
        lo, hi = max(start, 0), min(start + n, m)
        out.append((float((t[lo:hi] * r[lo - start : hi - start]).sum()), start))
    return out


def _negligible_prefix(energy: torch.Tensor, tol: float) -> int:
    """Number of leading taps whose energy adds up to at most ``tol``."""
    cum = torch.cumsum(energy, 0)
    return int(torch.searchsorted(cum, cum.new_full((1,), tol), right=True))


def _match_1d(kernel: torch.Tensor, bank: Any, top: int) -> list[KernelMatch]:
    """:func:`match_kernel` for a 1-D kernel (float64, validated)."""
    n = kernel.numel()
    energy = kernel * kernel
    total = float(energy.sum())
    if total == 0:
        return []
    # Crop to the support: a delayed or short kernel in a long frame is matched where it lies.
    tol = _SUPPORT_TOL * total
    first = _negligible_prefix(energy, tol)
    last = n - _negligible_prefix(energy.flip(0), tol)
    c = kernel[first:last].cpu()
    m = c.numel()
    c_norm = float(c.norm())
    targets = {"identity": c, "conv_flip": c.flip(0)}

    if isinstance(bank, Mapping):
        fixed: dict[str, torch.Tensor] = {}
        for name, ref in bank.items():
            if not isinstance(name, str):
                raise TypeError(f"bank names must be strings, got {name!r}")
            fixed[name] = _as_kernel(ref, f"bank[{name!r}]", allow_1d=True).reshape(-1).cpu()
        families: tuple[str, ...] = ()
    else:
        names = BANK_1D if bank is None else list(bank)
        unknown = [b for b in names if b not in BANK_1D]
        if unknown:
            raise ValueError(f"bank names for 1-D kernels must be among {', '.join(BANK_1D)}, got unknown {unknown}")
        fixed = {b: torch.tensor(_FIXED_1D[b], dtype=torch.float64) for b in names if b in _FIXED_1D}
        families = tuple(b for b in names if b in _FAMILIES_1D)
    if not families and all(float(r.norm()) == 0 for r in fixed.values()):
        raise ValueError("bank must hold at least one non-zero kernel, got none")
    order = {name: i for i, name in enumerate(list(fixed) + list(families))}

    def best_of(ref, start=None):
        """(|cos|, dot, transform index, start) of the best transform and placement of ref:
        centred on the support, or from index ``start`` of each transformed support."""
        norm = float(ref.norm()) * c_norm
        if norm == 0:
            return None
        options = []
        for ti, g in enumerate(targets):
            if start is None:
                placements = _placed_dots(targets[g], ref)
            else:
                placements = [(float((targets[g][start : start + ref.numel()] * ref).sum()), start)]
            for dot, at in placements:
                options.append((abs(dot) / norm, dot, ti, at))
        return max(options, key=lambda o: (o[0], -_transform_priority(list(targets)[o[2]], o[1] < 0)))

    found: list[tuple[str, dict, float | None, torch.Tensor, Any]] = []  # (..., (cos, dot, transform, start))
    for name, ref in fixed.items():
        info = best_of(ref)
        if info is not None:
            found.append((name, {}, None, ref, info))
    coarse: dict[str, tuple] = {}
    for name in families:
        if name == "box":
            # Every width at once, from the cumulative sum (a box is even: one target suffices).
            cum = torch.cat([c.new_zeros(1), torch.cumsum(c, 0)])
            widths = torch.arange(1, m + 1)
            best = torch.zeros(m, dtype=torch.float64)
            for starts in ((m - widths) // 2, (m - widths + 1) // 2):
                best = torch.maximum(best, (cum[starts + widths] - cum[starts]).abs() / widths.sqrt())
            w = int(torch.argmax(best)) + 1
            ref = torch.full((w,), 1.0 / w, dtype=torch.float64)
            found.append((name, {"size": w}, None, ref, best_of(ref)))
            continue
        cache: dict[float, tuple] = {}

        def score(log_value, name=name, cache=cache):
            if log_value not in cache:
                member = _family_1d(name, math.exp(log_value), m)
                cache[log_value] = (None, None) if member is None else (best_of(*member), member[0])
            info = cache[log_value][0]
            return -1.0 if info is None else info[0]

        grid = [math.log(v) for v in _sigma_grid((m,))]
        coarse[name] = (max(grid, key=score), grid, score, cache)
    top_coarse = max([o[4][0] for o in found] + [cc[2](cc[0]) for cc in coarse.values()], default=0.0)
    for name, (best_log, grid, score, cache) in coarse.items():
        if score(best_log) >= top_coarse - 0.05:
            i = grid.index(best_log)
            lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
            best_log = max([best_log, lo, hi, *_golden(score, lo, hi)], key=score)
        if score(best_log) < 0:
            continue
        info, ref = cache[best_log]
        value = math.exp(best_log)
        params = {"tau": value, "size": ref.numel()} if name == "exponential" else {"sigma": value, "size": ref.numel()}
        found.append((name, params, value if name != "exponential" else None, ref, info))

    geometric = list(targets)

    def key(item):
        name, _, _, _, (sim, dot, ti, _) = item
        fitted = name in _FAMILIES_1D and name != "box"
        return _rank_key(sim, _transform_priority(geometric[ti], dot < 0), fitted, order[name])

    kept: list[KernelMatch] = []
    device = kernel.device
    for name, params, sigma, ref, (sim, dot, ti, start) in sorted(found, key=key):
        transform = transform_name(geometric[ti], dot < 0)
        scale = abs(dot) / float((ref * ref).sum())
        shown = ref.flip(0) if geometric[ti] == "conv_flip" else ref
        # Where the reference's first tap lies in the kernel: placements on the flipped target
        # map back mirrored.
        at = start if geometric[ti] == "identity" else m - start - ref.numel()
        aligned = torch.zeros(n, dtype=torch.float64)
        lo, hi = max(first + at, 0), min(first + at + ref.numel(), n)
        aligned[lo:hi] = shown[lo - first - at : hi - first - at] * (scale if dot >= 0 else -scale)
        if any(_same_direction(aligned, o.aligned) for o in kept):
            continue
        kept.append(
            KernelMatch(
                name, min(sim, 1.0), transform, scale, params, sigma, ref.to(device), aligned.to(device), first + at
            )
        )
        if len(kept) == top:
            break
    return kept
