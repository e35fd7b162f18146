"""FFT layers captured as graphs: torch.compile (fullgraph, no graph breaks, the engine inside the
graph, gradients), torch.export, ONNX (dynamo, run in onnxruntime) and torch.jit.trace reproduce
eager results; torch.jit.script says what to do instead."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._dynamo.utils import counters

from cnnconv.conv import FFTConv1d, FFTConv2d, FFTConv3d, convert_back
from cnnconv.fft import fft_conv2d, ops
from cnnconv.fft.plan import plan_for

# (class, constructor kwargs, input shape): small shapes, every kind of geometry.
CASES = {
    "1d_causal_dilated": (
        FFTConv1d,
        {"in_channels": 2, "out_channels": 3, "kernel_size": 7, "padding": "causal", "dilation": 2},
        (2, 2, 40),
    ),
    "1d_stride": (
        FFTConv1d,
        {"in_channels": 2, "out_channels": 3, "kernel_size": 9, "stride": 3, "padding": 4},
        (2, 2, 41),
    ),
    "2d_same": (FFTConv2d, {"in_channels": 3, "out_channels": 4, "kernel_size": 9, "padding": "same"}, (2, 3, 20, 22)),
    "2d_stride_groups": (
        FFTConv2d,
        {"in_channels": 4, "out_channels": 6, "kernel_size": (7, 5), "stride": 2, "padding": (3, 1), "groups": 2},
        (2, 4, 19, 21),
    ),
    "2d_dilation_reflect": (
        FFTConv2d,
        {"in_channels": 2, "out_channels": 2, "kernel_size": 5, "dilation": 2, "padding": 4, "padding_mode": "reflect"},
        (1, 2, 18, 20),
    ),
    "2d_depthwise_circular": (
        FFTConv2d,
        {"in_channels": 3, "out_channels": 3, "kernel_size": 9, "groups": 3, "padding": 4, "padding_mode": "circular"},
        (2, 3, 16, 17),
    ),
    "3d_valid": (
        FFTConv3d,
        {"in_channels": 2, "out_channels": 3, "kernel_size": 5, "stride": (1, 2, 1)},
        (1, 2, 9, 10, 11),
    ),
}
TOL = {"rtol": 1e-4, "atol": 1e-4}


def _make(name, method="fft"):
    cls, kwargs, shape = CASES[name]
    layer = cls(**kwargs, method=method)
    return layer, torch.randn(shape), torch.randn(shape)


def _compiled(layer):
    torch._dynamo.reset()
    return torch.compile(layer, fullgraph=True, backend="aot_eager")


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_forward_and_gradients_match_conv(name):
    layer, x, _ = _make(name)
    ref_layer = _make(name, "direct")[0]  # F.conv*d: the oracle
    ref_layer.load_state_dict(layer.state_dict())
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = _compiled(layer)(x1)
    ref = ref_layer(x2)
    torch.testing.assert_close(y, ref, **TOL)
    g = torch.randn_like(ref)
    y.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, **TOL)
    torch.testing.assert_close(layer.weight.grad, ref_layer.weight.grad, **TOL)
    torch.testing.assert_close(layer.bias.grad, ref_layer.bias.grad, **TOL)


@pytest.mark.parametrize("method", ["fft", "auto"])
@pytest.mark.parametrize("train", [True, False])
def test_compile_has_no_graph_break_and_runs_the_engine(method, train, monkeypatch):
    layer = FFTConv2d(2, 3, 31, padding="same", method=method).train(train)
    x = torch.randn(1, 2, 40, 40)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(layer)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    calls = []
    real = ops.correlate
    monkeypatch.setattr(ops, "correlate", lambda *a, **k: calls.append(1) or real(*a, **k))
    y = _compiled(layer)(x)
    assert calls, "the compiled layer did not run the FFT engine"
    torch.testing.assert_close(y, F.conv2d(x, layer.weight, layer.bias, padding="same"), **TOL)


def test_compiled_op_keeps_exact_zeros_and_nonfinite_fallback():
    layer = FFTConv2d(1, 1, 9, padding=4, bias=False, method="fft")
    x = torch.zeros(1, 1, 40, 40)
    x[..., :8, :8] = torch.rand(8, 8) + 1
    x[..., 30, 30] = float("nan")
    y = _compiled(layer)(x)
    ref = F.conv2d(x, layer.weight, padding=4)
    torch.testing.assert_close(y, ref, **TOL, equal_nan=True)  # NaN spreads only near (30, 30)
    assert (y[..., 12:25, :] == 0).all()  # windows of zeros give exact zeros


def test_compiled_tiled_plan_gradients_match_conv():
    x = torch.randn(2, 4, 120, 100, requires_grad=True)
    w = torch.randn(4, 4, 11, 11, requires_grad=True)
    budget = 150_000  # small enough that the plan cuts the input into overlap-save tiles
    assert plan_for(x, w, stride=2, padding=4, memory_budget=budget)["tiled"]

    def f(x, w):
        return fft_conv2d(x, w, None, 2, 4, memory_budget=budget)

    torch._dynamo.reset()
    y = torch.compile(f, fullgraph=True, backend="aot_eager")(x, w)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    ref = F.conv2d(x, w, None, 2, 4)
    torch.testing.assert_close(y, ref, **TOL)
    rx, rw = torch.autograd.grad(ref, (x, w), g)
    torch.testing.assert_close(gx, rx, **TOL)
    torch.testing.assert_close(gw, rw, rtol=1e-4, atol=1e-3)


def test_compiled_weight_gradient_of_a_nonfinite_input_is_the_direct_one():
    layer = FFTConv2d(2, 3, 7, padding=3, stride=2, method="fft")
    ref_layer = FFTConv2d(2, 3, 7, padding=3, stride=2, method="direct")
    ref_layer.load_state_dict(layer.state_dict())
    x = torch.randn(1, 2, 30, 30)
    x[..., 3, 25] = float("inf")
    g = torch.randn(1, 3, 15, 15)
    _compiled(layer)(x).backward(g)  # x needs no gradient: only the weight's is computed
    ref_layer(x).backward(g)
    torch.testing.assert_close(layer.weight.grad, ref_layer.weight.grad, **TOL, equal_nan=True)


@pytest.mark.parametrize("stride,dilation,pads", [([1, 1], [1, 1], [0, 0, 0, 0]), ([2, 1], [1, 2], [2, 1, 0, 3])])
def test_ops_pass_opcheck(stride, dilation, pads):
    x = torch.randn(2, 4, 15, 17, requires_grad=True)
    w = torch.randn(6, 2, 5, 3, requires_grad=True)
    args = (x, w, pads, stride, dilation, 2, 1e9, True, "direct")
    torch.library.opcheck(torch.ops.cnnconv.fft_correlate.default, args)
    y, W = torch.ops.cnnconv.fft_correlate(*args)
    g = torch.randn_like(y)
    for need in ((True, True), (True, False), (False, True)):
        bargs = (g, x.detach(), w.detach(), W.detach(), pads, stride, dilation, 2, 1e9, *need)
        torch.library.opcheck(torch.ops.cnnconv.fft_correlate_backward.default, bargs)


@pytest.mark.parametrize("method", ["fft", "auto"])
def test_compiled_model_of_ten_layers_is_one_graph_without_recompiles(method):
    torch.manual_seed(0)
    layers = []
    for i in range(10):
        k = 9 + 2 * (i % 3)
        layers += [FFTConv2d(2, 2, k, stride=1 + i % 2, padding=k // 2, method=method), nn.ReLU()]
    model = nn.Sequential(*layers)
    x = torch.randn(1, 2, 256, 256)
    torch._dynamo.reset()
    # One compiled entry per frame: a recompile (a guard on a layer's state that changed after
    # the first call, or a frame per layer) raises.
    limit = torch._dynamo.config.patch(recompile_limit=1, fail_on_recompile_limit_hit=True)
    with limit, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = torch.compile(model, backend="eager")
        counters.clear()
        for _ in range(3):
            x = torch.randn_like(x)
            y = compiled(x)
    assert not [w for w in caught if "recompile" in str(w.message).lower()]
    assert counters["stats"]["unique_graphs"] == 1
    assert {m.last_method for m in model if isinstance(m, FFTConv2d)} >= {"fft"}
    torch.testing.assert_close(y, model(x), **TOL)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


def _export_cases():
    return [
        (n, m)
        for n in ("1d_causal_dilated", "2d_stride_groups", "2d_dilation_reflect", "3d_valid")
        for m in ("fft", "auto")
    ]


@pytest.mark.parametrize("name,method", _export_cases())
def test_torch_export_matches_eager(name, method):
    layer, x, x2 = _make(name, method)
    layer.eval()
    program = torch.export.export(layer, (x,))
    assert "fft" not in str(program.graph)  # a plain convolution
    torch.testing.assert_close(program.module()(x2), layer(x2), **TOL)


@pytest.mark.parametrize("name,method", _export_cases())
def test_jit_trace_matches_eager(name, method):
    layer, x, x2 = _make(name, method)
    layer.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(layer, x)
    assert "fft" not in str(traced.inlined_graph)  # a plain convolution
    torch.testing.assert_close(traced(x2), layer(x2), **TOL)


@pytest.mark.parametrize("name", ["1d_causal_dilated", "2d_same", "3d_valid"])
def test_onnx_dynamo_export_runs_in_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    layer, x, x2 = _make(name)
    layer.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(layer, (x,), dynamo=True, verbose=False)
    program.save(str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x2.numpy()})[0])
    torch.testing.assert_close(out, layer(x2), **TOL)


def test_jit_script_says_to_convert_back():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), FFTConv2d(2, 2, 9, method="fft"))
    with pytest.raises(RuntimeError, match="convert_back"):
        torch.jit.script(model)
    torch.jit.script(convert_back(model))
