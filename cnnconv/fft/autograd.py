"""The engine's autograd Function: the forward and backward runs of a plan, chunk by chunk, with
the gradients computed in the frequency domain from the forward's spectra."""

from __future__ import annotations

import torch

from .backend import irfftn, rfftn
from .plan import FFTPlan
from .spectral import (
    COMPLEX_BYTES,
    kernel_spectrum,
    mix,
    mix_transpose,
    mix_weight,
    spectrum_elems,
    weight_grad,
)
from .tiling import chunks, crop, grid_rows, overlap_add, tile, tiles_of, untile


class NonFinite(Exception):
    """Raised inside the forward when the input holds NaN or inf."""


def check_finite(X: torch.Tensor, nd: int) -> None:
    """Raise :class:`NonFinite` when an input plane (spectrum ``X``) holds NaN or inf."""
    # The zero-frequency term is the sum of each plane: it is finite unless the plane holds a
    # NaN or inf (or the sum overflows, which the exact check below tells apart).
    # Either way the transform would spread it over the whole output, so the caller falls back.
    dc = X[(Ellipsis,) + (0,) * nd]
    if not bool(torch.isfinite(dc).all()):
        raise NonFinite


def run_forward(
    x: torch.Tensor,
    w: torch.Tensor,
    W: torch.Tensor | None,
    plan: FFTPlan,
    groups: int,
    keep_x: bool,
    check: bool,
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """y (B, Cout, *out_len) and the list of per-chunk input spectra (when ``keep_x``)."""
    nd = len(plan.n)
    n = plan.n
    batch = x.shape[0]
    cout = w.shape[0]
    if W is None:
        W = kernel_spectrum(w, n, groups, plan.shift)
    spectra = []
    parts = list(chunks(plan, batch))
    span = plan.tiles()[0] if plan.tiled else plan.out_len  # the output of one transform
    if plan.tiled:
        grid = tuple(c * t for c, t in zip(plan.tiles()[1], span))
        y = x.new_empty(batch, cout, *grid)
    elif len(parts) > 1:
        y = x.new_empty(batch, cout, *plan.out_len)
    for b0, b1, i0, i1 in parts:
        xc = tiles_of(x, plan, b0, b1, i0, i1) if plan.tiled else x[b0:b1]
        X = rfftn(xc, n)
        if check:
            check_finite(X, nd)
        Y = mix(X, W, groups, inplace=not keep_x)
        if keep_x:
            spectra.append(X)
        yc = crop(irfftn(Y, n, overwrite=True), span)
        if plan.tiled:
            T0 = span[0]
            y[b0:b1, :, i0 * T0 : i1 * T0] = untile(yc, plan, b1 - b0, i1 - i0)
        elif len(parts) > 1:
            y[b0:b1] = yc
        else:
            y = yc
    if plan.tiled:
        y = crop(y, plan.out_len)
    return y, spectra, W


def run_backward(
    gy: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor,
    spectra: list[torch.Tensor],
    W: torch.Tensor,
    plan: FFTPlan,
    groups: int,
    need_x: bool,
    need_w: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Input and weight gradients (those asked for) of :func:`run_forward`'s output."""
    n = plan.n
    batch = x.shape[0]
    cin_g = w.shape[1]
    gx: torch.Tensor | None = None
    gw = None
    parts = list(chunks(plan, batch))
    if plan.tiled:
        T, counts, pads = plan.tiles()
        if need_x:
            gxp = x.new_zeros(batch, x.shape[1], *(c * t + N - t for c, t, N in zip(counts, T, n)))
    elif need_x and len(parts) > 1:
        gx = x.new_empty(x.shape)
    GW: torch.Tensor | None = None
    for idx, (b0, b1, i0, i1) in enumerate(parts):
        if plan.tiled:
            gyc = tile(grid_rows(gy, plan, b0, b1, i0, i1), plan, b1 - b0, i1 - i0)
        else:
            gyc = gy[b0:b1]
        GY = rfftn(gyc, n)
        if need_w:
            X = spectra[idx] if spectra else rfftn(tiles_of(x, plan, b0, b1, i0, i1) if plan.tiled else x[b0:b1], n)
            GW = mix_weight(X, GY, groups, cin_g, GW)
        if need_x:
            GX = mix_transpose(GY, W, groups, cin_g)
            g = irfftn(GX, n, overwrite=True)
            if plan.tiled:
                T0 = T[0]
                region = gxp[b0:b1].narrow(2, i0 * T0, (i1 - i0 - 1) * T0 + n[0])
                overlap_add(region, g, plan, b1 - b0, i1 - i0)
            elif len(parts) > 1:
                assert gx is not None  # made before the loop for several chunks
                gx[b0:b1] = crop(g, x.shape[2:])
            else:
                gx = crop(g, x.shape[2:])
    if need_x and plan.tiled:
        gx = gxp
        for i, (pb, _) in enumerate(pads):
            gx = gx.narrow(2 + i, pb, x.shape[2 + i])
    if need_w:
        assert GW is not None  # at least one chunk: empty batches never reach the engine
        gw = weight_grad(GW, n, w.shape, plan.shift, groups)
    return gx, gw


class SpectralCorrelation(torch.autograd.Function):
    """Zero-padded correlation of ``x`` with ``w`` computed as :class:`FFTPlan` says."""

    @staticmethod
    def forward(ctx, x, w, W, plan, groups, check):
        # Keep the input spectra for the weight gradient when they are small; otherwise the
        # backward recomputes them chunk by chunk (bounded memory for large inputs).
        item = COMPLEX_BYTES.get(x.dtype, 8)
        n_items = x.shape[0] * plan.items
        keep_x = w.requires_grad and (n_items * x.shape[1] * spectrum_elems(plan.n) * item <= plan.budget // 2)
        y, spectra, W = run_forward(x, w, W, plan, groups, keep_x, check)
        ctx.save_for_backward(x, w)

        ctx.spectra = (spectra, W)
        ctx.conf = (plan, groups)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        plan, groups = ctx.conf
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():
            # Double backward: differentiate a differentiable re-run of the forward (torch.fft,
            # no in-place reuse), so the graph links the gradients to x and w.
            inputs = [t for t, need in ((x, need_x), (w, need_w)) if need]
            with torch.enable_grad():
                y, _, _ = run_forward(x, w, None, plan, groups, True, False)
                grads = list(torch.autograd.grad(y, inputs, gy, create_graph=True))
            gx = grads.pop(0) if need_x else None
            gw = grads.pop(0) if need_w else None
            return gx, gw, None, None, None, None
        spectra, W = ctx.spectra
        gx, gw = run_backward(gy, x, w, spectra, W, plan, groups, need_x, need_w)
        return gx, gw, None, None, None, None
