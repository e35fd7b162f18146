"""convert / convert_back on layers that are more than a plain nn.Conv2d: subclasses,
parametrizations, hooks, old-style spectral norm, lazy layers, and the default kernel-size
threshold of method="fft"."""

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrizations, parametrize

from cnnconv.conv import FFT_MIN_KERNEL_SIZE, ConvertReport, FFTConv2d, convert, convert_back


def _rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


class StdConv2d(nn.Conv2d):
    """A weight-standardising convolution (timm's StdConv2d): forward is its own."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Tagged(nn.Conv2d):
    """A subclass that keeps nn.Conv2d's forward but adds a method of its own."""

    def tag(self):
        return "tagged"


def test_subclass_with_own_forward_is_skipped_with_a_warning_and_reported():
    net = nn.Sequential(StdConv2d(3, 4, 11, padding=5), nn.ReLU(), Tagged(4, 4, 11, padding=5),
                        nn.Conv2d(4, 2, 11, padding=5))
    x = torch.randn(2, 3, 24, 24)
    ref = net(x)
    with pytest.warns(UserWarning, match=r"'0' \(StdConv2d overrides forward.*'2' \(Tagged"):
        out, report = convert(net, method="fft", report=True)
    assert out is net and isinstance(report, ConvertReport)
    assert type(net[0]) is StdConv2d and type(net[2]) is Tagged and type(net[3]) is FFTConv2d
    assert report.converted == ["3"]
    assert set(report.skipped) == {"0", "2"} and "overrides forward" in report.skipped["0"]
    assert _rel(net(x), ref) < 1e-5


def test_plain_model_converts_without_warning():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 11))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, report = convert(net, method="fft", report=True)
    assert report.converted == ["1"]
    assert report.skipped == {"0": f"kernel (3, 3) is smaller than min_kernel_size={FFT_MIN_KERNEL_SIZE}"}


@pytest.mark.parametrize("method", ["fft", "direct", "auto"])
@pytest.mark.parametrize("norm", ["weight_norm", "spectral_norm"])
def test_parametrized_conv_is_converted_with_its_parametrization(method, norm):
    conv = getattr(parametrizations, norm)(nn.Conv2d(3, 5, 9, padding=4)).eval()
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        ref = conv(x)
    keys = list(conv.state_dict())
    originals = list(conv.parametrizations.weight.parameters())
    new = convert(conv, method=method, min_kernel_size=1)
    assert isinstance(new, FFTConv2d) and parametrize.is_parametrized(new, "weight")
    assert list(new.state_dict()) == keys
    assert list(new.parametrizations.weight.parameters()) == originals  # the same Parameters
    with torch.no_grad():
        assert _rel(new(x), ref) < 1e-5
    # Gradients reach the parametrization's originals through the FFT layer.
    new.train()
    new(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in originals)
    # And back: a plain (parametrized) nn.Conv2d with the same keys and outputs.
    back = convert_back(new).eval()
    assert isinstance(back, nn.Conv2d) and not isinstance(back, FFTConv2d)
    assert parametrize.is_parametrized(back, "weight") and list(back.state_dict()) == keys
    with torch.no_grad():
        assert _rel(back(x), new.eval()(x)) < 1e-5


def test_parametrized_layer_in_model_loads_the_original_checkpoint():
    net = nn.Sequential(parametrizations.weight_norm(nn.Conv2d(2, 3, 13, padding=6)), nn.Tanh())
    sd = net.state_dict()
    x = torch.randn(1, 2, 30, 30)
    ref = net(x)
    convert(net, method="fft")
    assert isinstance(net[0], FFTConv2d)
    net.load_state_dict(sd, strict=True)
    assert _rel(net(x), ref) < 1e-5


def test_old_style_spectral_norm_is_converted():
    conv = nn.utils.spectral_norm(nn.Conv2d(3, 4, 9, padding=4))
    x = torch.randn(2, 3, 18, 18)
    conv(x)  # one power iteration in training mode, as a model would have done
    conv.eval()
    with torch.no_grad():
        ref = conv(x)
    keys = list(conv.state_dict())
    new = convert(conv, method="fft").eval()
    assert isinstance(new, FFTConv2d) and list(new.state_dict()) == keys
    with torch.no_grad():
        assert _rel(new(x), ref) < 1e-5
    nn.utils.remove_spectral_norm(new)  # the hook travelled with the layer
    assert isinstance(new.weight, nn.Parameter)


def test_forward_hooks_and_pre_hooks_travel_with_the_layer():
    conv = nn.Conv2d(2, 3, 11, padding=5)
    calls = []
    pre = conv.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    post = conv.register_forward_hook(lambda m, args, out: calls.append(type(m).__name__) or out + 1)
    x = torch.randn(1, 2, 16, 16)
    ref = conv(x)
    assert _rel(ref, F.conv2d(2 * x, conv.weight, conv.bias, padding=5) + 1) < 1e-6
    new = convert(conv, method="fft")
    assert isinstance(new, FFTConv2d)
    assert _rel(new(x), ref) < 1e-5 and calls == ["Conv2d", "FFTConv2d"]
    # The handles returned for the original layer still remove the hooks.
    pre.remove()
    post.remove()
    assert _rel(new(x), F.conv2d(x, conv.weight, conv.bias, padding=5)) < 1e-5
    assert len(calls) == 2


def test_uninitialised_lazy_conv_is_skipped():
    net = nn.Sequential(nn.LazyConv2d(4, 11))
    with pytest.warns(UserWarning, match="lazy"):
        _, report = convert(net, method="fft", report=True)
    assert report.converted == [] and "lazy" in report.skipped["0"]


def test_fft_default_keeps_small_kernels_direct_on_resnet18():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(weights=None)
    _, report = convert(model, method="fft", report=True)
    assert report.converted == []  # every kernel of resnet18 is 7x7 or smaller
    assert len(report.skipped) == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    small = convert(nn.Sequential(nn.Conv2d(1, 1, 3)), method="fft", min_kernel_size=1)
    assert type(small[0]) is FFTConv2d  # an explicit threshold is obeyed


def test_resnet18_auto_keeps_outputs_and_state_dict():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    keys = list(model.state_dict())
    n_convs = sum(type(m) is nn.Conv2d for m in model.modules())
    _, report = convert(model, method="auto", report=True)
    assert len(report.converted) == n_convs == 20 and report.skipped == {}
    assert all(type(m) is not nn.Conv2d for m in model.modules())
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        assert _rel(model(x), ref) < 1e-5
    convert_back(model)
    assert sum(type(m) is nn.Conv2d for m in model.modules()) == n_convs


def test_convert_report_argument_must_be_bool():
    with pytest.raises(TypeError, match="report must be a bool, got 'yes'"):
        convert(nn.Conv2d(1, 1, 3), report="yes")
