"""cnnconv.fft inside PyTorch's machinery: meta tensors, autocast and torch.func transforms."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, jacrev, vmap

from cnnconv.conv import FFTConv2d
from cnnconv.fft import fft_conv1d, fft_conv2d

# --------------------------------------------------------------------------------------------
# Meta tensors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [dict(padding=7), dict(padding="same"), dict(stride=2, dilation=2, padding=3),
           dict(padding=7, padding_mode="reflect"), dict(groups=3, padding=7)]
)
def test_meta_tensors_give_conv2d_shapes(kw):
    x = torch.empty(2, 3, 40, 37, device="meta")
    w = torch.empty(6, 3 // kw.get("groups", 1), 15, 15, device="meta")
    b = torch.empty(6, device="meta")
    mode = kw.pop("padding_mode", "zeros")
    y = fft_conv2d(x, w, b, padding_mode=mode, **kw)
    xr = torch.randn(2, 3, 40, 37)
    if mode != "zeros":
        xr = F.pad(xr, (7, 7, 7, 7), mode=mode)
        kw["padding"] = 0
    ref = F.conv2d(xr, torch.randn(*w.shape), torch.randn(6), **kw)
    assert y.device.type == "meta" and y.shape == ref.shape and y.dtype == ref.dtype


def test_meta_tensors_1d_and_layer():
    y = fft_conv1d(torch.empty(3, 2, 100, device="meta"), torch.empty(4, 2, 31, device="meta"),
                   padding=15)
    assert y.device.type == "meta" and y.shape == (3, 4, 100)
    layer = FFTConv2d(3, 8, 31, padding=15, method="fft", device="meta")
    out = layer(torch.empty(1, 3, 64, 64, device="meta"))
    assert out.device.type == "meta" and out.shape == (1, 8, 64, 64)


# --------------------------------------------------------------------------------------------
# Autocast
# --------------------------------------------------------------------------------------------


def _pair(method):
    torch.manual_seed(1)
    ref = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 31, padding=15))
    ours = nn.Sequential(nn.Conv2d(3, 8, 1), FFTConv2d(8, 8, 31, padding=15, method=method))
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("method", ["fft", "auto"])
@pytest.mark.parametrize("size", [16, 96])
def test_autocast_bfloat16_forward_and_backward_like_conv2d(method, size):
    ref, ours = _pair(method)
    x = torch.randn(2, 3, size, size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yr, yo = ref(x), ours(x)
    assert yo.dtype == yr.dtype == torch.bfloat16
    gy = torch.randn_like(yr, dtype=torch.float32)
    yr.float().backward(gy)
    yo.float().backward(gy)
    yo32, yr32 = yo.detach().float(), yr.detach().float()
    assert float((yo32 - yr32).norm() / yr32.norm()) < 2e-2
    for pr, po in zip(ref.parameters(), ours.parameters()):
        assert po.grad.dtype == pr.grad.dtype == torch.float32
        assert float((po.grad - pr.grad).norm() / pr.grad.norm()) < 3e-2
    # Inside the FFT layer the work is done in float32: closer to a float64 reference of the
    # same (bfloat16-rounded) operands than bfloat16 arithmetic would be.
    with torch.no_grad():
        h = ours[0](x).to(torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = ours[1](h)
        conv = ours[1]
        exact = F.conv2d(h.double(), conv.weight.to(torch.bfloat16).double(),
                         conv.bias.to(torch.bfloat16).double(), padding=15)
    assert float((y.double() - exact).norm() / exact.norm()) < 8e-3


def test_autocast_functional_float16_and_backward_inside_autocast():
    x = torch.randn(1, 2, 40, 40, requires_grad=True)
    w = torch.randn(3, 2, 9, 9, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.float16):
        y = fft_conv2d(x, w, padding=4)
        ref = F.conv2d(x, w, padding=4)
        assert y.dtype == ref.dtype == torch.float16
        gx, gw = torch.autograd.grad(y.float().sum(), (x, w))
        gxr, gwr = torch.autograd.grad(ref.float().sum(), (x, w))
    assert gx.dtype == torch.float32 and gw.dtype == torch.float32
    assert float((gx - gxr).norm() / gxr.norm()) < 5e-3
    assert float((gw - gwr).norm() / gwr.norm()) < 5e-3


# --------------------------------------------------------------------------------------------
# torch.func
# --------------------------------------------------------------------------------------------


def _per_sample_grads(conv_fn, params, x, t):
    def loss(p, xi, ti):
        y = conv_fn(xi.unsqueeze(0), p["weight"], p["bias"])
        return (y - ti.unsqueeze(0)).square().sum()

    return vmap(grad(loss), in_dims=(None, 0, 0))(params, x, t)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("groups", [1, 2])
def test_per_sample_gradients_vmap_grad(dtype, tol, groups):
    x = torch.randn(4, 4, 24, 24, dtype=dtype)
    t = torch.randn(4, 6, 24, 24, dtype=dtype)
    params = {"weight": torch.randn(6, 4 // groups, 9, 9, dtype=dtype),
              "bias": torch.randn(6, dtype=dtype)}
    ours = _per_sample_grads(lambda a, w, b: fft_conv2d(a, w, b, padding=4, groups=groups),
                             params, x, t)
    ref = _per_sample_grads(lambda a, w, b: F.conv2d(a, w, b, padding=4, groups=groups),
                            params, x, t)
    for k in params:
        assert ours[k].shape == (4, *params[k].shape)
        assert float((ours[k] - ref[k]).norm() / ref[k].norm()) < tol


def test_layer_with_functional_call_vmap_grad_and_jacrev():
    layer = FFTConv2d(2, 3, 7, padding=3, method="fft").double()
    ref = nn.Conv2d(2, 3, 7, padding=3).double()
    ref.load_state_dict(layer.state_dict())
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.randn(3, 2, 12, 12, dtype=torch.float64)

    def loss(mod):
        return lambda p, xi: functional_call(mod, p, (xi.unsqueeze(0),)).tanh().sum()

    g_ours = vmap(grad(loss(layer)), in_dims=(None, 0))(params, x)
    g_ref = vmap(grad(loss(ref)), in_dims=(None, 0))(params, x)
    for k in params:
        assert float((g_ours[k] - g_ref[k]).norm() / g_ref[k].norm()) < 1e-10

    w = params["weight"]
    j_ours = jacrev(lambda a: fft_conv2d(a, w, padding=3))(x[:1])
    j_ref = jacrev(lambda a: F.conv2d(a, w, padding=3))(x[:1])
    assert j_ours.shape == j_ref.shape
    assert float((j_ours - j_ref).norm() / j_ref.norm()) < 1e-10
    v_ours = vmap(lambda a: fft_conv2d(a, w, padding=3))(x)
    assert float((v_ours - F.conv2d(x, w, padding=3)).abs().max()) < 1e-10


def test_grad_of_1d_matches_conv1d():
    x, w = torch.randn(2, 3, 200, dtype=torch.float64), torch.randn(4, 3, 51, dtype=torch.float64)
    g_ours = grad(lambda ww: fft_conv1d(x, ww, padding=25).sin().sum())(w)
    g_ref = grad(lambda ww: F.conv1d(x, ww, padding=25).sin().sum())(w)
    assert float((g_ours - g_ref).norm() / g_ref.norm()) < 1e-10
