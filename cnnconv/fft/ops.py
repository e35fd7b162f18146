"""The engine's core as ``torch.library`` custom ops, so ``torch.compile`` captures an FFT
convolution in its graph (no graph break) and differentiates it.

``cnnconv::fft_correlate`` is the correlation of an input (already cast to float32/float64 and,
for border padding modes, padded) with a weight: zero padding, dilation, stride, groups, the
non-finite fallback and exact zeros included. Its fake implementation gives the output shape
from :class:`ConvGeometry`; its backward is the op ``cnnconv::fft_correlate_backward``, which
computes both gradients in the frequency domain (:func:`run_backward`), or directly where the
forward fell back to the direct method. Eager code calls :func:`correlate` itself.

Example:
    >>> import torch, torch.nn.functional as F
    >>> x, w = torch.randn(1, 2, 20, 20), torch.randn(3, 2, 5, 5)
    >>> y = torch.ops.cnnconv.fft_correlate(x, w, [2, 2, 2, 2], [1, 1], [1, 1], 1, 1e9, True, "direct")
    >>> torch.allclose(y, F.conv2d(x, w, padding=2), atol=1e-4)
    True
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .autograd import NonFinite, SpectralCorrelation, run_backward
from .cache import SpectrumCache
from .geometry import ConvGeometry
from .plan import get_plan
from .spectral import COMPLEX_BYTES, kernel_spectrum
from .zeros import flush_zero_windows

__all__ = ["correlate", "fft_correlate", "fft_correlate_backward"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def all_finite(t: torch.Tensor) -> bool:
    """Whether ``t`` holds no NaN or inf."""
    # One reduction: a NaN or inf anywhere makes the sum non-finite; an overflowing sum of
    # finite values is told apart by the exact check.
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def direct(x: torch.Tensor, weight: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """``F.conv*d`` of ``x`` with ``geom``'s padding (of any kind), stride, dilation, groups."""
    flat = geom.flat_pads
    if any(flat):
        x = F.pad(x, flat)
    return _CONV[geom.nd](x, weight, None, geom.stride, 0, geom.dilation, geom.groups)


def _spread_index(dilation: tuple[int, ...]) -> tuple[Any, ...]:
    """The index of the taps of a kernel spread by ``dilation``."""
    return (Ellipsis, *tuple(slice(None, None, d) for d in dilation))


def spread(weight: torch.Tensor, dilation: tuple[int, ...]) -> torch.Tensor:
    """The kernel with ``dilation - 1`` zeros between its taps."""
    if all(d == 1 for d in dilation):
        return weight
    nd = len(dilation)
    ks = weight.shape[-nd:]
    kd = [d * (k - 1) + 1 for k, d in zip(ks, dilation)]
    w = weight.new_zeros(*weight.shape[:-nd], *kd)
    w[_spread_index(dilation)] = weight
    return w


def _fft_core(
    x: torch.Tensor,
    weight: torch.Tensor,
    geom: ConvGeometry,
    cache: SpectrumCache | None,
    memory_budget: float,
) -> torch.Tensor:
    """The dense (stride 1) output span ``geom.out_len`` through the FFT."""
    if geom.batch == 0:
        return x.new_zeros(0, geom.out_channels, *geom.out_len) + weight.sum() * 0
    plan = get_plan(geom, COMPLEX_BYTES[x.dtype], memory_budget, x.device.type)
    use_cache = cache is not None and not (torch.is_grad_enabled() and weight.requires_grad)
    w = spread(weight, geom.dilation)
    W = None
    if use_cache:
        assert cache is not None
        W = cache.get(weight, w, plan.n, geom.groups, plan.shift, geom.dilation)
    return SpectralCorrelation.apply(x, w, W, plan, geom.groups, True)


def correlate(
    x: torch.Tensor,
    weight: torch.Tensor,
    geom: ConvGeometry,
    cache: SpectrumCache | None,
    memory_budget: float,
    exact_zeros: bool,
    nonfinite: str,
    use_fft: bool = True,
) -> torch.Tensor:
    """The convolution of a batched float32/float64 ``x`` (padded as ``geom`` says) with
    ``weight``, without bias: through the FFT unless ``use_fft`` is False or an input is not
    finite (then ``F.conv*d``, or ``ValueError`` with ``nonfinite="raise"``)."""
    y = None
    if use_fft and all_finite(weight):
        try:
            y = _fft_core(x, weight, geom, cache, memory_budget)
        except NonFinite:
            y = None
    if y is None:
        # Non-finite values (or a float overflow inside the transform): the direct method only
        # spoils the neighbourhood of a bad sample.
        if use_fft and nonfinite == "raise" and not (all_finite(x) and all_finite(weight)):
            raise ValueError("input or weight contains NaN or inf (nonfinite='raise')")
        return direct(x, weight, geom)
    if exact_zeros:
        y = flush_zero_windows(y, x, geom)
    if any(s > 1 for s in geom.stride):
        y = y[_spread_index(geom.stride)]
    return y


