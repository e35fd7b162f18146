"""Reliability of cnnconv.fft: the eval-mode spectrum cache under every kind of weight write,
argument errors with the exception types of F.conv2d, corrupted calibration files, inference
tensors, output layout and exact zeros where the input is zero."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnconv import planner
from cnnconv._utils import calibration
from cnnconv.conv import FFTConv1d, FFTConv2d
from cnnconv.fft import SpectrumCache, fft_conv1d, fft_conv2d
from cnnconv.learnable import LearnableConv2d


def _max_err(layer, x):
    with torch.no_grad():
        w, b = layer.weight.double(), layer.bias.double()
        ref = F.conv2d(x.double(), w, b, padding=layer.padding)
        return float((layer(x).double() - ref).abs().max())


# --------------------------------------------------------------------------------------------
# Spectrum cache: every write to the weight is seen
# --------------------------------------------------------------------------------------------


def _fused_adamw(layer):
    opt = torch.optim.AdamW(layer.parameters(), lr=0.5, fused=True)
    layer(torch.randn(1, 3, 24, 24)).square().sum().backward()
    opt.step()


def _data_mul(layer):
    layer.weight.data.mul_(2)


def _data_assign(layer):
    layer.weight.data = torch.randn_like(layer.weight)


def _data_assign_same_address(layer):
    shape = layer.weight.shape
    layer.weight.data = torch.empty(0)  # frees the old storage, which the next one may reuse
    layer.weight.data = torch.randn(shape)


def _numpy_write(layer):
    layer.weight.detach().numpy()[...] = torch.randn(layer.weight.shape).numpy()


def _vector_to_parameters(layer):
    vec = torch.nn.utils.parameters_to_vector(layer.parameters())
    torch.nn.utils.vector_to_parameters(torch.randn_like(vec), layer.parameters())


def _no_grad_copy(layer):
    with torch.no_grad():
        layer.weight.copy_(torch.randn_like(layer.weight))


WRITES = [_fused_adamw, _data_mul, _data_assign, _data_assign_same_address, _numpy_write,
          _vector_to_parameters, _no_grad_copy]


@pytest.mark.parametrize("write", WRITES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("method", ["fft", "auto"])
@pytest.mark.parametrize("cls", [FFTConv2d, LearnableConv2d])
def test_eval_cache_sees_every_weight_write(cls, method, write):
    layer = cls(3, 4, 15, padding=7, method=method)
    x = torch.randn(1, 3, 64, 64)
    layer.eval()
    assert _max_err(layer, x) < 1e-4  # fills the cache
    if method == "fft":
        assert layer._spectrum_cache.misses == 1
    layer.train()
    write(layer)
    layer.eval()
    assert _max_err(layer, x) < 1e-4  # fills the cache again (train() cleared it)
    write(layer)  # now without a train/eval switch
    assert _max_err(layer, x) < 1e-4
    assert layer.last_method == "fft"


def test_eval_cache_1d_sees_data_writes():
    layer = FFTConv1d(2, 3, 101, padding=50, method="fft").eval()
    x = torch.randn(2, 2, 500)
    with torch.no_grad():
        layer(x)
        layer.weight.data.mul_(-3)
        ref = F.conv1d(x.double(), layer.weight.double(), layer.bias.double(), padding=50)
        assert float((layer(x).double() - ref).abs().max()) < 1e-4


def test_cache_still_hits_on_unchanged_weight():
    cache = SpectrumCache()
    x, w = torch.randn(1, 2, 40, 40), torch.randn(3, 2, 9, 9)
    with torch.no_grad():
        y1 = fft_conv2d(x, w, padding=4, cache=cache)
        y2 = fft_conv2d(x, w, padding=4, cache=cache)
        w[0, 0, 0, 0] += 1.0
        y3 = fft_conv2d(x, w, padding=4, cache=cache)
    assert cache.hits == 1 and cache.misses == 2 and torch.equal(y1, y2)
    ref = F.conv2d(x.double(), w.double(), padding=4)
    assert float((y3.double() - ref).abs().max()) < 1e-4


# --------------------------------------------------------------------------------------------
# Inference tensors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fft", "auto"])
def test_layer_created_under_inference_mode(method):
    with torch.inference_mode():
        layer = FFTConv2d(3, 4, 15, padding=7, method=method).eval()
        x = torch.randn(1, 3, 64, 64)
        y1, y2 = layer(x), layer(x)
        ref = F.conv2d(x.double(), layer.weight.double(), layer.bias.double(), padding=7)
        layer.weight.mul_(2)  # in-place write to an inference tensor
        y3 = layer(x)
    assert layer.last_method == "fft"
    assert float((y1.double() - ref).abs().max()) < 1e-4 and torch.equal(y1, y2)
    w, b = layer.weight.detach().double(), layer.bias.detach().double()
    assert float((y3.double() - F.conv2d(x.double(), w, b, padding=7)).abs().max()) < 1e-4


def test_fft_conv_with_cache_on_inference_tensors():
    cache = SpectrumCache()
    with torch.inference_mode():
        x, w = torch.randn(2, 3, 30, 30), torch.randn(4, 3, 7, 7)
        y = fft_conv2d(x, w, padding=3, cache=cache)
        y = fft_conv2d(x, w, padding=3, cache=cache)
    assert cache.hits == 1
    assert float((y.double() - F.conv2d(x.double(), w.double(), padding=3)).abs().max()) < 1e-4


# --------------------------------------------------------------------------------------------
# Argument errors as F.conv2d's
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wshape", [(2, 3, 0, 3), (2, 3, 3, 0), (0, 3, 3, 3)])
def test_empty_kernel_or_no_output_channels_raise_like_conv2d(wshape):
    x, w = torch.randn(1, 3, 10, 10), torch.randn(*wshape)
    with pytest.raises(RuntimeError):
        F.conv2d(x, w)
    with pytest.raises(RuntimeError, match="weight"):
        fft_conv2d(x, w)


def test_empty_kernel_1d_raises_like_conv1d():
    x, w = torch.randn(1, 3, 10), torch.randn(2, 3, 0)
    with pytest.raises(RuntimeError):
        F.conv1d(x, w)
    with pytest.raises(RuntimeError, match="weight"):
        fft_conv1d(x, w)


@pytest.mark.parametrize("budget", [float("nan"), float("inf"), -1, 0, "1e9", True])
def test_bad_memory_budget(budget):
    x, w = torch.randn(1, 2, 20, 20), torch.randn(2, 2, 5, 5)
    err = TypeError if isinstance(budget, (str, bool)) else ValueError
    with pytest.raises(err, match="memory_budget"):
        fft_conv2d(x, w, memory_budget=budget)


@pytest.mark.parametrize(
    "case",
    [
        dict(x=(1, 3, 10, 10), w=(2, 4, 3, 3)),  # channels
        dict(x=(1, 3, 10, 10), w=(2, 1, 3, 3), groups=3),  # out channels vs groups
        dict(x=(1, 3, 10, 10), w=(2, 3, 3, 3), wdtype=torch.float64),  # weight dtype
        dict(x=(1, 3, 10, 10), w=(2, 3, 3, 3), b=(2,), bdtype=torch.float64),  # bias dtype
        dict(x=(1, 3, 10, 10), w=(2, 3, 3, 3), b=(3,)),  # bias shape
        dict(x=(1, 3, 10, 10), w=(2, 3, 13, 3)),  # kernel larger than the input
        dict(x=(10, 10), w=(2, 3, 3, 3)),  # input dims
    ],
)
def test_mismatches_raise_runtime_errors_like_conv2d(case):
    x = torch.randn(*case["x"])
    w = torch.randn(*case["w"], dtype=case.get("wdtype", torch.float32))
    b = torch.randn(*case["b"], dtype=case.get("bdtype", torch.float32)) if "b" in case else None
    g = case.get("groups", 1)
    with pytest.raises(RuntimeError):
        F.conv2d(x, w, b, groups=g)
    with pytest.raises(RuntimeError) as info:
        fft_conv2d(x, w, b, groups=g)
    assert str(info.value)  # our message, naming the argument


def test_channel_mismatch_1d_is_runtime_error_and_still_value_error():
    x, w = torch.randn(1, 3, 50), torch.randn(2, 4, 5)
    with pytest.raises(RuntimeError, match="channels"):
        fft_conv1d(x, w)
    with pytest.raises(ValueError, match="channels"):
        fft_conv1d(x, w)


# --------------------------------------------------------------------------------------------
# Output layout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 5, "same"])
def test_output_contiguous_like_conv2d(stride, padding):
    if padding == "same" and stride != 1:
        pytest.skip("same padding needs stride 1")
    x, w = torch.randn(2, 3, 33, 29), torch.randn(4, 3, 11, 7)
    y = fft_conv2d(x, w, padding=padding, stride=stride)
    ref = F.conv2d(x.double(), w.double(), padding=padding, stride=stride)
    assert y.is_contiguous()
    assert y.view(2, -1).shape == (2, ref[0].numel())
    assert float((y.double() - ref).abs().max()) < 1e-4
    y1 = fft_conv1d(x[:, :, 0], w[:, :, 0], padding=padding, stride=stride)
    assert y1.is_contiguous()


@pytest.mark.parametrize("which", ["input", "weight"])
def test_channels_last_kept_like_conv2d(which):
    x, w = torch.randn(2, 3, 40, 40), torch.randn(4, 3, 9, 9)
    if which == "input":
        x = x.to(memory_format=torch.channels_last)
    else:
        w = w.to(memory_format=torch.channels_last)
    ref = F.conv2d(x, w, padding=4)
    y = fft_conv2d(x, w, padding=4)
    assert y.is_contiguous(memory_format=torch.channels_last) == ref.is_contiguous(
        memory_format=torch.channels_last
    )
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert float((y - ref).abs().max()) < 1e-4


# --------------------------------------------------------------------------------------------
# Exact zeros where the input is zero
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("groups", [1, 3])
def test_zero_region_gives_exact_zeros(dtype, tol, groups):
    x = torch.relu(torch.randn(2, 3, 96, 96, dtype=dtype))
    x[:, :, 20:80, 10:70] = 0  # larger than the kernel
    x[1, :, :, 48:] = 0
    w = torch.randn(6, 3 // groups, 15, 15, dtype=dtype)
    b = torch.randn(6, dtype=dtype)
    y = fft_conv2d(x, w, b, padding=7, groups=groups)
    ref = F.conv2d(x, w, b, padding=7, groups=groups)
    ref64 = F.conv2d(x.double(), w.double(), b.double(), padding=7, groups=groups)
    dead = F.conv2d(x, torch.ones_like(w), padding=7, groups=groups) == 0
    assert int(dead.sum()) > 2000
    assert torch.equal(y[dead], ref[dead])  # the bias, bit for bit
    assert torch.equal(torch.relu(y - b.reshape(-1, 1, 1))[dead], torch.zeros_like(y[dead]))
    assert float((y.double() - ref64).norm() / ref64.norm()) < tol


def test_zero_region_exact_in_1d_strided_and_dilated_and_gradients_unchanged():
    x = torch.randn(2, 2, 400, requires_grad=True)
    mask = torch.ones(2, 2, 400)
    mask[:, :, 100:300] = 0
    xz = x * mask
    w = torch.randn(3, 2, 21, requires_grad=True)
    y = fft_conv1d(xz, w, padding=20, stride=2, dilation=2)
    ref = F.conv1d(xz.detach().double(), w.detach().double(), padding=20, stride=2, dilation=2)
    dead = ref == 0
    assert int(dead.sum()) > 100 and torch.equal(y.detach()[dead], ref[dead].float())
    gy = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, w), gy)
    xr, wr = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    yr = F.conv1d(xr * mask.double(), wr, padding=20, stride=2, dilation=2)
    gxr, gwr = torch.autograd.grad(yr, (xr, wr), gy.double())
    assert float((gx.double() - gxr).norm() / gxr.norm()) < 1e-5
    assert float((gw.double() - gwr).norm() / gwr.norm()) < 1e-5


# --------------------------------------------------------------------------------------------
# Corrupted calibration file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"cpu": {"fft": 3e-10, "matm',  # truncated
        "[1, 2, 3]",  # a list
        json.dumps({"cpu": {"fft": "fast"}}),  # a string where a number is expected
        json.dumps({"cpu": [1, 2]}),
        json.dumps({"cpu": {"direct_dense": [[1, "a"]]}}),
        json.dumps({"cpu": {"direct_dense_by_ch": [[16, 3]]}}),
        json.dumps({"cpu": {"t0_fft": None}}),
        json.dumps({"cpu": {"matmul": -1.0}}),
    ],
)
def test_corrupted_calibration_is_ignored_with_one_warning(tmp_path, monkeypatch, text):
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path))
    (tmp_path / "calibration.json").write_text(text)
    calibration.forget_loaded()
    x, w = torch.randn(1, 3, 64, 64), torch.randn(3, 1, 31, 31)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = fft_conv2d(x, w, padding=15, groups=3)
        fft_conv2d(x, w, padding=15, groups=3)
        consts = planner.load_constants("cpu")
    calibration.forget_loaded()
    mine = [c for c in caught if "calibration.json" in str(c.message)]
    assert len(mine) == 1, [str(c.message) for c in caught]
    assert consts == planner.DEFAULT_CONSTANTS["cpu"]
    ref = F.conv2d(x.double(), w.double(), padding=15, groups=3)
    assert float((y.double() - ref).abs().max()) < 1e-4


def test_valid_calibration_still_used(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path))
    (tmp_path / "calibration.json").write_text(json.dumps({"cpu": {"fft": 1.5e-10}}))
    calibration.forget_loaded()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        consts = planner.load_constants("cpu")
    calibration.forget_loaded()
    assert consts["fft"] == 1.5e-10 and math.isclose(consts["matmul"], 6.0e-10)
