"""Fixed filters captured as graphs: torch.export, ONNX (dynamo and legacy), torch.compile
(fullgraph, no graph breaks) and torch.jit.trace all reproduce eager results.

Every layer is called eagerly first: an eager call leaves state behind (the reusable padding
workspace) that a graph capture must not pick up.
"""

import warnings

import pytest
import torch

from cnnconv import edges as E
from cnnconv import filters as L
from cnnconv import filters3d as L3
from cnnconv import functional as CF
from cnnconv import kernels as K

LAYERS = {
    "gaussian": lambda: L.GaussianBlur(1.5),
    "gaussian_symmetric": lambda: L.GaussianBlur((1.0, 2.0), border="symmetric"),
    "sobel": lambda: L.Sobel(),
    "sobel_xy_zeros": lambda: L.Sobel("xy", border="zeros"),
    "prewitt_direction": lambda: L.Prewitt("direction", border="replicate"),
    "scharr_circular": lambda: L.Scharr(border="circular", normalized=True),
    "box5": lambda: L.BoxBlur(5),
    "box21": lambda: L.BoxBlur(21, border="replicate"),
    "box_even_full": lambda: L.BoxBlur((4, 6), mode="full", normalized=False),
    "laplacian": lambda: L.Laplacian(8),
    "sharpen": lambda: L.Sharpen(),
    "filter2d_gaussian": lambda: L.Filter2d("gaussian", sigma=1.0),
    "filter2d_box19": lambda: L.Filter2d(torch.full((19, 19), 1 / 361), border="reflect"),
    "filter2d_dense": lambda: L.Filter2d(torch.rand(3, 5, 4), mode="valid"),
}


def _inputs(shape=(2, 3, 24, 26)):
    return torch.rand(shape), torch.randn(shape) * 3 + 1


def _check(run, name):
    layer = LAYERS[name]()
    x, x2 = _inputs()
    layer(x)  # eager first
    out = run(layer, x, x2)
    torch.testing.assert_close(out, layer(x2), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_torch_export_matches_eager(name):
    def run(layer, x, x2):
        return torch.export.export(layer, (x,)).module()(x2)

    _check(run, name)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_jit_trace_matches_eager(name):
    def run(layer, x, x2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(layer, x)
        return traced(x2)

    _check(run, name)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_compile_fullgraph_without_graph_breaks(name):
    def run(layer, x, x2):
        torch._dynamo.reset()
        explained = torch._dynamo.explain(layer)(x)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1
        return torch.compile(layer, fullgraph=True, backend="aot_eager")(x2)

    _check(run, name)


def test_compile_inductor_gaussian_and_sobel():
    x, x2 = _inputs((1, 3, 20, 20))
    for layer in (L.GaussianBlur(1.0), L.Sobel()):
        layer(x)
        torch._dynamo.reset()
        compiled = torch.compile(layer, fullgraph=True)
        torch.testing.assert_close(compiled(x2), layer(x2), rtol=1e-4, atol=1e-4)


def _onnx_run(path, x2):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x2.numpy()})[0])


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_onnx_dynamo_export_runs_in_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxscript")

    def run(layer, x, x2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(layer, (x,), dynamo=True, verbose=False)
        program.save(str(tmp_path / "m.onnx"))
        return _onnx_run(tmp_path / "m.onnx", x2)

    _check(run, name)


@pytest.mark.parametrize("name", ["gaussian", "sobel", "box5", "box21", "sharpen", "filter2d_gaussian"])
def test_legacy_onnx_export_runs_in_onnxruntime(name, tmp_path):
    pytest.importorskip("onnx")

    def run(layer, x, x2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(layer, (x,), str(tmp_path / "m.onnx"), dynamo=False)
        return _onnx_run(tmp_path / "m.onnx", x2)

    _check(run, name)


class _Functional(torch.nn.Module):
    """The functional API inside a model: every default path."""

    def forward(self, x):
        g = CF.gaussian_blur2d(x, 1.2)
        return CF.sobel(g) + CF.box_blur2d(x, 19) + CF.sharpen(x) + CF.spatial_gradient(x).sum(-3) + CF.laplacian(x)


def test_functional_api_exports_and_traces():
    model = _Functional()
    x, x2 = _inputs()
    ref = model(x2)
    torch.testing.assert_close(torch.export.export(model, (x,)).module()(x2), ref, rtol=1e-4, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(torch.jit.trace(model, x)(x2), ref, rtol=1e-4, atol=1e-4)


def test_export_with_dynamic_spatial_size():
    layer = L.GaussianBlur(1.0)
    x = torch.rand(1, 3, 20, 24)
    h, w = torch.export.Dim("h", min=8, max=64), torch.export.Dim("w", min=8, max=64)
    program = torch.export.export(layer, (x,), dynamic_shapes=({2: h, 3: w},))
    x2 = torch.rand(1, 3, 33, 17)
    torch.testing.assert_close(program.module()(x2), layer(x2), rtol=1e-5, atol=1e-5)


def test_traced_graph_matches_float64_oracle():
    """The plain graph path is itself correct, not merely equal to eager."""
    layer = L.Filter2d(K.sobel_x(), border="symmetric")
    x = torch.randn(2, 3, 15, 16)
    program = torch.export.export(layer, (x,))
    xp = torch.cat((x[..., :, :1], x, x[..., :, -1:]), -1)
    xp = torch.cat((xp[..., :1, :], xp, xp[..., -1:, :]), -2).double()
    ref = torch.nn.functional.conv2d(xp, K.sobel_x(dtype=torch.float64).expand(3, 1, 3, 3), groups=3)
    torch.testing.assert_close(program.module()(x).double(), ref, rtol=1e-5, atol=1e-5)


OTHER_LAYERS = {
    "filter3d": (lambda: L3.Filter3d(torch.rand(3, 3, 3)), (2, 3, 8, 9, 10)),
    "gaussian3d": (lambda: L3.GaussianBlur3d(1.0), (2, 3, 8, 9, 10)),
    "box3d": (lambda: L3.BoxBlur3d(3), (2, 3, 8, 9, 10)),
    "sobel3d": (lambda: L3.Sobel3d(), (2, 3, 8, 9, 10)),
    "laplacian3d": (lambda: L3.Laplacian3d(), (2, 3, 8, 9, 10)),
    "gradient_filter": (lambda: E.GradientFilter(in_channels=3), (2, 3, 20, 21)),
}


@pytest.mark.parametrize("name", sorted(OTHER_LAYERS))
def test_3d_and_edge_layers_export_and_trace(name):
    make, shape = OTHER_LAYERS[name]
    layer = make()
    x, x2 = torch.rand(shape), torch.randn(shape)
    ref = layer(x2)
    torch.testing.assert_close(torch.export.export(layer, (x,)).module()(x2), ref, rtol=1e-4, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(layer, x)
    torch.testing.assert_close(traced(x2), ref, rtol=1e-4, atol=1e-4)