def _geometry(
    x: torch.Tensor, weight: torch.Tensor, pads: list[int], stride: list[int], dilation: list[int], groups: int
) -> ConvGeometry:
    """The geometry of the ops' arguments (``pads``: before, after of each spatial dim)."""
    return ConvGeometry(
        batch=x.shape[0],
        in_channels=x.shape[1],
        out_channels=weight.shape[0],
        groups=groups,
        spatial=tuple(x.shape[2:]),
        kernel=tuple(weight.shape[2:]),
        stride=tuple(stride),
        dilation=tuple(dilation),
        pads=tuple((pads[2 * i], pads[2 * i + 1]) for i in range(len(stride))),
    )


@torch.library.custom_op("cnnconv::fft_correlate", mutates_args=())
def fft_correlate(
    x: torch.Tensor,
    weight: torch.Tensor,
    pads: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    memory_budget: float,
    exact_zeros: bool,
    nonfinite: str,
) -> torch.Tensor:
    """:func:`correlate` as an op (no spectrum cache); ``pads`` lists ``(before, after)`` per
    spatial dim, flattened."""
    geom = _geometry(x, weight, pads, stride, dilation, groups)
    # Detached: no spectra kept for a backward (the backward op recomputes what it needs).
    y = correlate(x.detach(), weight.detach(), geom, None, memory_budget, exact_zeros, nonfinite)
    return y.contiguous()


@fft_correlate.register_fake
def _(
    x: torch.Tensor,
    weight: torch.Tensor,
    pads: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    memory_budget: float,
    exact_zeros: bool,
    nonfinite: str,
) -> torch.Tensor:
    geom = _geometry(x, weight, pads, stride, dilation, groups)
    return x.new_empty(geom.batch, geom.out_channels, *geom.out_size)


@torch.library.custom_op("cnnconv::fft_correlate_backward", mutates_args=())
def fft_correlate_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    pads: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    memory_budget: float,
    need_input: bool,
    need_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and weight gradients of :func:`fft_correlate` (an empty tensor for one not
    asked for)."""
    geom = _geometry(x, weight, pads, stride, dilation, groups)
    gx: torch.Tensor | None
    gw: torch.Tensor | None
    if geom.batch == 0:
        gx, gw = torch.zeros_like(x), torch.zeros_like(weight)
    elif all_finite(weight) and all_finite(x):
        # The strided output is a subsample of the dense span: its gradient, spread back.
        gy = grad
        if any(s > 1 for s in geom.stride):
            gy = grad.new_zeros(*grad.shape[:2], *geom.out_len)
            gy[_spread_index(geom.stride)] = grad
        plan = get_plan(geom, COMPLEX_BYTES[x.dtype], memory_budget, x.device.type)
        w = spread(weight, geom.dilation)
        W = kernel_spectrum(w, plan.n, groups, plan.shift)
        gx, gw = run_backward(gy, x, w, [], W, plan, groups, need_input, need_weight)
        if gw is not None:
            gw = gw[_spread_index(geom.dilation)]
    else:  # the forward took the direct method
        padded = F.pad(x, geom.flat_pads)
        nd = geom.nd
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad,
            padded,
            weight,
            None,
            list(stride),
            [0] * nd,
            list(dilation),
            False,
            [0] * nd,
            groups,
            [need_input, need_weight, False],
        )
        if gx is not None:
            for i, (pb, _) in enumerate(geom.pads):
                gx = gx.narrow(2 + i, pb, x.shape[2 + i])
    gx = gx.contiguous() if need_input and gx is not None else x.new_empty(0)
    gw = gw.contiguous() if need_weight and gw is not None else weight.new_empty(0)
    return gx, gw


@fft_correlate_backward.register_fake
def _(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    pads: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    memory_budget: float,
    need_input: bool,
    need_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    gx = torch.empty_like(x, memory_format=torch.contiguous_format) if need_input else x.new_empty(0)
    gw = torch.empty_like(weight, memory_format=torch.contiguous_format) if need_weight else weight.new_empty(0)
    return gx, gw


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, weight, pads, stride, dilation, groups, memory_budget, _, _ = inputs
    ctx.save_for_backward(x, weight)
    ctx.conf = (pads, stride, dilation, groups, memory_budget)


def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    x, weight = ctx.saved_tensors
    need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    gx, gw = fft_correlate_backward(grad, x, weight, *ctx.conf, need_x, need_w)
    return (gx if need_x else None, gw if need_w else None) + (None,) * 7


fft_correlate.register_autograd(_backward, setup_context=_setup_context)
