"""Property tests: cnnconv.fft agrees with float64 F.conv1d / F.conv2d (forward and gradients)."""

import warnings

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnconv.fft import fft_conv1d, fft_conv2d


def _rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    den = b.norm()
    return float((a - b).norm() / den) if den > 0 else float(a.norm())  # noqa: E501


def _reference(x, w, b, stride, padding, dilation, groups, mode, nd):
    """float64 direct convolution with nn.ConvNd's handling of padding modes."""
    x, w = x.double(), w.double()
    b = None if b is None else b.double()
    conv = F.conv1d if nd == 1 else F.conv2d
    if mode == "zeros":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # even kernels with 'same' copy the input
            return conv(x, w, b, stride, padding, dilation, groups)
    ks = w.shape[2:]
    if padding == "same":
        pads = []
        for k, d in zip(ks, dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
    elif padding == "valid":
        pads = [(0, 0)] * nd
    else:
        pads = [(p, p) for p in padding]
    flat = [v for pb, pa in reversed(pads) for v in (pb, pa)]
    return conv(F.pad(x, flat, mode=mode), w, b, stride, 0, dilation, groups)


@st.composite
def conv_case(draw, nd):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    if draw(st.booleans()):  # depthwise (with multiplier)
        cin = groups
    k = tuple(draw(st.integers(1, 8)) for _ in range(nd))
    dilation = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(nd))
    kd = [d * (kk - 1) + 1 for kk, d in zip(k, dilation)]
    kind = draw(st.sampled_from(["int", "same", "valid"]))
    stride = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(nd))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    if kind == "same":
        stride = (1,) * nd
        padding = "same"
        pads = [(d * (kk - 1)) // 2 + 1 for kk, d in zip(k, dilation)]
    elif kind == "valid":
        padding = "valid"
        pads = [0] * nd
    else:
        padding = tuple(draw(st.integers(0, 5)) for _ in range(nd))
        pads = list(padding)
    spatial = []
    for kdi, p in zip(kd, pads):
        lo = max(kdi - 2 * p, 1)
        if mode != "zeros":
            lo = max(lo, p + 1)  # reflect needs pad < size
        spatial.append(draw(st.integers(lo, lo + 12)))
    batch = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    return dict(
        batch=batch, cin=cin, cout=cout, k=k, groups=groups, stride=stride, padding=padding,
        dilation=dilation, mode=mode, spatial=tuple(spatial), bias=bias,
    )


def _run(case, nd, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(case["batch"], case["cin"], *case["spatial"], generator=g, dtype=torch.float64)
    w = torch.randn(case["cout"], case["cin"] // case["groups"], *case["k"], generator=g,
                    dtype=torch.float64)
    b = torch.randn(case["cout"], generator=g, dtype=torch.float64) if case["bias"] else None
    args = (case["stride"], case["padding"], case["dilation"], case["groups"])
    ref = _reference(x, w, b, *args, case["mode"], nd)
    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref = _reference(xr, wr, b, *args, case["mode"], nd)
    ref_gx, ref_gw = torch.autograd.grad(ref, (xr, wr), gy)

    xt = x.to(dtype).requires_grad_()
    wt = w.to(dtype).requires_grad_()
    bt = None if b is None else b.to(dtype)
    fn = fft_conv1d if nd == 1 else fft_conv2d
    y = fn(xt, wt, bt, *args, padding_mode=case["mode"])
    assert y.shape == ref.shape and y.dtype == dtype
    gx, gw = torch.autograd.grad(y, (xt, wt), gy.to(dtype))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert _rel(y, ref) <= tol, ("forward", case, _rel(y, ref))
    assert _rel(gx, ref_gx) <= tol, ("grad input", case, _rel(gx, ref_gx))
    assert _rel(gw, ref_gw) <= tol, ("grad weight", case, _rel(gw, ref_gw))


@settings(max_examples=60, deadline=None)
@given(case=conv_case(2), seed=st.integers(0, 2**31 - 1))
def test_conv2d_matches_float64_reference_float32(case, seed):
    _run(case, 2, torch.float32, seed)


@settings(max_examples=40, deadline=None)
@given(case=conv_case(2), seed=st.integers(0, 2**31 - 1))
def test_conv2d_matches_float64_reference_float64(case, seed):
    _run(case, 2, torch.float64, seed)


@settings(max_examples=40, deadline=None)
@given(case=conv_case(1), seed=st.integers(0, 2**31 - 1))
def test_conv1d_matches_float64_reference_float32(case, seed):
    _run(case, 1, torch.float32, seed)


@settings(max_examples=30, deadline=None)
@given(case=conv_case(1), seed=st.integers(0, 2**31 - 1))
def test_conv1d_matches_float64_reference_float64(case, seed):
    _run(case, 1, torch.float64, seed)


@settings(max_examples=12, deadline=None)
@given(
    groups=st.sampled_from([1, 2]),
    k=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    dilation=st.sampled_from([(1, 1), (2, 1)]),
    stride=st.sampled_from([(1, 1), (2, 3)]),
    spatial=st.tuples(st.integers(70, 110), st.integers(70, 110)),
    padding=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    depthwise=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_tiled_path_matches_reference(groups, k, dilation, stride, spatial, padding, depthwise,
                                      seed):
    """A small memory budget forces overlap-save tiles (in several chunks); results must not
    change."""
    from cnnconv.fft.plan import plan_for

    g = torch.Generator().manual_seed(seed)
    cin = groups if depthwise else 2 * groups
    cout = 2 * groups
    x = torch.randn(2, cin, *spatial, generator=g, dtype=torch.float64)
    w = torch.randn(cout, cin // groups, *k, generator=g, dtype=torch.float64, requires_grad=True)
    budget = 2 * cout * (cin // groups) * 64 * 33 * 16 + 4096
    args = (stride, padding, dilation, groups)
    plan = plan_for(x, w, *args, memory_budget=budget)
    assert plan["tiled"], plan
    xr = x.clone().requires_grad_()
    ref = F.conv2d(xr, w, None, *args)
    xt = x.clone().requires_grad_()
    y = fft_conv2d(xt, w, None, *args, memory_budget=budget)
    assert _rel(y, ref) <= 1e-12
    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    a = torch.autograd.grad(y, (xt, w), gy)
    b = torch.autograd.grad(ref, (xr, w), gy)
    assert _rel(a[0], b[0]) <= 1e-12 and _rel(a[1], b[1]) <= 1e-12
