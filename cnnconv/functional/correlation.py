"""2-D and 1-D correlation and convolution of every channel: :func:`filter2d` and the
scipy-named functions around it (conventions: :mod:`cnnconv.functional`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from cnnconv import kernels as K  # noqa: F401  (the examples use it)
from cnnconv._utils.checks import check_choice
from cnnconv.engines import box, direct, separable
from cnnconv.engines.checks import (
    check_factors,
    check_input,
    check_kernel,
    from_batch,
    standard_layout,
    to_batch,
)
from cnnconv.engines.padding import (
    check_border,
    check_mode,
    output_padding,
    pad,
    tracing,
)
from cnnconv.engines.workspace import fold_pad, unfold
from cnnconv.functional.plan import FilterPlan, check_method, plan_filter

__all__ = [
    "apply_plan",
    "convolve1d",
    "convolve2d",
    "correlate1d",
    "correlate2d",
    "filter2d",
    "separable_correlate2d",
]

INPUT_SHAPES = "(H, W), (C, H, W), (B, C, H, W)"
_KERNEL_SHAPES = {2: "(kh, kw)", 3: "(C, kh, kw)"}


def filter2d(
    input: torch.Tensor,
    kernel: torch.Tensor | None,
    mode: str = "same",
    border: str = "reflect",
    *,
    method: str = "auto",
    factors=None,
    anchor: str = "scipy",
) -> torch.Tensor:
    """Depthwise 2-D correlation with a border mode: the dispatch every filter goes through.

    Methods: ``"direct"`` (depthwise ``F.conv2d`` over every plane of the batch as one
    channels_last image), ``"separable"`` (two 1-D passes; needs a rank-1 kernel or
    ``factors``), ``"box"`` (running sums, cost independent of the window; needs a constant
    kernel), ``"fft"`` (:func:`cnnconv.fft.fft_conv2d` on the border-padded input), or
    ``"auto"``: box for constant kernels at least 17 taps long, direct (or separable) for
    kernels of at most 25 taps, separable for rank-1 kernels up to 64 taps per axis, otherwise
    the planner's choice (:func:`cnnconv.planner.choose_method`, told whether the kernel is
    rank 1) or, without the planner, separable for rank-1 kernels, direct for small and FFT
    for large ones. Kernels
    that require grad are applied as given (direct or FFT) so the gradient reaches them.

    While a graph is captured (``torch.compile``, ``torch.export``, ONNX export,
    ``torch.jit.trace``) every method is computed in plain ops: the border padding, then two
    1-D depthwise ``F.conv2d`` for ``factors`` (or a box kernel), else one with the kernel.
    The result is the same filter up to float rounding; layers pass their factors, so the
    graph holds the separable pair.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` floating point tensor.
        kernel: ``(kh, kw)`` shared by all channels or ``(C, kh, kw)`` per channel. May be
            ``None`` when ``factors`` is given.
        mode: ``"full"``, ``"same"`` or ``"valid"`` (scipy.signal output sizes).
        border: ``"reflect"`` (default, see the module notes), ``"zeros"``, ``"replicate"``,
            ``"circular"`` or ``"symmetric"``.
        method: ``"auto"``, ``"direct"``, ``"separable"``, ``"fft"`` or ``"box"``.
        factors: optional ``(ky, kx)`` with ``kernel = outer(ky, kx)``: ``(kh,)``, ``(kw,)`` or
            per channel ``(C, kh)``, ``(C, kw)``.
        anchor: where an even kernel sits in ``same`` mode: ``"scipy"`` (kernel element
            ``k // 2`` on the output pixel, as scipy.ndimage and OpenCV) or ``"torch"``
            (``(k - 1) // 2``, as ``F.conv2d(padding="same")``). See :mod:`cnnconv.engines.padding`.

    Returns:
        Tensor with the input's number of dimensions; spatial size ``H + kh - 1`` (full),
        ``H`` (same) or ``H - kh + 1`` (valid), likewise for W. Memory layout as
        ``nn.Conv2d`` gives it: contiguous, or channels_last for a channels_last batch.

    Shape:
        - input: ``(*, C, H, W)`` with 0 to 1 leading batch dimensions (or ``(H, W)``).
        - output: ``(*, C, H_out, W_out)``.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> filter2d(x, K.box(5), border="reflect").shape
        torch.Size([2, 3, 16, 16])
    """
    check_method(method)
    return _filter(input, kernel, factors, mode, border, anchor, method=method)


def apply_plan(
    input: torch.Tensor, plan: FilterPlan, mode: str = "same", border: str = "reflect", *, transpose: bool = False
) -> torch.Tensor:
    """:func:`filter2d` with a plan made beforehand (:func:`cnnconv.functional.plan.plan_filter`):
    what the layers of :mod:`cnnconv.filters` call, so that no kernel is inspected per call.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` floating point tensor.
        plan: the kernel's plan; its tensors are used as they are when it runs.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"reflect"``, ``"zeros"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        transpose: filter with the transposed kernel (factors swapped).

    Example:
        >>> from cnnconv.functional.plan import plan_filter
        >>> plan = plan_filter(K.box(5))
        >>> apply_plan(torch.ones(1, 8, 8), plan).allclose(torch.ones(1, 8, 8))
        True
    """
    return _filter(input, plan.kernel, plan.factors, mode, border, "scipy", plan=plan, transpose=transpose)


def _filter(input, kernel, factors, mode, border, anchor, *, method="auto", plan=None, transpose=False):
    """The body of :func:`filter2d` (``plan`` None: planned here) and :func:`apply_plan`."""
    x = check_input(input, 2, 4, INPUT_SHAPES)
    ndim = x.ndim
    x4 = to_batch(x, 4)
    check_mode(mode)
    check_border(border)
    b, c, h, w = x4.shape
    if transpose:
        kernel = None if kernel is None else kernel.transpose(-2, -1)
        factors = None if factors is None else factors[::-1]
    if factors is not None:
        ky, kx = check_factors(factors, x4, "(ky, kx)")
        kh, kw = int(ky.shape[-1]), int(kx.shape[-1])
    elif kernel is None:
        raise TypeError("kernel must be a torch.Tensor when factors is not given, got None")
    if kernel is not None:
        kernel = check_kernel(kernel, x4, _KERNEL_SHAPES)
        if factors is not None and (kh, kw) != tuple(kernel.shape[-2:]):
            raise ValueError(f"factors have lengths {(kh, kw)} but the kernel is {tuple(kernel.shape[-2:])}")
        kh, kw = int(kernel.shape[-2]), int(kernel.shape[-1])
    if mode == "valid" and (kh > h or kw > w):
        raise ValueError(f"kernel of size {(kh, kw)} is larger than the input {(h, w)} in valid mode")
    pads = output_padding((kh, kw), mode, anchor=anchor)
    ho = h + pads[0] + pads[1] - kh + 1
    wo = w + pads[2] + pads[3] - kw + 1
    if x4.numel() == 0:
        return from_batch(x4.new_zeros(b, c, max(ho, 0), max(wo, 0)), ndim)
    if tracing():
        plan = plan or plan_filter(kernel, method, factors)
        out = direct.graph_valid(pad(x4, pads, border), kernel, None if factors is None else (ky, kx), plan.method)
        return from_batch(standard_layout(out, x4), ndim)
    if kernel is None:
        # Factors only (the 2-D kernel is built only for an engine that needs it): taps that
        # can only meet the border are folded into the others, which bounds the work for
        # factors far longer than the image (a Gaussian of sigma 1e5) without changing it.
        ky, top, bottom = separable.fold_taps(ky, h, pads[0], pads[1], ho, border)
        kx, left, right = separable.fold_taps(kx, w, pads[2], pads[3], wo, border)
        pads, (kh, kw), factors = (top, bottom, left, right), (ky.shape[-1], kx.shape[-1]), (ky, kx)
    plan = plan or plan_filter(kernel, method, factors)
    method = plan.engine(x4, (kh, kw), mode)
    if factors is None and plan.factors is not None:  # found by the plan
        ky, kx = (f.to(device=x4.device, dtype=x4.dtype) for f in plan.factors[:: -1 if transpose else 1])
    if kernel is None and method in ("direct", "fft"):
        kernel = ky[..., :, None] * kx[..., None, :]

    if method == "direct" or (method == "separable" and b * c >= separable.FOLD_MIN_PLANES):
        # The engines return fresh tensors; only a graph that keeps the kernel's gradient would
        # hold on to the padded input.
        reuse = not (torch.is_grad_enabled() and (plan.learn or x4.requires_grad))
        xp = unfold(fold_pad(x4, pads, border, reuse=reuse), b, c)
    else:
        xp = pad(x4, pads, border)
    if method == "box":
        out = box.valid(
            xp, kh, kw, plan.box_scale, own=xp is not x4 and not (torch.is_grad_enabled() and xp.requires_grad)
        )
    elif method == "separable":
        out = separable.valid(xp, ky, kx)
    elif method == "fft":
        out = direct.fft_valid(xp, kernel)
    else:
        out = direct.valid(xp, kernel)
    return from_batch(standard_layout(out, x4), ndim)


_ANCHORS = ("signal", "ndimage")


def padding_anchor(anchor, flipped: bool, two_d: bool = True) -> str:
    """Map the public ``anchor`` names to :func:`cnnconv.engines.padding.output_padding`'s.

    For even kernels in ``same`` mode: ``scipy.signal.correlate2d`` puts kernel element
    ``(k-1)//2`` on the output pixel; ``scipy.signal.correlate`` / ``numpy.correlate``,
    scipy.ndimage and OpenCV put element ``k//2`` there. ``scipy.signal.convolve2d`` /
    ``numpy.convolve`` equal a correlation with the flipped kernel anchored at ``k//2``;
    ``scipy.ndimage.convolve`` anchors the flipped kernel at ``(k-1)//2``.
    """
    check_choice(anchor, "anchor", _ANCHORS)
    if anchor == "signal":
        return "torch" if (two_d and not flipped) else "scipy"
    return "torch" if flipped else "scipy"


_SIGNAL_SHAPES = {
    1: ("``(L,)``, ``(C, L)`` or ``(B, C, L)``", "``(k,)``", "``(C, k)``", "filter2d"),
    2: ("``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``", "``(kh, kw)``", "``(C, kh, kw)``", "filter2d"),
    3: (
        "``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``",
        "``(kd, kh, kw)``",
        "``(C, kd, kh, kw)``",
        "cnnconv.functional3d.filter3d",
    ),
}


def signal_function(
    name: str, module: str, dims: int, anchor: str, doc: str, body: Callable[..., torch.Tensor]
) -> Callable[..., torch.Tensor]:
    """One of the scipy-named correlate / convolve functions of ``dims`` dimensions: they share
    their signature and the ``Args`` and ``Returns`` written where ``doc`` says ``{args}``
    (``anchor`` tells what the two anchors match); the function calls
    ``body(input, kernel, mode, border, method, anchor)``. ``name`` and ``module`` are where it
    is published."""
    inp, shared, per_channel, dispatch = _SIGNAL_SHAPES[dims]
    args = f"""Args:
        input: {inp}.
        kernel: {shared} shared or {per_channel} per channel.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.
        method: see :func:`{dispatch}`.
        anchor: only matters for even kernels in ``same`` mode: {anchor}

    Returns:
        Tensor with the input's number of dimensions."""

    def signal(
        input: torch.Tensor,
        kernel: torch.Tensor,
        mode: str = "full",
        border: str = "zeros",
        *,
        method: str = "auto",
        anchor: str = "signal",
    ) -> torch.Tensor:
        return body(input, kernel, mode, border, method, anchor)

    signal.__name__ = signal.__qualname__ = name
    signal.__module__ = module
    signal.__doc__ = doc.replace("{args}", args)
    return signal


