"""Converted real models against their originals, through PyTorch's own machinery.

Six architectures (four torchvision classifiers built without weights, a RepLKNet-style net with
31/27 px depthwise kernels beside 5x5 branches, and a Hyena-style long-convolution sequence model)
are converted with ``method="auto"`` and ``method="fft"`` and compared with the unconverted model:
plain forward, autocast bfloat16 forward and backward, weights made under inference mode.
``torch.func.vmap(grad)`` (per-sample gradients), ``weight_norm`` parametrizations and forward
hooks are checked on small convolutional nets.
"""

import copy
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnconv.conv import FFTConv1d, FFTConv2d, convert

tv = pytest.importorskip("torchvision.models")

pytestmark = pytest.mark.slow


class RepLKBlock(nn.Module):
    """Depthwise large kernel with a parallel small-kernel branch (RepLKNet), then an MLP."""

    def __init__(self, channels: int, large: int, small: int = 5) -> None:
        super().__init__()
        self.large = nn.Conv2d(channels, channels, large, padding=large // 2, groups=channels, bias=False)
        self.small = nn.Conv2d(channels, channels, small, padding=small // 2, groups=channels, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.mlp = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.GELU(), nn.Conv2d(2 * channels, channels, 1))

    def forward(self, x):
        return x + self.mlp(self.norm(self.large(x) + self.small(x)))


def replk_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
        RepLKBlock(16, 31), RepLKBlock(16, 27),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


class HyenaStyle(nn.Module):
    """Gated long convolution: depthwise causal kernels as long as the sequence."""

    def __init__(self, channels: int = 8, length: int = 256) -> None:
        super().__init__()
        self.length = length
        self.proj = nn.Conv1d(channels, 3 * channels, 1)
        self.long = nn.Conv1d(channels, channels, length, padding=length - 1, groups=channels)
        self.short = nn.Conv1d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        q, k, v = self.short(self.proj(x)).chunk(3, dim=1)
        y = self.long(k * v)[..., : self.length]  # causal: the first L outputs of the full conv
        return self.out(q * y)


MODELS = {
    "resnet18": (lambda: tv.resnet18(weights=None), (2, 3, 32, 32)),
    "convnext_tiny": (lambda: tv.convnext_tiny(weights=None), (1, 3, 32, 32)),
    "mobilenet_v3_small": (lambda: tv.mobilenet_v3_small(weights=None), (2, 3, 32, 32)),
    "efficientnet_b0": (lambda: tv.efficientnet_b0(weights=None), (2, 3, 32, 32)),
    "replk": (replk_net, (2, 3, 64, 64)),
    "hyena": (lambda: HyenaStyle(), (2, 8, 256)),
}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def _convert(model: nn.Module, method: str) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a warning about small kernels on the FFT is expected
        return convert(copy.deepcopy(model), method=method, min_kernel_size=1)


def _n_converted(model: nn.Module) -> int:
    return sum(isinstance(m, (FFTConv1d, FFTConv2d)) for m in model.modules())


@pytest.fixture(scope="module", params=sorted(MODELS))
def model_case(request):
    build, shape = MODELS[request.param]
    torch.manual_seed(0)
    model = build().eval()
    return request.param, model, torch.randn(shape)


@pytest.mark.parametrize("method", ["auto", "fft"])
def test_converted_model_matches_original(model_case, method):
    name, model, x = model_case
    conv = _convert(model, method)
    assert _n_converted(conv) == sum(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in model.modules())
    assert list(conv.state_dict()) == list(model.state_dict())
    with torch.no_grad():
        assert _rel(conv(x), model(x)) < 1e-4


@pytest.mark.parametrize("method", ["auto", "fft"])
def test_autocast_bfloat16_forward_backward(model_case, method):
    """Under CPU autocast the converted model runs, returns bfloat16 and stays as close to the
    float32 result as the original does under the same autocast (conv outputs in bf16)."""
    name, model, x = model_case
    conv = _convert(model, method)
    with torch.no_grad():
        exact = model(x)
    results = {}
    for label, net in (("original", model), ("converted", conv)):
        net.zero_grad()
        xin = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(xin)
        assert y.dtype == torch.bfloat16
        y.float().square().mean().backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert torch.isfinite(xin.grad).all()
        results[label] = (y, xin.grad)
    err_orig = _rel(results["original"][0], exact)
    err_conv = _rel(results["converted"][0], exact)
    assert err_conv <= max(2 * err_orig, 0.03), (err_conv, err_orig)
    assert _rel(results["converted"][1], results["original"][1]) < 0.25


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("method", ["auto", "fft"])
def test_weights_made_under_inference_mode(name, method):
    """Weights created under inference mode (inference tensors) work as in nn.Conv2d."""
    build, shape = MODELS[name]
    with torch.inference_mode():
        torch.manual_seed(1)
        model = build().eval()
        conv = _convert(model, method)
        x = torch.randn(shape)
        y_ref, y = model(x), conv(x)
        y_again = conv(x)  # a second call goes through the eval-mode spectrum cache
    assert _rel(y, y_ref) < 1e-4
    assert torch.equal(y, y_again)


def _small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 5, padding=2), nn.ReLU(),
        nn.Conv2d(4, 3, 9, padding=4, groups=1), nn.Flatten(), nn.Linear(3 * 12 * 12, 2),
    ).double()


@pytest.mark.parametrize("method", ["auto", "fft"])
def test_vmap_grad_per_sample_gradients(method):
    """Opacus-style per-sample gradients with torch.func match nn.Conv2d's exactly (float64)."""
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(2)
    model = _small_net()
    conv = _convert(model, method)
    x = torch.randn(5, 2, 12, 12, dtype=torch.float64)
    t = torch.randint(0, 2, (5,))

    def per_sample(net):
        params = {k: v.detach() for k, v in net.named_parameters()}

        def loss(p, xi, ti):
            out = functional_call(net, p, (xi.unsqueeze(0),))
            return F.cross_entropy(out, ti.unsqueeze(0))

        return vmap(grad(loss), in_dims=(None, 0, 0))(params, x, t)

    ref, got = per_sample(model), per_sample(conv)
    assert set(ref) == set(got)
    for k in ref:
        assert got[k].shape == (5, *dict(model.named_parameters())[k].shape)
        torch.testing.assert_close(got[k], ref[k], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("method", ["auto", "fft"])
def test_weight_norm_and_hooks_carried_over(method):
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(3)
    model = nn.Sequential(weight_norm(nn.Conv2d(3, 6, 7, padding=3)), nn.ReLU(), nn.Conv2d(6, 4, 11, padding=5))
    calls = []
    model[2].register_forward_hook(lambda m, i, o: calls.append(type(m).__name__) or o * 2)
    model[0].register_forward_pre_hook(lambda m, i: (i[0] + 1,))
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        ref = model(x)
    conv = _convert(model, method)
    assert isinstance(conv[0], FFTConv2d) and isinstance(conv[2], FFTConv2d)
    assert list(conv.state_dict()) == list(model.state_dict())
    calls.clear()
    with torch.no_grad():
        y = conv(x)
    assert calls == ["FFTConv2d"]
    assert _rel(y, ref) < 1e-5
    # the parametrization still acts: rescaling the magnitude rescales the layer's weight
    with torch.no_grad():
        conv[0].parametrizations.weight.original0.mul_(3)
        model[0].parametrizations.weight.original0.mul_(3)
        assert _rel(conv(x), model(x)) < 1e-5
