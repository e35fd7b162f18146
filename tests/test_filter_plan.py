"""One FilterPlan decides the engine: built once per fixed layer, at most once per public call,
and the engine that runs is the one it names."""

import pytest
import torch

from cnnconv import filters as L
from cnnconv import functional as CF
from cnnconv.edges import GradientFilter
from cnnconv.engines import banded, box, direct, separable
from cnnconv.functional.plan import FilterPlan, plan_filter


@pytest.fixture
def plans(monkeypatch):
    """The list of FilterPlans built while the test runs."""
    built = []
    real = FilterPlan.__init__

    def counting(self, *args, **kwargs):
        real(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(FilterPlan, "__init__", counting)
    return built


@pytest.fixture
def engines(monkeypatch):
    """Names of the engines run while the test runs."""
    ran = []
    for module, name, label in (
        (box, "valid", "box"),
        (separable, "valid", "separable"),
        (direct, "valid", "direct"),
        (direct, "fft_valid", "fft"),
        (direct, "gradient_pair", "pair"),
        (banded, "gradient", "banded"),
    ):
        real = getattr(module, name)

        def spy(*args, _real=real, _label=label, **kwargs):
            ran.append(_label)
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return ran


def _rand(*shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(torch.seed() % 2**31))


LAYERS = {
    "filter2d_dense": lambda: L.Filter2d(torch.rand(5, 5)),
    "filter2d_rank1": lambda: L.Filter2d(torch.outer(torch.rand(7), torch.rand(7))),
    "filter2d_box": lambda: L.Filter2d(torch.ones(19, 19)),
    "box": lambda: L.BoxBlur(21),
    "box_small": lambda: L.BoxBlur(5),
    "gaussian": lambda: L.GaussianBlur(2.0),
    "sobel": lambda: L.Sobel(),
    "scharr_xy": lambda: L.Scharr("xy"),
    "laplacian": lambda: L.Laplacian(8),
    "sharpen": lambda: L.Sharpen(),
    "gradient_filter": lambda: GradientFilter("dog", in_channels=3),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_fixed_layer_plans_once_when_built(plans, name):
    layer = LAYERS[name]()
    assert len(plans) == 1
    x = _rand(2, 3, 24, 24)
    first = layer(x)
    for _ in range(3):
        torch.testing.assert_close(layer(x), first)
    assert len(plans) == 1


def test_fixed_layer_plans_again_when_its_kernel_changes(plans):
    layer = L.Filter2d(torch.rand(5, 5))
    x = _rand(1, 2, 16, 16)
    layer(x)
    with torch.no_grad():
        layer.kernel.fill_(1.0 / 25)  # now a box and rank 1
    torch.testing.assert_close(layer(x), CF.filter2d(x, torch.full((5, 5), 1.0 / 25), method="direct"))
    assert len(plans) == 3  # built, re-planned, and the reference call's own plan
    layer.double()
    assert len(plans) == 4 and plans[-1].kernel.dtype == torch.float64


PUBLIC_CALLS = {
    "filter2d": lambda x: CF.filter2d(x, torch.rand(9, 9)),
    "filter2d_factors": lambda x: CF.filter2d(x, None, factors=(torch.rand(5), torch.rand(7))),
    "correlate2d": lambda x: CF.correlate2d(x, torch.rand(3, 4), "same"),
    "convolve2d_swap": lambda x: CF.convolve2d(x[..., :4, :4], torch.rand(6, 6), "valid"),
    "correlate1d": lambda x: CF.correlate1d(x[0, 0], torch.rand(5)),
    "box_blur2d": lambda x: CF.box_blur2d(x, 25),
    "gaussian_blur2d": lambda x: CF.gaussian_blur2d(x, 1.5),
    "sobel": lambda x: CF.sobel(x),
    "prewitt_x": lambda x: CF.prewitt(x, "x"),
    "spatial_gradient": lambda x: CF.spatial_gradient(x),
    "apply_gradient_long": lambda x: CF.apply_gradient(x, torch.rand(9), torch.rand(9)),
    "laplacian": lambda x: CF.laplacian(x),
    "sharpen": lambda x: CF.sharpen(x),
}


@pytest.mark.parametrize("name", sorted(PUBLIC_CALLS))
def test_public_call_builds_at_most_one_plan(plans, name):
    PUBLIC_CALLS[name](_rand(2, 3, 20, 20))
    assert len(plans) <= 1


@pytest.mark.parametrize(
    ("make", "shape", "expected"),
    [
        (lambda: L.BoxBlur(31), (1, 3, 64, 64), "box"),
        (lambda: L.Filter2d(torch.ones(17, 3)), (1, 3, 64, 64), "box"),
        (lambda: L.GaussianBlur(3.0), (1, 3, 64, 64), "separable"),
        (lambda: L.Filter2d(torch.outer(torch.rand(9), torch.rand(9))), (1, 3, 64, 64), "separable"),
        (lambda: L.Laplacian(), (1, 3, 32, 32), "direct"),
        (lambda: L.Filter2d(torch.rand(41, 41)), (2, 3, 256, 256), "fft"),
    ],
)
def test_the_plan_names_the_engine_that_runs(engines, make, shape, expected):
    layer = make()
    x = _rand(*shape)
    with torch.no_grad():
        layer(x)
    plan = layer._filter_plan
    assert plan.engine(x, plan.size, layer.mode) == expected
    assert engines == [expected]


def test_gradient_plans_name_their_engine(engines):
    x = _rand(1, 3, 32, 32)
    L.Sobel()(x)
    assert engines == ["banded"]
    engines.clear()
    L.Sobel(method="direct")(x)  # one padded copy for both gradients
    assert engines == ["pair"]
    engines.clear()
    L.Sobel("x", method="direct")(x)
    assert engines == ["direct"]


def test_plan_rules_without_an_input():
    assert plan_filter(torch.ones(5, 17)).method == "box"
    assert plan_filter(torch.ones(5, 5)).method == "separable"  # a box, too short for running sums
    assert plan_filter(torch.rand(3, 3)).method == "direct"
    assert plan_filter(torch.rand(41, 41)).method == "planner"
    assert plan_filter(torch.rand(41, 41, requires_grad=True)).method == "fft"
    with pytest.raises(ValueError, match="constant kernel"):
        plan_filter(torch.rand(5, 5), "box")
    with pytest.raises(ValueError, match="rank-1"):
        plan_filter(torch.eye(5), "separable")
