"""The public FFT convolutions :func:`fft_conv1d`, :func:`fft_conv2d` and :func:`fft_conv3d`:
one implementation for every dimension (argument checks, autocast, meta tensors and
``torch.func`` transforms, dtypes, non-finite input, exact zeros, stride, bias)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .arguments import check_args
from .cache import SpectrumCache
from .geometry import ConvGeometry
from .ops import correlate, fft_correlate
from .plan import DEFAULT_MEMORY_BUDGET

__all__ = ["fft_conv1d", "fft_conv2d", "fft_conv3d"]


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype when autocast is on for ``device_type``, else None."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    except (RuntimeError, TypeError, ValueError):  # a device type autocast does not know
        pass
    return None


def _autocast_cast(t: Any, dtype: torch.dtype) -> Any:
    # What autocast does to the arguments of the ops in its lower-precision list (convolutions
    # among them): floating-point tensors other than float64 are cast.
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64:
        return t.to(dtype)
    return t


def _functorch_wrapped(*tensors: torch.Tensor | None) -> bool:
    """Whether a torch.func transform (vmap, grad, jacrev, ...) is tracing any of ``tensors``."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return any(t is not None and wrapped(t) for t in tensors)


def _check_options(memory_budget: Any, exact_zeros: Any) -> float:
    """The memory budget in bytes (default :data:`DEFAULT_MEMORY_BUDGET`)."""
    if not isinstance(exact_zeros, bool):
        raise TypeError(f"exact_zeros must be a bool, got {exact_zeros!r}")
    if memory_budget is None:
        return DEFAULT_MEMORY_BUDGET
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, float)):
        raise TypeError(f"memory_budget must be a number of bytes, got {memory_budget!r}")
    if not math.isfinite(memory_budget) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be positive and finite, got {memory_budget}")
    return memory_budget


def _fft_conv(
    x: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    padding_mode: str,
    nd: int,
    cache: SpectrumCache | None,
    nonfinite: str,
    memory_budget: Any,
    exact_zeros: bool,
) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        amp = _autocast_dtype(x.device.type)
        if amp is not None:
            # As a convolution under autocast: the arguments are cast to the autocast dtype and
            # so is the result; the transforms run in float32 (see :mod:`cnnconv.fft`).
            rest = (stride, padding, dilation, groups, padding_mode, nd, cache, nonfinite, memory_budget, exact_zeros)
            with torch.autocast(x.device.type, enabled=False):
                cast = _autocast_cast
                return _fft_conv(cast(x, amp), cast(weight, amp), cast(bias, amp), *rest)
    check_args(x, weight, bias, groups, nd, padding_mode, nonfinite, padding)
    geom = ConvGeometry.from_shapes(x.shape, weight.shape, stride, padding, dilation, groups)
    memory_budget = _check_options(memory_budget, exact_zeros)

    # Meta tensors (shapes only) and torch.func transforms, which the engine's autograd
    # Function and in-place buffers do not support, take the direct method.
    wrapped = not torch.compiler.is_compiling() and _functorch_wrapped(x, weight, bias)
    direct = x.device.type == "meta" or wrapped
    # F.conv2d / F.conv3d return channels_last(_3d) output when the batched input or the weight
    # is (a memory format torch.func transforms cannot query; F.conv*d decides it there).
    memory_format = {(2, 4): torch.channels_last, (3, 5): torch.channels_last_3d}.get((nd, x.dim()))
    channels_last = (
        memory_format is not None
        and not wrapped
        and any(t.is_contiguous(memory_format=memory_format) and not t.is_contiguous() for t in (x, weight))
    )
    unbatched = x.dim() == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    orig_dtype = x.dtype
    if orig_dtype not in (torch.float32, torch.float64):
        x = x.float()
        weight = weight.float()
        bias = None if bias is None else bias.float()
        cache = None

    if padding_mode != "zeros" and any(geom.flat_pads):
        x = F.pad(x, geom.flat_pads, mode=padding_mode)
        geom = geom.bordered()
    geom.check_fits()

    if torch.compiler.is_compiling() and not direct:
        # The op keeps the engine in the compiled graph (see :mod:`cnnconv.fft.ops`).
        pads = [p for pair in geom.pads for p in pair]
        y, _ = fft_correlate(
            x, weight, pads, list(geom.stride), list(geom.dilation), geom.groups, memory_budget, exact_zeros, nonfinite
        )
    else:
        y = correlate(x, weight, geom, cache, memory_budget, exact_zeros, nonfinite, use_fft=not direct)
    if bias is not None:
        y = y + bias.reshape(-1, *([1] * nd))
    if unbatched:
        y = y.squeeze(0)
    if y.dtype != orig_dtype:
        y = y.to(orig_dtype)
    fmt = memory_format if channels_last else torch.contiguous_format
    return y.contiguous(memory_format=fmt)


