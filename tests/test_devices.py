"""Every public layer on every device and dtype matches itself in float64 on the CPU.

The reference is the same module (same weights) moved to float64 on the CPU; outputs and the
gradients with respect to the input and to every parameter are compared. On a machine with CUDA
the ``device`` fixture adds the GPU case, which is where the layers' code paths differ most.
"""

import copy

import pytest
import torch

import cnnconv

G = torch.Generator().manual_seed(1234)


def _img(*shape):
    return torch.rand(*shape, generator=G, dtype=torch.float64)


# name -> (factory, input builder)
LAYERS = {
    "Filter2d": (lambda: cnnconv.Filter2d(torch.rand(5, 5, generator=G, dtype=torch.float64)), lambda: _img(2, 3, 24, 20)),
    "BoxBlur": (lambda: cnnconv.BoxBlur(5), lambda: _img(2, 3, 24, 20)),
    "GaussianBlur": (lambda: cnnconv.GaussianBlur(1.5), lambda: _img(2, 3, 24, 20)),
    "Sobel": (lambda: cnnconv.Sobel(), lambda: _img(2, 3, 24, 20)),
    "Prewitt": (lambda: cnnconv.Prewitt("xy"), lambda: _img(2, 3, 24, 20)),
    "Scharr": (lambda: cnnconv.Scharr(border="symmetric"), lambda: _img(2, 3, 24, 20)),
    "Laplacian": (lambda: cnnconv.Laplacian(8), lambda: _img(2, 3, 24, 20)),
    "Sharpen": (lambda: cnnconv.Sharpen(mode="valid"), lambda: _img(2, 3, 24, 20)),
    "FFTConv1d": (lambda: cnnconv.FFTConv1d(3, 4, 17, padding="same", method="fft"), lambda: _img(2, 3, 64)),
    "FFTConv2d": (lambda: cnnconv.FFTConv2d(3, 4, 11, padding=5, stride=2, method="fft"), lambda: _img(2, 3, 30, 26)),
    "FFTConv2d-auto": (lambda: cnnconv.FFTConv2d(3, 4, 3, padding=1), lambda: _img(2, 3, 16, 16)),
    "FFTConv3d": (lambda: cnnconv.FFTConv3d(2, 3, 5, padding=2, method="fft"), lambda: _img(1, 2, 10, 9, 8)),
    "LearnableConv2d": (lambda: cnnconv.LearnableConv2d(3, 4, 5, padding=2), lambda: _img(2, 3, 20, 20)),
    "PixelDifferenceConv2d": (lambda: cnnconv.PixelDifferenceConv2d(3, 4, pdc="ad"), lambda: _img(2, 3, 20, 20)),
    "LongConv1d": (lambda: cnnconv.LongConv1d(3, 64, decay=0.5), lambda: _img(2, 3, 64)),
    "Filter3d": (lambda: cnnconv.Filter3d(torch.rand(3, 3, 3, generator=G, dtype=torch.float64)), lambda: _img(1, 2, 8, 9, 10)),
    "BoxBlur3d": (lambda: cnnconv.BoxBlur3d(3), lambda: _img(1, 2, 8, 9, 10)),
    "GaussianBlur3d": (lambda: cnnconv.GaussianBlur3d(1.0), lambda: _img(1, 2, 8, 9, 10)),
    "Sobel3d": (lambda: cnnconv.Sobel3d(), lambda: _img(1, 2, 8, 9, 10)),
    "Laplacian3d": (lambda: cnnconv.Laplacian3d(), lambda: _img(1, 2, 8, 9, 10)),
    "LearnableGaussianBlur": (lambda: cnnconv.LearnableGaussianBlur(3, sigma=1.3, per_channel=True), lambda: _img(2, 3, 20, 20)),
    "LearnableGaussianDerivative": (lambda: cnnconv.LearnableGaussianDerivative(3, sigma=1.2, orientation=0.4), lambda: _img(2, 3, 20, 20)),
    "StructuredConv2d": (lambda: cnnconv.StructuredConv2d(3, 4, 7, sigma=1.5, learn_sigma=True), lambda: _img(2, 3, 20, 20)),
    "GradientFilter": (lambda: cnnconv.GradientFilter("dog", learnable=True, sigma=1.2), lambda: _img(2, 1, 20, 20)),
    "EdgeDetector": (lambda: cnnconv.EdgeDetector(5, init="sobel"), lambda: _img(2, 1, 20, 20)),
    "SmallCNN": (lambda: cnnconv.SmallCNN(4, first_layer="hand"), lambda: _img(2, 1, 16, 16)),
}


def _outputs(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [v for v in out.values() if isinstance(v, torch.Tensor)]
    return [v for v in out if isinstance(v, torch.Tensor)]


def _run(module, x):
    x = x.clone().requires_grad_(True)
    outs = _outputs(module(x))
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype, device=o.device).view_as(o)).sum() for o in outs)
    loss.backward()
    grads = [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]
    return outs, grads


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_on_device_matches_float64_cpu(name, device, dtype):
    factory, make_input = LAYERS[name]
    torch.manual_seed(7)
    reference = factory().to(torch.float64)
    module = copy.deepcopy(reference).to(device=device, dtype=dtype)
    x = make_input()
    ref_outs, ref_grads = _run(reference, x)
    outs, grads = _run(module, x.to(device=device, dtype=dtype))
    assert len(outs) == len(ref_outs) and outs
    tol = 1e-10 if dtype == torch.float64 else 2e-4
    for got, want in zip(outs + grads, ref_outs + ref_grads):
        assert got.device.type == device.type and got.dtype == dtype
        scale = want.abs().max().clamp_min(1.0)
        torch.testing.assert_close(got.cpu().double() / scale, want / scale, rtol=0, atol=tol)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_pickles_and_deep_copies(name):
    """Copies (``copy.deepcopy``: EMA models, ``pickle``: DataLoader workers, torch.save) compute the same."""
    import pickle

    factory, make_input = LAYERS[name]
    module = factory().to(torch.float64).eval()
    x = make_input()
    want = _outputs(module(x))
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        for got, ref in zip(_outputs(clone(x)), want):
            torch.testing.assert_close(got, ref, rtol=0, atol=0)
