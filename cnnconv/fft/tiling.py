"""Cutting a call into chunks: batch items, or overlap-save tiles folded into the batch, and
putting the outputs (and input gradients, by overlap-add) back together."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from .plan import FFTPlan


def crop(y: torch.Tensor, length: Sequence[int]) -> torch.Tensor:
    nd = len(length)
    for i, L in enumerate(length):
        y = y.narrow(y.dim() - nd + i, 0, L)
    return y


def chunks(plan: FFTPlan, batch: int) -> Iterator[tuple[int, int, int, int]]:
    """(b0, b1, i0, i1): batch items b0..b1, and for tiles, tile rows i0..i1 of dim 0."""
    if not plan.tiled:
        for b0 in range(0, batch, plan.chunk):
            yield b0, min(batch, b0 + plan.chunk), 0, 1
        return
    _, counts, _ = plan.tiles()
    t1 = counts[0]
    per_row = math.prod(counts[1:])
    rows = max(1, plan.chunk // per_row)
    if rows >= t1:
        images = max(1, rows // t1)
        for b0 in range(0, batch, images):
            yield b0, min(batch, b0 + images), 0, t1
    else:
        for b in range(batch):
            for i0 in range(0, t1, rows):
                yield b, b + 1, i0, min(t1, i0 + rows)


def _padded_rows(t: torch.Tensor, start: int, length: int, before: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Rows ``[start, start + length)`` along dim 2 of ``t`` zero-extended to ``total`` rows
    (``before`` zeros precede row 0), without copying the rest of ``t``."""
    r0, r1 = start - before, start - before + length
    a, b = max(r0, 0), min(r1, t.shape[2])
    part = t.narrow(2, a, max(0, b - a)) if b > a else t.narrow(2, 0, 0)
    return part, (a - r0, r1 - max(b, a))


def tiles_of(x: torch.Tensor, plan: FFTPlan, b0: int, b1: int, i0: int, i1: int) -> torch.Tensor:
    """Input tiles (nb * ti * t2.., C, *n) of tile rows i0..i1 of images b0..b1, cut from the
    unpadded input with the zero padding added per chunk."""
    nd = len(plan.n)
    (T, counts, pads), N = plan.tiles(), plan.n
    rows = (i1 - i0 - 1) * T[0] + N[0]
    part, (top, bottom) = _padded_rows(x[b0:b1], i0 * T[0], rows, pads[0][0])
    flat: list[int] = []
    for i in reversed(range(1, nd)):
        need = counts[i] * T[i] + N[i] - T[i]
        pb = pads[i][0]
        flat += [pb, need - x.shape[2 + i] - pb]
    flat += [top, bottom]
    v = F.pad(part, flat)
    for i in range(nd):
        v = v.unfold(2 + i, N[i], T[i])
    # (nb, C, ti, t2.., N..) -> (nb, ti, t2.., C, N..)
    perm = [0, *range(2, 2 + nd), 1, *range(2 + nd, 2 + 2 * nd)]
    v = v.permute(*perm)
    return v.reshape(-1, x.shape[1], *N)


def grid_rows(gy: torch.Tensor, plan: FFTPlan, b0: int, b1: int, i0: int, i1: int) -> torch.Tensor:
    """Rows of tiles i0..i1 of the output gradient, zero-extended to whole tiles."""
    nd = len(plan.n)
    T, counts, _ = plan.tiles()
    part, (_, bottom) = _padded_rows(gy[b0:b1], i0 * T[0], (i1 - i0) * T[0], 0)
    flat: list[int] = []
    for i in reversed(range(1, nd)):
        flat += [0, counts[i] * T[i] - gy.shape[2 + i]]
    flat += [0, bottom]
    return F.pad(part, flat)


def untile(yt: torch.Tensor, plan: FFTPlan, nb: int, ti: int) -> torch.Tensor:
    """Output tiles (nb * ti * t2.., C, *T) -> (nb, C, ti * T0, t2 * T1..)."""
    nd = len(plan.n)
    T, all_counts, _ = plan.tiles()
    counts = (ti, *all_counts[1:])
    c = yt.shape[1]
    yt = yt.reshape(nb, *counts, c, *T)
    perm = [0, 1 + nd]
    for i in range(nd):
        perm += [1 + i, 2 + nd + i]
    return yt.permute(*perm).reshape(nb, c, *(k * t for k, t in zip(counts, T)))


def tile(g: torch.Tensor, plan: FFTPlan, nb: int, ti: int) -> torch.Tensor:
    """Inverse of :func:`untile`: (nb, C, ti * T0, ..) -> (nb * ti * .., C, *T)."""
    nd = len(plan.n)
    T, all_counts, _ = plan.tiles()
    counts = (ti, *all_counts[1:])
    c = g.shape[1]
    shape = [nb, c]
    for k, t in zip(counts, T):
        shape += [k, t]
    g = g.reshape(*shape)
    perm = [0, *(2 + 2 * i for i in range(nd)), 1, *(3 + 2 * i for i in range(nd))]
    return g.permute(*perm).reshape(-1, c, *T)


def overlap_add(target: torch.Tensor, tiles: torch.Tensor, plan: FFTPlan, nb: int, ti: int) -> None:
    """Add input-gradient tiles (nb * ti * .., C, *n) into ``target`` (nb, C, region..)."""
    nd = len(plan.n)
    (T, all_counts, _), N = plan.tiles(), plan.n
    counts = (ti, *all_counts[1:])
    c = tiles.shape[1]
    tiles = tiles.reshape(nb, *counts, c, *N)
    # Tiles of equal parity along every dim do not overlap (tile step T >= N / 2), so each
    # parity class is one vectorised add into a strided window view.
    for par in itertools.product(*[[0, 1]] * nd):
        every_other = (slice(None), *(slice(p, None, 2) for p in par))
        src = tiles[every_other]
        if any(s == 0 for s in src.shape):
            continue
        perm = [0, 1 + nd, *range(1, 1 + nd), *range(2 + nd, 2 + 2 * nd)]
        src = src.permute(*perm)
        dst = target
        for i, p in enumerate(par):
            dst = dst.narrow(2 + i, p * T[i], dst.shape[2 + i] - p * T[i])
        for i in range(nd):
            dst = dst.unfold(2 + i, N[i], 2 * T[i])
        dst = dst[(Ellipsis,) + tuple(slice(0, s) for s in src.shape[2 : 2 + nd]) + (slice(None),) * nd]
        dst.add_(src)
