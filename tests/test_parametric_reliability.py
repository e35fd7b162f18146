"""The eval-mode kernel cache of cnnconv.parametric never changes a result.

Every write path to a parameter (including those that do not bump the tensor version counter)
must give the same output as a freshly built layer holding the same parameters.
"""

import pytest
import torch

from cnnconv.parametric import LearnableGaussianBlur, LearnableGaussianDerivative, StructuredConv2d

D = torch.float64


def _rand(*shape, seed=0, dtype=D):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


LAYERS = {
    "blur": lambda dtype: LearnableGaussianBlur(2, sigma=1.3, kernel_size=9, per_channel=True, dtype=dtype),
    "derivative": lambda dtype: LearnableGaussianDerivative(
        2, sigma=1.3, orientation=0.4, kernel_size=9, per_channel=True, dtype=dtype
    ),
    "structured": lambda dtype: StructuredConv2d(2, 3, 9, sigma=1.3, learn_sigma=True, dtype=dtype),
}


def _new_values(p: torch.Tensor, seed: int) -> torch.Tensor:
    """Values that differ from ``p`` everywhere (log_sigma stays in a sensible range)."""
    return p.detach() + 0.1 + 0.3 * _rand(*p.shape, seed=seed, dtype=p.dtype)


def _write_data_mul(p, seed):
    p.data.mul_(1.5)


def _write_data_assign(p, seed):
    p.data = _new_values(p, seed)


def _write_data_assign_same_address(p, seed):
    ptr = p.data_ptr()
    p.data = p.data.copy_(_new_values(p, seed))
    assert p.data_ptr() == ptr


def _write_numpy(p, seed):
    p.detach().numpy()[...] = _new_values(p, seed).numpy()


def _write_fused_adamw(p, seed):
    opt = torch.optim.AdamW([p], lr=0.2, fused=True)
    p.grad = _rand(*p.shape, seed=seed, dtype=p.dtype) + 0.5
    opt.step()
    p.grad = None


_FLAT = {}


def _prepare_vector_to_parameters(p):
    # A flat buffer reused between calls: the parameter keeps the same address each time.
    _FLAT[id(p)] = buf = p.detach().reshape(-1).clone()
    torch.nn.utils.vector_to_parameters(buf, [p])


def _write_vector_to_parameters(p, seed):
    buf, ptr = _FLAT.pop(id(p)), p.data_ptr()
    buf.copy_(_new_values(p, seed).reshape(-1))
    torch.nn.utils.vector_to_parameters(buf, [p])
    assert p.data_ptr() == ptr

WRITES = {
    "data_mul": _write_data_mul,
    "data_assign": _write_data_assign,
    "data_assign_same_address": _write_data_assign_same_address,
    "numpy": _write_numpy,
    "fused_adamw": _write_fused_adamw,
    "vector_to_parameters": _write_vector_to_parameters,
}


def _fresh_output(layer, make, x, dtype):
    fresh = make(dtype)
    fresh.load_state_dict(layer.state_dict())
    fresh.train(layer.training)
    with torch.no_grad():
        return fresh(x)


@pytest.mark.parametrize("mode", ["eval", "train", "eval_frozen"])
@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_every_write_path_reaches_the_output(kind, write, mode):
    make = LAYERS[kind]
    layer = make(D)
    x = _rand(2, 2, 16, 15, seed=1)
    layer.train(mode == "train")
    if mode == "eval_frozen":
        layer.requires_grad_(False)  # frozen: the cache is used even with gradients enabled

    def run():
        with torch.enable_grad() if mode == "eval_frozen" else torch.no_grad():
            return layer(x)

    for seed, (name, p) in enumerate(layer.named_parameters()):
        if write == "vector_to_parameters":
            _prepare_vector_to_parameters(p)
        before = run()
        with torch.no_grad():
            WRITES[write](p, seed + 10)
        after = run()
        expected = _fresh_output(layer, make, x, D)
        assert not torch.allclose(expected, before), f"{name}: the write changed nothing"
        torch.testing.assert_close(after, expected, rtol=0, atol=0, msg=f"{write} to {name} ignored")


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layers_built_in_inference_mode(kind):
    make = LAYERS[kind]
    x = _rand(1, 2, 12, 12, seed=2, dtype=torch.float32)
    with torch.inference_mode():
        layer = make(torch.float32).eval()
        out1 = layer(x)
        assert torch.equal(layer(x), out1)
        for seed, p in enumerate(layer.parameters()):
            p.copy_(_new_values(p, seed + 20))  # inference tensors have no version counter
        out2 = layer(x)
    expected = _fresh_output(layer, make, x, torch.float32)
    assert not torch.allclose(expected, out1)
    torch.testing.assert_close(out2, expected, rtol=0, atol=0)
    # outside inference mode, no gradient needed: same result
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_kernel_cached_in_inference_mode_is_not_saved_for_backward(kind):
    """A kernel cached under inference_mode must not be reused where autograd records it."""
    make = LAYERS[kind]
    layer = make(D).eval().requires_grad_(False)
    x = _rand(1, 2, 12, 12, seed=3).requires_grad_()
    with torch.inference_mode():
        layer(x.detach())
    layer(x).pow(2).sum().backward()
    fresh = make(D).eval().requires_grad_(False)
    fresh.load_state_dict(layer.state_dict())
    x2 = x.detach().clone().requires_grad_()
    fresh(x2).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=0, atol=0)


def test_cache_is_reused_when_nothing_changed():
    layer = LearnableGaussianBlur(1, sigma=1.3, kernel_size=9).eval()
    with torch.no_grad():
        k = layer.kernel1d()
        assert layer.kernel1d() is k
        layer.log_sigma.add_(0.0)  # same values, bumped version: still the same kernel values
        torch.testing.assert_close(layer.kernel1d(), k, rtol=0, atol=0)