def _signal2d(input, kernel, mode, border, method, anchor, flip):
    """The body of :func:`correlate2d` (``flip`` False) and :func:`convolve2d`."""
    if flip and isinstance(kernel, torch.Tensor) and kernel.ndim >= 2:
        kernel = kernel.flip(-2, -1)
    return _signal_filter(input, kernel, mode, border, method, padding_anchor(anchor, flip))


correlate2d = signal_function(
    "correlate2d",
    __name__,
    2,
    """``"signal"`` (like
            ``scipy.signal.correlate2d``: kernel element ``(k-1)//2`` on the output pixel) or
            ``"ndimage"`` (like ``scipy.ndimage.correlate`` and ``cv2.filter2D``: element
            ``k//2``).""",
    """2-D correlation (no kernel flip, PyTorch's convention) of every channel.

    Agrees with ``scipy.signal.correlate2d`` (``border="zeros"``) in every mode, with its
    defaults (``mode="full"``, zeros), and with ``scipy.ndimage.correlate`` /
    ``cv2.filter2D`` for each border in ``same`` mode. In
    ``valid`` mode a kernel at least as large as the input in both dimensions swaps the roles
    of the two, as in scipy.signal (output ``(kh - H + 1, kw - W + 1)``); this also holds for
    :func:`convolve2d`, :func:`correlate1d` and :func:`convolve1d`.

    {args}

    Shape:
        ``(*, H, W) -> (*, H_out, W_out)``.

    Example:
        >>> x = torch.arange(9.0).reshape(3, 3)
        >>> correlate2d(x, K.sobel_x(), "same", border="replicate")[1, 1].item()
        8.0
    """,
    partial(_signal2d, flip=False),
)


