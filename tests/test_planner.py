"""Tests for cnnconv.planner: cost model, method choice and calibration."""

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from cnnconv import planner


def test_estimate_costs_keys_and_monotonic_in_kernel_size():
    small = planner.estimate_costs((1, 8, 128, 128), (8, 8, 3, 3))
    big = planner.estimate_costs((1, 8, 128, 128), (8, 8, 31, 31))
    assert set(small) == {"direct", "fft"}
    assert big["direct"] > 50 * small["direct"]
    assert big["fft"] < 3 * small["fft"]  # FFT cost barely depends on the kernel
    sep = planner.estimate_costs((1, 3, 64, 64), (3, 1, 31, 31), groups=3, separable=True)
    assert set(sep) == {"direct", "fft", "separable"} and sep["separable"] < sep["direct"]


def test_choose_method_extremes():
    # (cases far from the crossover: a quick calibration on a busy machine is noisy)
    assert planner.choose_method((1, 3, 1024, 1024), (3, 1, 127, 127), groups=3) == "fft"
    assert planner.choose_method((1, 3, 512, 512), (3, 1, 1, 1), groups=3) == "direct"
    assert planner.choose_method((1, 16, 64, 64), (16, 16, 3, 3)) == "direct"
    assert planner.choose_method((8, 16, 128, 128), (16, 16, 31, 31)) == "fft"
    assert planner.choose_method((8, 16, 128, 128), (16, 16, 1, 1)) == "direct"
    assert planner.choose_method((1, 1, 100000), (1, 1, 100000), full=True) == "fft"
    # a bare kernel means one kernel per channel (depthwise)
    assert planner.choose_method((1, 3, 512, 512), (63, 63)) == "fft"


def test_stride_counts_against_fft():
    dense = planner.estimate_costs((1, 8, 256, 256), (8, 8, 7, 7))
    strided = planner.estimate_costs((1, 8, 256, 256), (8, 8, 7, 7), stride=4, padding=3)
    assert strided["direct"] < dense["direct"] / 10  # direct computes only kept positions
    assert strided["fft"] > 0.5 * dense["fft"]  # the FFT computes everything, then subsamples


def test_bad_shapes():
    with pytest.raises(ValueError, match="input_shape"):
        planner.estimate_costs((3, 64), (3, 3, 3, 3))
    with pytest.raises(ValueError, match="has 4 channels"):
        planner.estimate_costs((1, 4, 64, 64), (3, 3, 3, 3))
    with pytest.raises(TypeError, match="stride must be"):
        planner.estimate_costs((1, 3, 64, 64), (3, 3, 3, 3), stride=1.5)


def test_calibrate_writes_json_atomically_and_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path))
    path = planner.calibration_path()
    assert path == tmp_path / "calibration.json"
    old = os.umask(0o027)
    try:
        consts = planner.calibrate(quick=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the umask is honoured, as for any file
    data = json.loads(path.read_text())
    assert data["cpu"]["fft"] == consts["fft"] > 0
    assert all(c > 0 for _, c in consts["direct_dense"])
    assert [p for p, _ in consts["direct_dense_by_ch"]] == [1, 16, 256, 4096]
    assert all(c > 0 for _, table in consts["direct_dense_by_ch"] for _, c in table)
    assert not [p for p in tmp_path.iterdir() if p.name != "calibration.json"]  # no temp left
    assert planner.load_constants("cpu") == data["cpu"]
    # The fitted model still makes the obvious choices.
    # A case far from the crossover (FFT ~1000x cheaper): a quick calibration on a busy machine
    # is noisy, so cases near the crossover (a 3x3 layer once came out 'fft') are not asserted.
    assert planner.choose_method((1, 3, 1024, 1024), (3, 1, 127, 127), groups=3) == "fft"


def test_defaults_without_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path / "none"))
    assert planner.load_constants("cpu") == planner.DEFAULT_CONSTANTS["cpu"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "calibration.json").write_text("{not json")
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path / "bad"))
    with pytest.warns(UserWarning, match="ignoring the calibration file"):
        assert planner.load_constants("cpu") == planner.DEFAULT_CONSTANTS["cpu"]


