"""Tests for cnnconv.planner: cost model, method choice and calibration."""

import json

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
    assert planner.choose_method((1, 3, 512, 512), (3, 1, 63, 63), groups=3) == "fft"
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
    consts = planner.calibrate(quick=True)
    data = json.loads(path.read_text())
    assert data["cpu"]["fft"] == consts["fft"] > 0
    assert all(c > 0 for _, c in consts["direct_dense"])
    assert not [p for p in tmp_path.iterdir() if p.name != "calibration.json"]  # no temp left
    assert planner.load_constants("cpu") == data["cpu"]
    # The fitted model still makes the obvious choices.
    assert planner.choose_method((1, 3, 512, 512), (3, 1, 63, 63), groups=3) == "fft"
    assert planner.choose_method((1, 3, 256, 256), (3, 1, 1, 1), groups=3) == "direct"


def test_defaults_without_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path / "none"))
    assert planner.load_constants("cpu") == planner.DEFAULT_CONSTANTS["cpu"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "calibration.json").write_text("{not json")
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path / "bad"))
    assert planner.load_constants("cpu") == planner.DEFAULT_CONSTANTS["cpu"]


def test_cost_model_fft_matches_tiled_plan():
    costs = planner.estimate_costs((1, 64, 1024, 1024), (64, 64, 31, 31))
    assert costs["fft"] < costs["direct"] / 20
    assert planner.choose_method((1, 64, 1024, 1024), (64, 64, 31, 31), dtype=torch.float64) == "fft"
