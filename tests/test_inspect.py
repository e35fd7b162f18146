"""Tests of cnnconv.analysis: extraction, safe loading, kernel description and matching.

Oracles: numpy-built kernels (written here from their formulas, independent of
cnnconv.kernels), numpy SVD / FFT, and the known properties of Sobel and Gaussian kernels.
"""

import json
import math
import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from cnnconv.analysis import (
    TRANSFORMS,
    InspectError,
    apply_transform,
    describe_kernel,
    extract_kernels,
    frequency_response,
    match_kernel,
    read_checkpoint,
)

SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def np_gaussian(sigma, size):
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2 * sigma**2))
    return np.outer(g, g) / np.outer(g, g).sum()


def np_gaussian_dx(sigma, size):
    """x * g(x) along columns, g along rows: positive for intensity rising to the right."""
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2 * sigma**2))
    return np.outer(g, x * g)


# Independent numpy versions of the eight symmetries (bank -> kernel direction).
NP_TRANSFORMS = {
    "identity": lambda a: a,
    "conv_flip": lambda a: np.rot90(a, 2),
    "flip_lr": np.fliplr,
    "flip_ud": np.flipud,
    "transpose": lambda a: a.T,
    "anti_transpose": lambda a: np.rot90(a, 2).T,
    "rot90": lambda a: np.rot90(a, 1),
    "rot270": lambda a: np.rot90(a, 3),
}


class Symmetric(nn.Module):
    def forward(self, w):
        return 0.5 * (w + torch.rot90(w, 2, (-2, -1)))


# --------------------------------------------------------------------------- extraction


def _model():
    return nn.Sequential(
        nn.Conv2d(3, 4, 5),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv1d(4, 2, 3),  # shapes need not chain: only weights are read
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def test_extract_from_module_state_dict_and_files(tmp_path):
    model = _model()
    expected = [("0", "0.weight", (4, 3, 5, 5)), ("3", "3.weight", (2, 4, 3))]

    from_module = extract_kernels(model)
    assert [(r.name, r.parameter, r.shape) for r in from_module] == expected
    assert [r.module_type for r in from_module] == ["Conv2d", "Conv1d"]
    torch.testing.assert_close(from_module[0].weight, model[0].weight.detach(), rtol=0, atol=0)

    from_sd = extract_kernels(model.state_dict())
    assert [(r.name, r.parameter, r.shape) for r in from_sd] == expected

    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    for key in ("model", "state_dict", "model_state_dict"):
        wrapped = tmp_path / f"{key}.pt"
        torch.save({key: model.state_dict(), "step": 7, "config": {"lr": 0.1}}, wrapped)
        records = extract_kernels(str(wrapped))
        assert [(r.name, r.shape) for r in records] == [(n, s) for n, _, s in expected]
        torch.testing.assert_close(records[1].weight, model[3].weight.detach(), rtol=0, atol=0)
    # A training checkpoint with tensors at its top level too (RNG state) and nested dicts.
    nested = tmp_path / "nested.pt"
    torch.save({"rng_state": torch.randint(0, 255, (16,), dtype=torch.uint8),
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
                "ema": {"state_dict": model.state_dict()}}, nested)
    assert [r.shape for r in extract_kernels(nested)] == [s for _, _, s in expected]
    records = extract_kernels(plain)  # os.PathLike
    assert [r.shape for r in records] == [s for _, _, s in expected]

    # A 1-D convolution's kernels are 1-D (k,).
    idx, k = next(iter(from_module[1].kernels()))
    assert idx == (0, 0) and k.shape == (3,)
    assert from_module[1].count == 8
    assert len(list(from_module[0].kernels())) == 12


def test_extract_layer_selection():
    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(1, 2, 3))
    model.add_module("blocks", nn.Sequential(nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3)))
    assert [r.name for r in extract_kernels(model, layer="stem")] == ["stem"]
    assert [r.name for r in extract_kernels(model, layer="blocks.1.weight")] == ["blocks.1"]
    assert [r.name for r in extract_kernels(model, layer="blocks.*")] == ["blocks.0", "blocks.1"]
    with pytest.raises(InspectError, match=r"no convolution layer named 'head'.*stem, blocks.0, blocks.1"):
        extract_kernels(model, layer="head")


