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
    >>> y, _ = torch.ops.cnnconv.fft_correlate(x, w, [2, 2, 2, 2], [1, 1], [1, 1], 1, 1e9, True, "direct")
    >>> torch.allclose(y, F.conv2d(x, w, padding=2), atol=1e-4)
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .autograd import NonFinite, SpectralCorrelation, run_backward
from .cache import SpectrumCache
from .geometry import ConvGeometry
from .plan import get_plan
from .spectral import COMPLEX_BYTES
from .zeros import flush_zero_windows

__all__ = ["correlate", "fft_correlate", "fft_correlate_backward"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


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
    # Sizes as ints (dynamic sizes specialize): the plan, which the fake implementation also
    # needs for the kernel spectrum's shape, is built and cached for concrete sizes.
    return ConvGeometry(
        batch=int(x.shape[0]),
        in_channels=int(x.shape[1]),
        out_channels=int(weight.shape[0]),
        groups=groups,
        spatial=tuple(int(s) for s in x.shape[2:]),
        kernel=tuple(int(k) for k in weight.shape[2:]),
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`correlate` as an op, and the kernel spectrum it used (kept for the backward);
    ``pads`` lists ``(before, after)`` per spatial dim, flattened."""
    geom = _geometry(x, weight, pads, stride, dilation, groups)
    # Detached (no input spectra kept: the backward recomputes them), with a cache of its own
    # that holds the kernel spectrum (computed here even when the call went direct).
    x, weight, cache = x.detach(), weight.detach(), SpectrumCache()
    y = correlate(x, weight, geom, cache, memory_budget, exact_zeros, nonfinite)
    plan = get_plan(geom, COMPLEX_BYTES[x.dtype], memory_budget, x.device.type)
    W = cache.get(weight, spread(weight, geom.dilation), plan.n, groups, plan.shift, geom.dilation)
    return y.contiguous(), W


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
) -> tuple[torch.Tensor, torch.Tensor]:
    geom = _geometry(x, weight, pads, stride, dilation, groups)
    n = get_plan(geom, COMPLEX_BYTES[x.dtype], memory_budget, x.device.type).n
    fshape = (*n[:-1], n[-1] // 2 + 1)
    cin_g, cout_g = weight.shape[1], weight.shape[0] // groups
    # kernel_spectrum's layouts: elementwise (one input channel per group) or batched matmul.
    W = (groups, cout_g, *fshape) if cin_g == 1 else (math.prod(fshape), groups, cin_g, cout_g)
    return x.new_empty(geom.batch, geom.out_channels, *geom.out_size), x.new_empty(W, dtype=_COMPLEX[x.dtype])


@torch.library.custom_op("cnnconv::fft_correlate_backward", mutates_args=())
def fft_correlate_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    W: torch.Tensor,
    pads: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    memory_budget: float,
    need_input: bool,
    need_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and weight gradients of :func:`fft_correlate` (an empty tensor for one not
    asked for); ``W`` is the kernel spectrum the forward returned."""
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
    W: torch.Tensor,
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


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, weight, pads, stride, dilation, groups, memory_budget, _, _ = inputs
    ctx.save_for_backward(x, weight, output[1])
    ctx.conf = (pads, stride, dilation, groups, memory_budget)


def _backward(ctx: Any, grad: torch.Tensor, _: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    x, weight, W = ctx.saved_tensors
    need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    gx, gw = fft_correlate_backward(grad, x, weight, W, *ctx.conf, need_x, need_w)
    return (gx if need_x else None, gw if need_w else None) + (None,) * 7


fft_correlate.register_autograd(_backward, setup_context=_setup_context)
