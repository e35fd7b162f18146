"""method="auto" decides once per input shape (not on every call), and the direct path is
nn.Conv2d's own."""

import pytest
import torch
import torch.nn as nn

import cnnconv.planner
from cnnconv.conv import FFTConv1d, FFTConv2d, convert
from cnnconv.learnable import LearnableConv2d


@pytest.fixture
def planner_calls(monkeypatch):
    calls = []
    real = cnnconv.planner.choose_method

    def counting(*args, **kwargs):
        calls.append(tuple(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(cnnconv.planner, "choose_method", counting)
    return calls


@pytest.mark.parametrize("cls", [FFTConv2d, LearnableConv2d])
def test_auto_decides_once_per_input_shape(planner_calls, cls):
    layer = cls(4, 4, 3, padding=1, method="auto")
    x = torch.randn(2, 4, 16, 16)
    for _ in range(5):
        layer(x)
    assert planner_calls == [(2, 4, 16, 16)]
    layer(torch.randn(2, 4, 16, 16))  # new data, same shape: no new decision
    assert len(planner_calls) == 1
    layer(torch.randn(1, 4, 16, 16))  # new shape: decided again
    layer(torch.randn(1, 4, 16, 16))
    assert planner_calls == [(2, 4, 16, 16), (1, 4, 16, 16)]
    layer.double()(x.double())  # new dtype: decided again (the planner's costs depend on it)
    assert planner_calls[-1] == (2, 4, 16, 16) and len(planner_calls) == 3


def test_decision_follows_the_shape(planner_calls):
    layer = FFTConv2d(2, 2, 31, padding=15, method="auto")
    with torch.no_grad():
        layer(torch.randn(1, 2, 8, 8))
        small = layer.last_method
        layer(torch.randn(8, 2, 256, 256))
        large = layer.last_method
        layer(torch.randn(1, 2, 8, 8))
    assert (small, large, layer.last_method) == ("direct", "fft", "direct")
    assert len(planner_calls) == 2


def test_fixed_methods_never_ask_the_planner(planner_calls):
    x = torch.randn(1, 3, 40)
    FFTConv1d(3, 3, 5, method="fft")(x)
    FFTConv1d(3, 3, 5, method="direct")(x)
    assert planner_calls == []


def test_direct_decision_is_bitwise_nn_conv2d():
    ref = nn.Conv2d(16, 16, 3, padding=1, padding_mode="reflect")
    layer = FFTConv2d(16, 16, 3, padding=1, padding_mode="reflect", method="auto")
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(1, 16, 32, 32)
    y = layer(x)
    assert layer.last_method == "direct" and torch.equal(y, ref(x))


def test_compiled_fft_layers_do_not_recompile_per_layer():
    """Under torch.compile the FFT engine runs inside the graph as custom ops; the layer code shared by every
    FFT layer must not be recompiled for each layer's weight shape and stride."""
    dynamo = pytest.importorskip("torch._dynamo")
    torch.manual_seed(0)
    layers = []
    for i in range(9):
        k = 3 + 2 * (i % 3)
        layers += [nn.Conv2d(3, 3, k, stride=1 + i % 2, padding=k // 2), nn.ReLU()]
    net = nn.Sequential(*layers).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = net(x)
        convert(net, method="fft", min_kernel_size=1)
        dynamo.reset()
        with dynamo.config.patch(recompile_limit=3, fail_on_recompile_limit_hit=True):
            y = torch.compile(net, backend="eager")(x)
    dynamo.reset()
    assert all(m.last_method == "fft" for m in net if isinstance(m, FFTConv2d))
    assert float((y - ref).norm() / ref.norm()) < 1e-5
