"""The kernel bank names what was learned: continuous fits (orientation, scale, frequency, phase)
of first/second Gaussian derivatives and Gabor kernels, and the Kirsch / Roberts additions."""

import math

import numpy as np
import pytest
import torch

from cnnconv import kernels as K
from cnnconv.analysis import MAX_FIT_SIDE, apply_transform, fit_kernel, match_kernel


def _grid(n):
    r = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    return torch.meshgrid(r, r, indexing="ij")  # y (rows, down), x (columns, right)


def _noisy(k, rel, seed):
    g = torch.Generator().manual_seed(seed)
    return k + rel * k.pow(2).mean().sqrt() * torch.randn(k.shape, generator=g, dtype=torch.float64)


def _angle_diff(a, b, period):
    d = (a - b) % period
    return min(d, period - d)


def _first_derivative(theta_deg, sigma, n):
    # Continuous oracle: d/du of a Gaussian along u = x cos t + y sin t (correlation sign:
    # positive where the intensity grows along u), sampled on the pixel grid.
    y, x = _grid(n)
    t = math.radians(theta_deg)
    u = x * math.cos(t) + y * math.sin(t)
    return u * torch.exp(-(x * x + y * y) / (2 * sigma * sigma))


def _second_derivative(theta_deg, sigma, n):
    y, x = _grid(n)
    t = math.radians(theta_deg)
    u = x * math.cos(t) + y * math.sin(t)
    return (u * u / sigma**4 - 1 / sigma**2) * torch.exp(-(x * x + y * y) / (2 * sigma * sigma))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_derivative_at_130_degrees_is_named_with_its_orientation_and_scale(seed):
    k = _noisy(_first_derivative(130.0, 1.3, 9), 0.05, seed)
    best = match_kernel(k)[0]
    assert best.name == "gaussian_derivative"
    assert _angle_diff(best.params["orientation"], 130.0, 360.0) < 3.0
    assert abs(best.params["sigma"] / 1.3 - 1) < 0.1 and best.sigma == best.params["sigma"]
    assert best.similarity > 0.95
    # The reported kernel is the fit: its cosine with the input is the similarity.
    cos = float((best.aligned * k).sum() / best.aligned.norm() / k.norm())
    assert abs(cos - best.similarity) < 1e-9
    # Opposite sign: the orientation turns by 180 degrees.
    flipped = fit_kernel(-k, ["gaussian_derivative"])[0]
    assert _angle_diff(flipped.params["orientation"], 310.0, 360.0) < 3.0


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_gabor_at_random_parameters_is_recovered(seed):
    skf = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(seed)
    sigma, theta, freq, phase = rng.uniform(2.0, 3.0), rng.uniform(0, math.pi), rng.uniform(0.15, 0.3), rng.uniform(0, 2 * math.pi)
    ref = torch.from_numpy(skf.gabor_kernel(freq, theta=theta, sigma_x=sigma, sigma_y=sigma, offset=phase).real.copy())
    k = _noisy(3.7 * ref, 0.05, seed)
    best = match_kernel(k)[0]
    assert best.name == "gabor", [m.name for m in match_kernel(k)]
    p = best.params
    assert _angle_diff(p["orientation"], math.degrees(theta), 180.0) < 3.0
    assert abs(p["sigma"] / sigma - 1) < 0.1 and abs(p["frequency"] / freq - 1) < 0.1
    assert _angle_diff(p["phase"], math.degrees(phase), 360.0) < 10.0
    assert best.similarity > 0.95
    fit = fit_kernel(k)[0]
    assert fit.family == "gabor" and abs(fit.scale / 3.7 - 1) < 0.1
    # The fitted kernel is scale * cnnconv.kernels.gabor(params) at the kernel's size.
    rebuilt = fit.scale * K.gabor(p["sigma"], math.radians(fit.params["orientation"]), fit.params["frequency"],
                                  math.radians(fit.params["phase"]), size=k.shape[0], dtype=torch.float64)
    assert torch.allclose(fit.fitted, rebuilt, atol=1e-10 * float(rebuilt.abs().max()))


def test_second_derivative_orientation_and_scale():
    k = _noisy(-2.0 * _second_derivative(60.0, 1.5, 11), 0.05, 7)
    fit = fit_kernel(k, ["gaussian_second_derivative"])[0]
    assert _angle_diff(fit.params["orientation"], 60.0, 180.0) < 3.0
    assert abs(fit.params["sigma"] / 1.5 - 1) < 0.1
    assert fit.similarity > 0.95 and fit.scale < 0  # a valley: negative amplitude
    assert fit_kernel(k)[0].family == "gaussian_second_derivative"
    # As a match: kernel ~= scale * apply_transform(reference, transform), scale > 0.
    best = match_kernel(k)[0]
    assert (best.name, best.transform) == ("gaussian_second_derivative", "negated") and best.scale > 0
    assert torch.allclose(best.aligned, best.scale * apply_transform(best.reference, best.transform), atol=1e-12)
    assert torch.allclose(best.aligned, fit.fitted, atol=1e-9 * float(k.abs().max()))


@pytest.mark.parametrize("name", [f"kirsch_{d}" for d in K.KIRSCH_DIRECTIONS] + ["roberts_x", "roberts_y"])
def test_kirsch_and_roberts_match_themselves(name):
    k = 0.3 * K.get_kernel(name, dtype=torch.float64)
    best = match_kernel(k)[0]
    assert (best.name, best.transform) == (name, "identity")
    assert best.similarity == pytest.approx(1.0, abs=1e-12) and best.scale == pytest.approx(0.3, rel=1e-12)


def test_exact_bank_kernels_stay_ahead_of_the_fits():
    # Sobel x is nearly a first derivative of Gaussian; the bank kernel is named first.
    names = [m.name for m in match_kernel(K.sobel_x(dtype=torch.float64))]
    assert names[0] == "sobel_x"
    # A named bank restricts matching to those names: no continuous fit.
    k = _first_derivative(130.0, 1.3, 9)
    assert [m.name for m in match_kernel(k, bank=["gaussian_dx", "gaussian_dy"], top=5)] == ["gaussian_dy"]
    # Beyond MAX_FIT_SIDE only the bank is searched (bounded time for large kernels).
    big = _first_derivative(130.0, 6.0, MAX_FIT_SIDE + 1)
    assert all(m.name != "gaussian_derivative" for m in match_kernel(big))


def test_fit_kernel_errors_and_zero():
    with pytest.raises(ValueError, match=r"both sides at least 3 to be fitted, got shape \(2, 2\)"):
        fit_kernel(K.roberts_x())
    with pytest.raises(ValueError, match=r"families must be a list of names from .*got \['sobel'\]"):
        fit_kernel(torch.randn(5, 5), ["sobel"])
    assert fit_kernel(torch.zeros(5, 5)) == []