def test_extract_parametrized_weight():
    conv = nn.Conv2d(1, 3, 3)
    model = nn.Sequential(conv)
    parametrize.register_parametrization(conv, "weight", Symmetric())
    raw = conv.parametrizations.weight.original.detach().clone()
    effective = 0.5 * (raw + torch.rot90(raw, 2, (-2, -1)))
    assert not torch.allclose(raw, effective)

    (rec,) = extract_kernels(model)
    assert rec.name == "0" and rec.parametrized
    torch.testing.assert_close(rec.weight, effective)

    (rec_sd,) = extract_kernels(model.state_dict())
    assert rec_sd.name == "0" and rec_sd.parametrized
    assert rec_sd.parameter == "0.parametrizations.weight.original"
    torch.testing.assert_close(rec_sd.weight, raw)


class Outer(nn.Module):
    """A weight stored as two factors: original0 (out, in, kh), original1 (out, in, kw)."""

    def forward(self, u, v):
        return u.unsqueeze(-1) * v.unsqueeze(-2)

    def right_inverse(self, w):
        return w[..., :, 0].clone(), w[..., 0, :].clone()


def test_extract_two_factor_parametrization():
    conv = nn.Conv2d(2, 3, (3, 5))
    parametrize.register_parametrization(conv, "weight", Outer())
    with torch.no_grad():
        conv.parametrizations.weight.original0.normal_()
        conv.parametrizations.weight.original1.normal_()
    sd = nn.Sequential(conv).state_dict()
    assert "0.parametrizations.weight.original0" in sd
    (rec,) = extract_kernels(sd)
    assert rec.name == "0" and rec.parametrized and rec.shape == (3, 2, 3, 5)
    u, v = sd["0.parametrizations.weight.original0"], sd["0.parametrizations.weight.original1"]
    expected = torch.einsum("oih,oiw->oihw", u, v)  # outer products, computed independently
    torch.testing.assert_close(rec.weight, expected)
    torch.testing.assert_close(rec.weight, conv.weight.detach())


