"""Plan once: a convolution's FFT plan is built once per geometry, by the engine, and the planner
prices that very plan (strided output included)."""

import collections
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from cnnconv import planner
from cnnconv._utils import calibration
from cnnconv.conv import FFTConv1d, FFTConv2d, FFTConv3d
from cnnconv.fft import ConvGeometry, fft_conv2d
from cnnconv.fft import plan as plan_mod
from cnnconv.fft.plan import plan_for


@pytest.fixture
def builds(monkeypatch, tmp_path):
    """Plan constructions (the list of geometries built), from an empty plan cache and the
    default cost constants."""
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path))
    calibration.forget_loaded()
    monkeypatch.setattr(plan_mod, "_plans", collections.OrderedDict())
    made = []
    real = plan_mod.build_plan

    def counting(geom, *args, **kwargs):
        made.append(geom)
        return real(geom, *args, **kwargs)

    monkeypatch.setattr(plan_mod, "build_plan", counting)
    yield made
    calibration.forget_loaded()


LAYERS = [
    (FFTConv1d, (2, 4, 4096), 255),
    (FFTConv2d, (2, 4, 128, 128), 31),
    (FFTConv3d, (1, 4, 32, 32, 32), 15),
]


@pytest.mark.parametrize("method", ["auto", "fft"])
@pytest.mark.parametrize("cls, shape, k", LAYERS)
def test_one_forward_builds_its_plan_once_and_the_next_none(builds, cls, shape, k, method):
    layer = cls(4, 4, k, padding="same", method=method)
    x = torch.randn(*shape)
    with torch.no_grad():
        y = layer(x)
    assert layer.last_method == "fft"  # the engine ran, so the plan was both priced and run
    assert len(builds) == 1
    with torch.no_grad():
        y2 = layer(torch.randn(*shape))  # same shape, new data
    assert len(builds) == 1
    assert y.shape == y2.shape == x.shape


def test_auto_layer_prices_and_runs_one_plan(builds):
    layer = FFTConv2d(4, 4, 31, padding="same", method="auto")
    layer(torch.randn(2, 4, 128, 128)).sum().backward()
    assert layer.last_method == "fft"
    assert len(builds) == 1
    layer(torch.randn(2, 4, 128, 128))
    assert len(builds) == 1


def test_everything_the_plan_depends_on_is_in_its_key(builds):
    x, w = torch.randn(1, 2, 40, 40), torch.randn(2, 2, 9, 9)
    fft_conv2d(x, w)
    fft_conv2d(torch.randn(1, 2, 40, 40), torch.randn(2, 2, 9, 9))
    assert len(builds) == 1
    fft_conv2d(x, w, memory_budget=10**5)  # another budget
    fft_conv2d(x.double(), w.double())  # another dtype (complex item size)
    fft_conv2d(torch.randn(3, 2, 40, 40), w)  # another batch
    fft_conv2d(x, w, stride=2)  # another stride
    assert len(builds) == 5
    fft_conv2d(x.half(), w.half())  # computed in float32: the float32 plan
    assert len(builds) == 5


def test_plan_cache_is_bounded(builds, monkeypatch):
    monkeypatch.setattr(plan_mod, "PLAN_CACHE_SIZE", 3)
    w = torch.randn(1, 1, 5, 5)
    for size in range(20, 26):
        fft_conv2d(torch.randn(1, 1, size, size), w)
    assert len(plan_mod._plans) == 3
    fft_conv2d(torch.randn(1, 1, 25, 25), w)  # recent: kept
    assert len(builds) == 6
    fft_conv2d(torch.randn(1, 1, 20, 20), w)  # oldest: dropped, built again
    assert len(builds) == 7


def test_plans_are_frozen():
    plan = plan_mod.get_plan(ConvGeometry.from_shapes((1, 1, 32), (1, 1, 5)), 8,
                             plan_mod.DEFAULT_MEMORY_BUDGET, "cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.chunk = 2


def test_tiles_of_a_tiled_plan_cover_the_output_and_a_whole_plane_plan_has_none():
    big = ConvGeometry.from_shapes((1, 2, 1500, 1300), (2, 2, 7, 9), padding=(3, 4))
    plan = plan_mod.get_plan(big, 8, plan_mod.DEFAULT_MEMORY_BUDGET, "cpu")
    assert plan.tiled
    tile_out, counts, pads = plan.tiles()
    assert (tile_out, counts, pads) == (plan.tile_out, plan.counts, plan.pads)
    for t, c, L, N, k in zip(tile_out, counts, plan.out_len, plan.n, (7, 9)):
        assert t == N - k + 1 and (c - 1) * t < L <= c * t
    small = plan_mod.get_plan(ConvGeometry.from_shapes((1, 1, 32), (1, 1, 5)), 8,
                              plan_mod.DEFAULT_MEMORY_BUDGET, "cpu")
    assert not small.tiled
    with pytest.raises(ValueError, match="not tiled"):
        small.tiles()


@pytest.mark.parametrize("seed", range(6))
def test_geometry_output_size_is_f_convs(seed):
    g = torch.Generator().manual_seed(seed)

    def r(lo, hi):
        return int(torch.randint(lo, hi, (1,), generator=g))

    nd = r(1, 4)
    ks = [r(1, 6) for _ in range(nd)]
    dil = [r(1, 3) for _ in range(nd)]
    stride = [r(1, 4) for _ in range(nd)]
    pad = [r(0, 4) for _ in range(nd)]
    size = [r(d * (k - 1) + 1, 30) for k, d in zip(ks, dil)]
    x = torch.empty(2, 3, *size, device="meta")
    w = torch.empty(6, 1, *ks, device="meta")
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    y = conv(x, w, None, stride, pad, dil, 3)
    geom = ConvGeometry.from_shapes(x.shape, w.shape, stride, pad, dil, 3)
    assert geom.out_size == tuple(y.shape[2:])
    assert all(L == (n - 1) * s + 1 for L, n, s in zip(geom.out_len, geom.out_size, stride))


def test_planner_prices_the_strided_output(builds):
    # Overlap-save tiles of 769 outputs: the strided span (3845 = 5 tiles) needs one tile less
    # than the dense output (3846).
    x, w = torch.empty(4, 32, 4101), torch.empty(32, 32, 256)
    plan = plan_for(x, w, stride=2)
    assert plan["tiled"] and plan["n"] == (1024,)
    tile = plan["n"][0] - 256 + 1
    span = (4101 - 256) // 2 * 2 + 1
    assert plan["counts"] == (math.ceil(span / tile),) == (5,)
    est = planner.estimate_costs(tuple(x.shape), tuple(w.shape), stride=2, padding=0)
    assert est["fft"] == pytest.approx(plan["cost"], rel=1e-12)
    assert len(builds) == 1  # the planner priced the engine's plan