def test_cost_model_fft_matches_tiled_plan():
    costs = planner.estimate_costs((1, 64, 1024, 1024), (64, 64, 31, 31))
    assert costs["fft"] < costs["direct"] / 10
    big = planner.choose_method((1, 64, 1024, 1024), (64, 64, 31, 31), dtype=torch.float64)
    assert big == "fft"


def test_direct_rate_depends_on_channel_count():
    # per multiply-add, one channel runs far below a 64->64 layer (oneDNN's known behaviour)
    consts = planner.DEFAULT_CONSTANTS["cpu"]
    one = planner.direct_cost(1, 1, 1, (128, 128), (9, 9), consts, cin=1) / (128 * 128 * 81)
    many = planner.direct_cost(1, 64, 64, (128, 128), (9, 9), consts, cin=64) / (
        64 * 64 * 128 * 128 * 81
    )
    assert one > 20 * many
    # between the tabulated channel products the rate lies between its neighbours
    mid = planner.direct_cost(1, 8, 8, (128, 128), (9, 9), consts, cin=8) / (8 * 8 * 128 * 128 * 81)
    assert many < mid < one


@pytest.mark.parametrize(
    "shapes",
    [((1, 1, 32, 32), (1, 1, 9, 9)), ((1, 16, 128, 128), (16, 16, 9, 9)),
     ((1, 4, 64, 64), (4, 4, 7, 7)), ((2, 8, 96, 96), (8, 8, 11, 11))],
)
def test_choice_keeps_direct_within_margin(shapes):
    xs, ws = shapes
    costs = planner.estimate_costs(xs, ws)
    choice = planner.choose_method(xs, ws)
    assert costs[choice] <= planner.DIRECT_MARGIN * min(costs.values()) + 1e-12
    if choice != "direct":
        assert costs["direct"] > planner.DIRECT_MARGIN * costs[choice]
    else:
        assert costs["direct"] <= planner.DIRECT_MARGIN * min(costs.values())


def test_constants_are_read_once_per_cache_location(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for root, scale in ((first, 2.0), (second, 3.0)):
        root.mkdir()
        consts = dict(planner.DEFAULT_CONSTANTS["cpu"], fft=planner.DEFAULT_CONSTANTS["cpu"]["fft"] * scale)
        (root / "calibration.json").write_text(json.dumps({"cpu": consts}))
    reads = []
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self) or real(self, *a, **k))
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(first))
    a = [planner.load_constants("cpu")["fft"] for _ in range(5)]
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(second))
    b = [planner.load_constants("cpu")["fft"] for _ in range(5)]
    assert len(reads) == 2  # one read per location, none per decision
    assert a == [planner.DEFAULT_CONSTANTS["cpu"]["fft"] * 2.0] * 5
    assert b == [planner.DEFAULT_CONSTANTS["cpu"]["fft"] * 3.0] * 5


def test_one_tap_kernels_are_never_transformed(tmp_path, monkeypatch):
    """Even with constants that make direct convolution look slow, a 1x1 kernel stays direct."""
    slow = dict(planner.DEFAULT_CONSTANTS["cpu"])
    slow["direct_depthwise"] = [[k, c * 1000] for k, c in slow["direct_depthwise"]]
    slow["direct_dense"] = [[k, c * 1000] for k, c in slow["direct_dense"]]
    slow["direct_dense_by_ch"] = [[p, [[k, c * 1000] for k, c in t]] for p, t in slow["direct_dense_by_ch"]]
    (tmp_path / "calibration.json").write_text(json.dumps({"cpu": slow}))
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path))
    assert planner.choose_method((1, 3, 256, 256), (3, 1, 3, 3), groups=3) == "fft"  # the constants bite
    assert planner.choose_method((1, 3, 256, 256), (3, 1, 1, 1), groups=3) == "direct"
    assert planner.choose_method((4, 64, 128, 128), (64, 64, 1, 1)) == "direct"
    assert planner.choose_method((1, 3, 256, 256), (1, 1)) == "direct"
    assert planner.choose_method((2, 3, 4096), (3, 1, 1), groups=3) == "direct"