convolve2d = signal_function(
    "convolve2d",
    __name__,
    2,
    """``"signal"`` (like
            ``scipy.signal.convolve2d``) or ``"ndimage"`` (like ``scipy.ndimage.convolve``).""",
    """2-D convolution: correlation with the kernel flipped in both axes.

    Agrees with ``scipy.signal.convolve2d`` (``border="zeros"``) in every mode, with its
    defaults (``mode="full"``, zeros), and with ``scipy.ndimage.convolve`` for each border in
    ``same`` mode.

    {args}

    Example:
        >>> x = torch.arange(9.0).reshape(3, 3)
        >>> convolve2d(x, K.sobel_x(), "same", border="replicate")[1, 1].item()
        -8.0
    """,
    partial(_signal2d, flip=True),
)


def _signal_filter(input, kernel, mode, border, method, anchor):
    """:func:`filter2d` with scipy.signal's ``valid`` rule: a kernel at least as large as the
    input in both dimensions (and larger in one) swaps the roles, the output being the
    correlation at the shifts where the input lies within the kernel; neither at least as
    large as the other in both dimensions is an error."""
    if mode != "valid" or not all(isinstance(t, torch.Tensor) and t.ndim >= 2 for t in (input, kernel)):
        return filter2d(input, kernel, mode, border, method=method, anchor=anchor)
    (h, w), (kh, kw) = input.shape[-2:], kernel.shape[-2:]
    if kh <= h and kw <= w:
        return filter2d(input, kernel, mode, border, method=method, anchor=anchor)
    if kh < h or kw < w:
        raise ValueError(
            f"in valid mode the input or the kernel must be at least as large as the other in "
            f"every dimension (as in scipy.signal), got input {(h, w)} and kernel {(kh, kw)}"
        )
    check_border(border)
    full = filter2d(input, kernel, "full", "zeros", method=method)  # only the input's own samples count
    return full[..., h - 1 : kh, w - 1 : kw].contiguous()