_DOC = """{nd}-D convolution (cross-correlation) through the FFT, with ``F.conv{nd}d`` semantics.

    Args:
        input: ``{ishape}`` or unbatched ``{ushape}``.
        weight: ``{wshape}``.
        bias: optional ``(Cout,)``.
        stride: int or ``{stride}``.
        padding: {padding}
        dilation: int or ``{dilation}``.
        groups: number of channel groups{depthwise}.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"`` (as
            ``nn.Conv{nd}d``){causal_mode}.
        cache: optional :class:`SpectrumCache` reused when no weight gradient is needed.
        nonfinite: ``"direct"`` (fall back to ``F.conv{nd}d`` for inputs with NaN/inf) or
            ``"raise"``.
        memory_budget: bytes of spectra before the input is tiled (default
            :data:`DEFAULT_MEMORY_BUDGET`).
        exact_zeros: set outputs whose input window holds only zeros to exactly 0 (plus the
            bias), as the direct method gives, instead of the transforms' rounding noise.

    Returns:
        The output of ``F.conv{nd}d`` for the same arguments (up to rounding).

    Shape:
        ``{ishape} -> {oshape}`` with the sizes of ``F.conv{nd}d``.

    Example:
{example}
    """

_PADDING = """int, ``{tuple}``, ``"same"`` (PyTorch's convention for even kernels:
            ``(k-1)//2`` before) or ``"valid"``."""

_DOC_PARTS: dict[int, dict[str, str]] = {
    1: {
        "ishape": "(B, Cin, L)",
        "ushape": "(Cin, L)",
        "wshape": "(Cout, Cin / groups, k)",
        "oshape": "(B, Cout, Lout)",
        "stride": "(s,)",
        "dilation": "(d,)",
        "depthwise": "",
        "padding": """int, 1-tuple, ``"same"`` (PyTorch's convention for even kernels: ``(k-1)//2``
            before), ``"valid"`` or ``"causal"`` (``dilation * (k-1)`` before, none after: output
            ``i`` sees inputs up to ``i * stride`` only; with stride 1 the output has the input's
            length, with stride ``s`` it has ``ceil(L / s)`` samples).""",
        "causal_mode": """; ``padding="causal"`` takes ``"zeros"`` or ``"replicate"`` (the
            others read later samples)""",
        "example": """        >>> x, w = torch.randn(1, 1, 1000), torch.randn(1, 1, 1000)
        >>> fft_conv1d(x, w, padding=999).shape  # full correlation
        torch.Size([1, 1, 1999])""",
    },
    2: {
        "ishape": "(B, Cin, H, W)",
        "ushape": "(Cin, H, W)",
        "wshape": "(Cout, Cin / groups, kh, kw)",
        "oshape": "(B, Cout, Hout, Wout)",
        "stride": "(sh, sw)",
        "dilation": "(dh, dw)",
        "depthwise": " (``groups == Cin`` is depthwise)",
        "padding": _PADDING.format(tuple="(ph, pw)"),
        "causal_mode": "",
        "example": """        >>> x, w = torch.randn(2, 4, 64, 64), torch.randn(8, 4, 31, 31)
        >>> fft_conv2d(x, w, padding="same").shape
        torch.Size([2, 8, 64, 64])""",
    },
    3: {
        "ishape": "(B, Cin, D, H, W)",
        "ushape": "(Cin, D, H, W)",
        "wshape": "(Cout, Cin / groups, kd, kh, kw)",
        "oshape": "(B, Cout, Dout, Hout, Wout)",
        "stride": "(sd, sh, sw)",
        "dilation": "(dd, dh, dw)",
        "depthwise": " (``groups == Cin`` is depthwise)",
        "padding": _PADDING.format(tuple="(pd, ph, pw)"),
        "causal_mode": "",
        "example": """        >>> x, w = torch.randn(1, 2, 32, 32, 32), torch.randn(4, 2, 9, 9, 9)
        >>> fft_conv3d(x, w, padding="same").shape
        torch.Size([1, 4, 32, 32, 32])""",
    },
}


def _entry_point(nd: int) -> Callable[..., torch.Tensor]:
    """The public ``fft_conv{nd}d``: :func:`_fft_conv` for ``nd`` spatial dims."""

    def fft_conv(
        input: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        *,
        padding_mode: str = "zeros",
        cache: SpectrumCache | None = None,
        nonfinite: str = "direct",
        memory_budget: float | None = None,
        exact_zeros: bool = True,
    ) -> torch.Tensor:
        return _fft_conv(
            input,
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
            padding_mode,
            nd,
            cache,
            nonfinite,
            memory_budget,
            exact_zeros,
        )

    fft_conv.__name__ = fft_conv.__qualname__ = f"fft_conv{nd}d"
    fft_conv.__doc__ = _DOC.format(nd=nd, **_DOC_PARTS[nd])
    return fft_conv


fft_conv1d = _entry_point(1)
fft_conv2d = _entry_point(2)
fft_conv3d = _entry_point(3)
