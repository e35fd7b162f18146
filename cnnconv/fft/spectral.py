"""Spectral kernels: the kernel spectrum, channel mixing per frequency and the weight gradient.

Pure functions of tensors (differentiable), shared by the forward and the backward.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from types import EllipsisType

import torch

from .backend import irfftn, rfftn

COMPLEX_BYTES = {torch.float32: 8, torch.float64: 16}
_KERNEL_CHUNK_BYTES = 64 << 20


def spectrum_elems(n: Sequence[int]) -> int:
    """Complex frequencies of a real transform of size ``n``."""
    return math.prod(n[:-1]) * (n[-1] // 2 + 1)


def _pieces(k: int, N: int, shift: int) -> list[tuple[int, int, int]]:
    """(src_start, dst_start, length) of the taps of a kernel rolled by ``-shift`` modulo N."""
    a = min(shift, k)
    out = []
    if k - a > 0:
        out.append((a, a - shift if shift <= k else 0, k - a))
    if a > 0:
        out.append((0, N - shift, a))
    return out


def _wrap_kernel(w: torch.Tensor, n: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """Zero-extend the kernel to ``n`` with tap ``j`` at ``(j - shift) % n``.

    Correlating with the wrapped kernel puts output position ``i`` of the zero-padded problem
    (padding ``shift`` before) at circular index ``i``: the padding is never materialised.
    """
    nd = len(n)
    ks = w.shape[-nd:]
    out = w.new_zeros(*w.shape[:-nd], *n)
    for combo in itertools.product(*[_pieces(k, N, s) for k, N, s in zip(ks, n, shift)]):
        src: tuple[EllipsisType | slice, ...] = (Ellipsis, *(slice(a, a + L) for a, _, L in combo))
        dst: tuple[EllipsisType | slice, ...] = (Ellipsis, *(slice(b, b + L) for _, b, L in combo))
        out[dst] = w[src]
    return out


def _unwrap_kernel(g: torch.Tensor, k: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """Adjoint of :func:`_wrap_kernel`: read the ``k`` taps back from a length-``n`` buffer."""
    nd = len(k)
    for i, (kk, s) in enumerate(zip(k, shift)):
        dim = g.dim() - nd + i
        N = g.shape[dim]
        parts = sorted(_pieces(kk, N, s))  # ordered by source tap
        g = (
            torch.cat([g.narrow(dim, b, L) for _, b, L in parts], dim)
            if len(parts) > 1
            else (g.narrow(dim, parts[0][1], parts[0][2]))
        )
    return g


def _chunks_of_outputs(
    n: Sequence[int], groups: int, cout_g: int, cin_g: int, dtype: torch.dtype
) -> list[tuple[int, int]]:
    """Ranges of output channels (per group) whose padded kernels stay within a few tens of MB."""
    per_out = groups * cin_g * math.prod(n) * COMPLEX_BYTES.get(dtype, 8)
    step = max(1, min(cout_g, _KERNEL_CHUNK_BYTES // max(1, per_out)))
    return [(c0, min(cout_g, c0 + step)) for c0 in range(0, cout_g, step)]


def kernel_spectrum(w: torch.Tensor, n: Sequence[int], groups: int, shift: Sequence[int] | None = None) -> torch.Tensor:
    """Conjugated spectrum of the (wrapped) kernel in the layout used by :func:`mix`.

    ``(g, Cout_g, *F)`` when each group has one input channel (elementwise products), else
    ``(F, g, Cin_g, Cout_g)`` (batched matrix products). Large kernels are transformed a few
    output channels at a time, so the padded copies never exceed a few tens of MB.
    """
    cout, cin_g = w.shape[:2]
    cout_g = cout // groups
    fshape = (*n[:-1], n[-1] // 2 + 1)
    f = math.prod(fshape)
    chunks = _chunks_of_outputs(n, groups, cout_g, cin_g, w.dtype)
    wg = w.reshape(groups, cout_g, cin_g, *w.shape[2:])
    out = None
    for c0, c1 in chunks:
        part = wg[:, c0:c1].reshape(groups * (c1 - c0), cin_g, *w.shape[2:])
        if shift is not None and any(shift):
            spec = rfftn(_wrap_kernel(part, n, shift), n)
        else:
            spec = rfftn(part, n)
        spec = spec.conj().reshape(groups, c1 - c0, cin_g, f)
        if cin_g == 1:
            spec = spec.reshape(groups, c1 - c0, *fshape)
        else:
            spec = spec.permute(3, 0, 2, 1)  # (F, g, Cin_g, c)
        if len(chunks) == 1:
            return spec.resolve_conj().contiguous()
        if out is None:
            shape = (groups, cout_g, *fshape) if cin_g == 1 else (f, groups, cin_g, cout_g)
            out = spec.new_empty(shape)
        if cin_g == 1:
            out[:, c0:c1] = spec
        else:
            out[..., c0:c1] = spec
    assert out is not None
    return out


def mix(X: torch.Tensor, W: torch.Tensor, groups: int, inplace: bool = False) -> torch.Tensor:
    """Y[b, o] = sum_c X[b, c] * W[c, o] per frequency: (B, Cin, *F) -> (B, Cout, *F)."""
    b, cin = X.shape[:2]
    fshape = X.shape[2:]
    if cin == groups:  # one input channel per group: elementwise layout (g, m, *F)
        m = W.shape[1]
        if m == 1 and inplace:
            return X.mul_(W.reshape(groups, *fshape))
        Y = X.reshape(b, groups, 1, *fshape) * W.unsqueeze(0)
        return Y.reshape(b, groups * m, *fshape)
    f = math.prod(fshape)
    cin_g, cout_g = W.shape[2], W.shape[3]
    Xm = X.reshape(b, groups, cin_g, f).permute(3, 1, 0, 2)  # (F, g, B, Cin_g)
    Ym = torch.matmul(Xm, W)  # (F, g, B, Cout_g)
    return Ym.permute(2, 1, 3, 0).reshape(b, groups * cout_g, *fshape)


def mix_transpose(GY: torch.Tensor, W: torch.Tensor, groups: int, cin_g: int) -> torch.Tensor:
    """GX[b, c] = sum_o GY[b, o] * conj(W[c, o]): (B, Cout, *F) -> (B, Cin, *F)."""
    b = GY.shape[0]
    fshape = GY.shape[2:]
    if cin_g == 1:
        m = W.shape[1]
        GX = GY.reshape(b, groups, m, *fshape) * W.conj().unsqueeze(0)
        return GX.sum(2) if m > 1 else GX.reshape(b, groups, *fshape)
    f = math.prod(fshape)
    cout_g = W.shape[3]
    Gm = GY.reshape(b, groups, cout_g, f).permute(3, 1, 0, 2)  # (F, g, B, Cout_g)
    GXm = torch.matmul(Gm, W.mH)  # (F, g, B, Cin_g)
    return GXm.permute(2, 1, 3, 0).reshape(b, groups * cin_g, *fshape)


def mix_weight(
    X: torch.Tensor, GY: torch.Tensor, groups: int, cin_g: int, acc: torch.Tensor | None = None
) -> torch.Tensor:
    """Accumulate the weight-gradient spectrum sum_b X[b, c] * conj(GY[b, o]) into ``acc``.

    ``acc`` has the layout of the kernel spectrum (``(g, Cout_g, *F)`` depthwise, else
    ``(F, g, Cin_g, Cout_g)``); it is created when None and returned.
    """
    b = X.shape[0]
    cout = GY.shape[1]
    fshape = X.shape[2:]
    cout_g = cout // groups
    if cin_g == 1:
        G = (X.reshape(b, groups, 1, *fshape) * GY.reshape(b, groups, cout_g, *fshape).conj()).sum(0)
        return G if acc is None else acc.add_(G)
    f = math.prod(fshape)
    Xm = X.reshape(b, groups, cin_g, f).permute(3, 1, 2, 0)  # (F, g, Cin_g, B)
    Gm = GY.reshape(b, groups, cout_g, f).permute(3, 1, 0, 2).conj()  # (F, g, B, Cout_g)
    if acc is None or torch.is_grad_enabled():
        G = torch.matmul(Xm, Gm)
        return G if acc is None else acc + G
    # In place, without a temporary of the kernel spectrum's size.
    acc.view(f * groups, cin_g, cout_g).baddbmm_(
        Xm.reshape(f * groups, cin_g, b), Gm.resolve_conj().reshape(f * groups, b, cout_g)
    )
    return acc


def weight_grad(
    GW: torch.Tensor, n: Sequence[int], w_shape: Sequence[int], shift: Sequence[int], groups: int
) -> torch.Tensor:
    """Real weight gradient ``(Cout, Cin_g, *k)`` from its accumulated spectrum, in chunks."""
    cout, cin_g = w_shape[:2]
    cout_g = cout // groups
    fshape = (*n[:-1], n[-1] // 2 + 1)
    parts = []
    for c0, c1 in _chunks_of_outputs(n, groups, cout_g, cin_g, GW.real.dtype):
        if cin_g == 1:
            spec = GW[:, c0:c1].reshape(groups * (c1 - c0), 1, *fshape)
        else:
            spec = GW[..., c0:c1].permute(1, 3, 2, 0).reshape(groups * (c1 - c0), cin_g, *fshape)
        g = _unwrap_kernel(irfftn(spec, n, overwrite=False), w_shape[2:], shift)
        parts.append(g.reshape(groups, c1 - c0, cin_g, *w_shape[2:]))
    g = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    return g.reshape(cout, cin_g, *w_shape[2:])