def test_extract_errors(tmp_path):
    with pytest.raises(InspectError, match="does not exist"):
        extract_kernels(tmp_path / "missing.pt")
    with pytest.raises(InspectError, match="directory"):
        extract_kernels(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    with pytest.raises(InspectError, match="not a PyTorch checkpoint"):
        extract_kernels(text)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(InspectError, match="not a PyTorch checkpoint.*empty"):
        extract_kernels(empty)
    listing = tmp_path / "list.pt"
    torch.save([1.0, 2.0], listing)
    with pytest.raises(InspectError, match="holds a list, not a state dict"):
        extract_kernels(listing)
    metrics = tmp_path / "metrics.pt"
    torch.save({"epoch": 3, "loss": 0.5}, metrics)
    with pytest.raises(InspectError, match="holds no state dict"):
        extract_kernels(metrics)
    with pytest.raises(InspectError, match="no convolution kernels"):
        extract_kernels(nn.Sequential(nn.Linear(4, 3), nn.ReLU()))
    with pytest.raises(InspectError, match="no convolution kernels"):
        extract_kernels({"fc.weight": torch.randn(3, 4), "fc.bias": torch.randn(3)})
    with pytest.raises(TypeError, match="got int"):
        extract_kernels(3)


class _Payload:
    """Unpickling this object opens (creates) a file: stand-in for arbitrary code."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_checkpoint_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    torch.save({"conv.weight": torch.randn(1, 1, 3, 3), "payload": _Payload(marker)}, evil)
    assert not marker.exists()

    with pytest.raises(InspectError, match="refused to load .* for safety.*not executed"):
        extract_kernels(evil)
    with pytest.raises(InspectError, match="refused"):
        read_checkpoint(evil)
    assert not marker.exists()

    # The payload is real: an unsafe load would have run it (shown on a copy with another target).
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control))).close()
    assert control.exists()


def test_refused_whole_module_pickle(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(nn.Conv2d(1, 1, 3), path)  # a pickled module needs code to rebuild
    with pytest.raises(InspectError, match="for safety"):
        extract_kernels(path)


# --------------------------------------------------------------------------- description


def test_describe_against_numpy(rng):
    for shape in [(3, 3), (5, 5), (4, 6), (1, 7)]:
        k = rng.standard_normal(shape)
        d = describe_kernel(torch.tensor(k, dtype=torch.float32))
        assert d.shape == shape
        assert d.dc_gain == pytest.approx(k.sum(), rel=1e-5, abs=1e-5)
        assert d.l2_norm == pytest.approx(np.linalg.norm(k), rel=1e-5)
        flipped = k[::-1, ::-1]
        even, odd = (k + flipped) / 2, (k - flipped) / 2
        energy = (k**2).sum()
        assert d.symmetry == pytest.approx((even**2).sum() / energy, rel=1e-5)
        assert d.antisymmetry == pytest.approx((odd**2).sum() / energy, rel=1e-5)
        assert d.symmetry + d.antisymmetry == pytest.approx(1.0, abs=1e-12)
        s = np.linalg.svd(k, compute_uv=False)
        assert d.separability == pytest.approx(s[0] ** 2 / (s**2).sum(), rel=1e-5)
        mag = np.fft.fftshift(np.abs(np.fft.fft2(k, s=(32, 32))))
        ref, _ = frequency_response(torch.tensor(k), size=32)
        np.testing.assert_allclose(ref.numpy(), mag, rtol=1e-10, atol=1e-12)
        mag64 = np.abs(np.fft.fft2(k, s=(64, 64)))
        assert d.peak_gain == pytest.approx(mag64.max(), rel=1e-5)
    d = describe_kernel(torch.tensor(np.outer(rng.standard_normal(5), rng.standard_normal(5))))
    assert d.separability == pytest.approx(1.0, abs=1e-12)
    payload = json.dumps(d.to_dict(include_response=True))
    assert len(json.loads(payload)["frequency_response"]) == 64


def test_describe_sobel_gaussian_and_zero():
    d = describe_kernel(torch.tensor(SOBEL_X))
    assert d.dc_gain == 0.0
    assert d.antisymmetry == pytest.approx(1.0) and d.symmetry == pytest.approx(0.0, abs=1e-15)
    assert d.separability == pytest.approx(1.0)
    assert d.orientation == pytest.approx(0.0, abs=1e-9)
    # |H| = |sin(2 pi fx)| (2 + 2 cos(2 pi fy)): peak at fx = 1/4, fy = 0, gain 8.
    assert d.peak_frequency == pytest.approx(0.25) and d.peak_gain == pytest.approx(8.0)
    assert describe_kernel(torch.tensor(SOBEL_X.T)).orientation == pytest.approx(90.0)

    g = describe_kernel(torch.tensor(np_gaussian(1.5, 9)))
    assert g.symmetry == pytest.approx(1.0) and g.separability == pytest.approx(1.0)
    assert g.peak_frequency == 0.0 and g.dc_gain == pytest.approx(1.0)
    assert math.isnan(g.orientation) and g.to_dict()["orientation"] is None

    z = describe_kernel(torch.zeros(3, 3))
    assert z.l2_norm == 0.0 and math.isnan(z.symmetry)


@pytest.mark.parametrize("degrees", [0.0, 20.0, 45.0, 70.0, 100.0, 135.0, 160.0])
def test_orientation_of_steered_gaussian_derivative(degrees):
    # cos(t) d/dx + sin(t) d/dy with y downwards (rows): the orientation convention.
    t = math.radians(degrees)
    dx = np_gaussian_dx(1.5, 11)
    k = math.cos(t) * dx + math.sin(t) * dx.T
    d = describe_kernel(torch.tensor(k, dtype=torch.float32))
    diff = (d.orientation - degrees + 90.0) % 180.0 - 90.0
    assert abs(diff) < 0.05
    assert d.orientation_strength == pytest.approx(0.5, abs=0.01)  # 3:1 energy ratio of a first derivative


# How the orientation axis moves under each symmetry (x right, y down, angle from +x to +y).
ORIENTATION_MAP = {
    "identity": lambda t: t,
    "conv_flip": lambda t: t,
    "flip_lr": lambda t: 180.0 - t,
    "flip_ud": lambda t: 180.0 - t,
    "transpose": lambda t: 90.0 - t,
    "anti_transpose": lambda t: 90.0 - t,
    "rot90": lambda t: t + 90.0,
    "rot270": lambda t: t + 90.0,
}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(2, 7),
    w=st.integers(2, 7),
    name=st.sampled_from(sorted(NP_TRANSFORMS)),
    scale=st.floats(0.01, 100.0),
)
def test_description_under_symmetries(seed, h, w, name, scale):
    k = np.random.default_rng(seed).standard_normal((h, w))
    a = describe_kernel(torch.tensor(k))
    b = describe_kernel(torch.tensor(scale * NP_TRANSFORMS[name](k).copy()))
    for attr in ("symmetry", "antisymmetry", "separability", "orientation_strength", "peak_frequency"):
        assert getattr(b, attr) == pytest.approx(getattr(a, attr), rel=1e-6, abs=1e-9), attr
    assert b.dc_gain == pytest.approx(scale * a.dc_gain, rel=1e-9, abs=1e-9)
    assert b.l2_norm == pytest.approx(scale * a.l2_norm, rel=1e-9)
    if a.orientation_strength > 1e-3:
        expected = ORIENTATION_MAP[name](a.orientation) % 180.0
        diff = (b.orientation - expected + 90.0) % 180.0 - 90.0
        assert abs(diff) < 1e-6


def test_peak_frequency_of_a_grating():
    x = np.arange(15) - 7.0
    window = np.exp(-(x**2) / (2 * 4.0**2))
    for f in (0.125, 0.25):
        k = np.outer(window, window * np.cos(2 * np.pi * f * x))  # varies along x
        d = describe_kernel(torch.tensor(k), grid=128)
        assert d.peak_frequency == pytest.approx(f, abs=1.5 / 128)
        assert d.orientation == pytest.approx(0.0, abs=0.5) or d.orientation == pytest.approx(180.0, abs=0.5)


def test_describe_bad_input():
    with pytest.raises(ValueError, match=r"2-D kernel .* got shape \(2, 3, 3\)"):
        describe_kernel(torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="finite"):
        describe_kernel(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(TypeError, match="tensor or array"):
        describe_kernel(object())


# --------------------------------------------------------------------------- matching


def test_match_sobel_identity_and_conv_flip():
    k = torch.tensor(SOBEL_X, dtype=torch.float32)
    best = match_kernel(k)[0]
    assert (best.name, best.transform) == ("sobel_x", "identity")
    assert best.similarity == pytest.approx(1.0, abs=1e-7) and best.scale == pytest.approx(1.0, rel=1e-6)

    flipped = torch.rot90(k, 2)
    best = match_kernel(flipped)[0]
    assert (best.name, best.transform) == ("sobel_x", "conv_flip")
    assert best.similarity == pytest.approx(1.0, abs=1e-7)
    torch.testing.assert_close(best.aligned, flipped.double())

    # Scaled, on a larger canvas with a zero ring: still Sobel x.
    big = torch.zeros(5, 5)
    big[1:4, 1:4] = 0.37 * k
    best = match_kernel(big)[0]
    assert (best.name, best.transform) == ("sobel_x", "identity")
    assert best.similarity == pytest.approx(1.0, abs=1e-6) and best.scale == pytest.approx(0.37, rel=1e-5)


def test_match_reports_each_transform():
    # An asymmetric bank kernel: each of the 16 transforms is distinguishable.
    rng = np.random.default_rng(7)
    ref = rng.standard_normal((5, 5))
    for name, fn in NP_TRANSFORMS.items():
        for sign in (1.0, -1.0):
            k = sign * 2.5 * fn(ref)
            (m,) = match_kernel(torch.tensor(k.copy()), bank={"ref": torch.tensor(ref)}, top=1)
            expected = name if sign > 0 else ("negated" if name == "identity" else f"{name}+negated")
            assert m.transform == expected
            assert m.similarity == pytest.approx(1.0, abs=1e-12) and m.scale == pytest.approx(2.5)
            np.testing.assert_allclose(m.aligned.numpy(), k, atol=1e-12)
            np.testing.assert_allclose(apply_transform(torch.tensor(ref), expected).numpy() * 2.5, k, atol=1e-12)
    assert set(TRANSFORMS) == set(NP_TRANSFORMS)


def test_match_similarity_is_the_cosine(rng):
    k = rng.standard_normal((3, 3))
    ref = rng.standard_normal((3, 3))
    (m,) = match_kernel(torch.tensor(k), bank={"ref": torch.tensor(ref)}, top=1)
    best = max(abs((k * fn(ref)).sum()) / np.linalg.norm(k) / np.linalg.norm(ref) for fn in NP_TRANSFORMS.values())
    assert m.similarity == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("sigma,size", [(0.8, 5), (1.0, 7), (1.7, 9), (2.3, 13), (3.1, 15), (1.25, 6)])
def test_match_gaussian_recovers_sigma(sigma, size):
    k = torch.tensor(3.0 * np_gaussian(sigma, size), dtype=torch.float32)
    best = match_kernel(k)[0]
    assert best.name == "gaussian" and best.transform == "identity"
    assert best.similarity > 0.9999
    assert best.sigma == pytest.approx(sigma, rel=0.02)
    assert best.params["sigma"] == best.sigma


@pytest.mark.parametrize("sigma,size,transform", [(1.0, 7, "identity"), (1.8, 11, "transpose"), (1.4, 9, "conv_flip")])
def test_match_gaussian_derivative_recovers_sigma(sigma, size, transform):
    k = NP_TRANSFORMS[transform](np_gaussian_dx(sigma, size))
    best = match_kernel(torch.tensor(k.copy()))[0]
    assert best.sigma == pytest.approx(sigma, rel=0.02)
    assert best.similarity > 0.9999
    # The transposed x-derivative is the y-derivative.
    expected = {"identity": ("gaussian_dx", "identity"), "transpose": ("gaussian_dy", "identity"),
                "conv_flip": ("gaussian_dx", "conv_flip")}[transform]
    assert (best.name, best.transform) == expected


def test_match_top_and_dedup():
    matches = match_kernel(torch.tensor(SOBEL_X), top=5)
    names = [m.name for m in matches]
    assert len(matches) == 5 and names[0] == "sobel_x"
    assert "sobel_y" not in names  # only a transposed copy of sobel_x
    sims = [m.similarity for m in matches]
    assert sims == sorted(sims, reverse=True)
    json.dumps([m.to_dict() for m in matches])


def test_match_edge_cases():
    assert match_kernel(torch.zeros(3, 3)) == []
    with pytest.raises(ValueError, match="top must be positive, got 0"):
        match_kernel(torch.randn(3, 3), top=0)
    with pytest.raises(ValueError, match="unknown"):
        match_kernel(torch.randn(3, 3), bank=["sobel_x", "nope"])
    with pytest.raises(TypeError, match="bank must be"):
        match_kernel(torch.randn(3, 3), bank=42)
    # A restricted registry bank.
    (m,) = match_kernel(torch.tensor(SOBEL_X.T), bank=["prewitt_x"], top=1)
    assert m.name == "prewitt_x" and m.transform == "transpose" and m.similarity < 1.0


# --------------------------------------------------------------------------- constrained checkpoints


class _Edge(nn.Module):
    def __init__(self):
        super().__init__()
        from cnnconv.learnable import LearnableConv2d

        self.first = LearnableConv2d(1, 4, 5)
        self.second = nn.Conv2d(4, 2, 3)


def test_constrained_model_reports_the_effective_weight():
    from cnnconv.constraints import constrain

    model = _Edge()
    constrain(model.first, "zero_sum", "unit_norm")
    with torch.no_grad():
        model.first.parametrizations.weight.original.normal_()
    raw = model.first.parametrizations.weight.original.detach().double().numpy()
    zs = raw - raw.mean(axis=(-2, -1), keepdims=True)  # the constraints, written out here
    expected = zs / np.sqrt((zs**2).sum(axis=(1, 2, 3), keepdims=True))
    rec = extract_kernels(model, layer="first")[0]
    assert rec.parametrized and rec.note is None
    np.testing.assert_allclose(rec.weight.double().numpy(), expected, atol=1e-6)
    d = describe_kernel(rec.weight[0, 0])
    assert abs(d.dc_gain) < 1e-6


def test_constrained_state_dict_is_flagged_with_a_note(tmp_path):
    from cnnconv.constraints import constrain
    from cnnconv.training import save_checkpoint

    model = _Edge()
    constrain(model.first, "zero_sum", "unit_norm")
    with torch.no_grad():
        model.first.parametrizations.weight.original.normal_()
    path = save_checkpoint(tmp_path / "ck.pt", model, step=5)
    rec = extract_kernels(path, layer="first")[0]
    assert rec.parameter == "first.parametrizations.weight.original" and rec.parametrized
    assert "UNCONSTRAINED" in rec.note and "cnnconv.export_state_dict(model)" in rec.note
    assert rec.to_dict()["note"] == rec.note
    plain = extract_kernels(path, layer="second")[0]
    assert plain.note is None and not plain.parametrized


def test_rank_one_zero_sum_rebuilt_from_the_state_dict():
    from cnnconv.constraints import constrain

    conv = constrain(nn.Conv2d(2, 3, (3, 5)), "rank_one", "zero_sum")
    with torch.no_grad():  # training moves the factors away from zero mean
        conv.parametrizations.weight.original0.normal_()
        conv.parametrizations.weight.original1.normal_()
    sd = nn.Sequential(conv).state_dict()
    (rec,) = extract_kernels(sd)
    u = sd["0.parametrizations.weight.original0"].double().numpy()
    v = sd["0.parametrizations.weight.original1"].double().numpy()
    col = sd["0.parametrizations.weight.0.zero_mean_column"].numpy()[..., None]
    u = np.where(col, u - u.mean(-1, keepdims=True), u)  # RankOne's rule, written out here
    v = np.where(col, v, v - v.mean(-1, keepdims=True))
    expected = np.einsum("oih,oiw->oihw", u, v)
    np.testing.assert_allclose(rec.weight.double().numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(rec.weight.sum(dim=(-2, -1)).numpy(), 0.0, atol=1e-5)
    torch.testing.assert_close(rec.weight, conv.weight.detach())
    assert "zero-sum choice of the rank_one constraint applied" in rec.note


def test_doctests_pass_in_sequence_and_leave_the_kernel_registry_as_found():
    """The examples of the kernels, their transforms and every analysis module run one after
    another in one process; none leaves a kernel registered (the bank would change under later
    matches)."""
    import doctest
    import importlib
    import pkgutil

    import cnnconv.analysis
    from cnnconv import kernels

    pytest.importorskip("matplotlib")
    names = ["cnnconv.kernels", "cnnconv.kernels.transforms", "cnnconv.analysis"]
    names += [f"cnnconv.analysis.{m.name}" for m in pkgutil.iter_modules(cnnconv.analysis.__path__)]
    before = kernels.list_kernels()
    for name in names:
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name
        assert kernels.list_kernels() == before, f"the examples of {name} changed the kernel registry"
    assert len(names) >= 10