def _filter1d(input, kernel, mode, border, method, anchor, flip):
    x = check_input(input, 1, 3, "(L,), (C, L), (B, C, L)")
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.ndim not in (1, 2):
        raise ValueError(f"kernel must have shape (k,) or (C, k), got {tuple(kernel.shape)}")
    if kernel.ndim == 2 and x.ndim == 1:
        raise ValueError(
            f"kernel has {kernel.shape[0]} per-channel kernels but the input has no channel "
            f"dimension (input shape {tuple(x.shape)})"
        )
    pad_anchor = padding_anchor(anchor, flip, two_d=False)
    if flip:
        kernel = kernel.flip(-1)
    # A signal of length L is an image of height 1: (L,) -> (1, L), (C, L) -> (C, 1, L).
    y = _signal_filter(x.unsqueeze(-2), kernel.unsqueeze(-2), mode, border, method, pad_anchor)
    return y.squeeze(-2)


correlate1d = signal_function(
    "correlate1d",
    __name__,
    1,
    """``"signal"``
            (``scipy.signal.correlate`` and ``numpy.correlate``) or ``"ndimage"``
            (``scipy.ndimage.correlate1d``); both put kernel element ``k // 2`` on the output
            sample.""",
    """1-D correlation along the last axis (``numpy.correlate`` / ``scipy.signal.correlate``,
    whose defaults it takes: ``mode="full"``, zeros).

    {args}

    Example:
        >>> correlate1d(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 1.0]), "full").tolist()
        [1.0, 3.0, 5.0, 3.0, 0.0]
    """,
    partial(_filter1d, flip=False),
)


convolve1d = signal_function(
    "convolve1d",
    __name__,
    1,
    """``"signal"``
            (``numpy.convolve``, ``scipy.signal.convolve``) or ``"ndimage"``
            (``scipy.ndimage.convolve1d``).""",
    """1-D convolution (kernel flipped) along the last axis; matches ``numpy.convolve`` and
    ``scipy.signal.convolve`` (whose defaults it takes: ``mode="full"``, zeros).

    {args}

    Example:
        >>> convolve1d(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.0, 1.0]), "full").tolist()
        [0.0, 1.0, 3.0, 5.0, 3.0]
    """,
    partial(_filter1d, flip=True),
)


def separable_correlate2d(
    input: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, mode: str = "same", border: str = "zeros"
) -> torch.Tensor:
    """Correlation with the rank-1 kernel ``outer(ky, kx)`` as two 1-D passes.

    Args:
        input: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
        ky: column factor ``(kh,)`` or per channel ``(C, kh)``.
        kx: row factor ``(kw,)`` or per channel ``(C, kw)``.
        mode: ``"full"``, ``"same"`` or ``"valid"``.
        border: ``"zeros"``, ``"reflect"``, ``"replicate"``, ``"circular"`` or ``"symmetric"``.

    Returns:
        Same as ``correlate2d(input, outer(ky, kx), mode, border)``.

    Example:
        >>> x = torch.rand(3, 20, 20)
        >>> y = separable_correlate2d(x, K.gaussian1d(1.0), K.gaussian1d(1.0))
        >>> torch.allclose(y, correlate2d(x, K.gaussian(1.0), "same", method="direct"), atol=1e-6)
        True
    """
    return filter2d(input, None, mode, border, method="separable", factors=(ky, kx))
