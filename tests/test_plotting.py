"""Tests of cnnconv.plotting: figures, colour scaling, atomic and non-overwriting PNG output."""

import os

import numpy as np
import pytest
import torch

from cnnconv import plotting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _kernel_axes(fig):
    """Axes that hold a kernel image (colour-bar axes hold no AxesImage)."""
    return [ax for ax in fig.axes if ax.images]


def test_plot_kernels_scaling_and_png(tmp_path):
    torch.manual_seed(3)
    kernels = torch.randn(2, 3, 5, 5)
    kernels[0, 1] *= 10.0  # very different scales: each kernel keeps its own
    titles = [f"k{i}" for i in range(6)]
    path = tmp_path / "grid.png"
    fig = plotting.plot_kernels(kernels, titles, path=path)

    axes = _kernel_axes(fig)
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes] == titles
    for ax, k in zip(axes, kernels.reshape(-1, 5, 5)):
        vmin, vmax = ax.images[0].get_clim()
        assert vmax == pytest.approx(float(k.abs().max())) and vmin == pytest.approx(-vmax)  # centred on 0
        np.testing.assert_allclose(ax.images[0].get_array(), k.double().numpy())
    assert len(fig.axes) == 12  # one colour bar per kernel
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert os.listdir(tmp_path) == ["grid.png"]  # no temporary file left behind


def test_plot_kernels_accepts_lists_of_mixed_sizes():
    fig = plotting.plot_kernels([torch.randn(3, 3), np.random.default_rng(0).standard_normal((7, 5))], colorbar=False)
    assert len(fig.axes) == 2
    assert _kernel_axes(fig)[1].images[0].get_array().shape == (7, 5)


def test_never_overwrites_without_permission(tmp_path):
    path = tmp_path / "k.png"
    path.write_bytes(b"existing result")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        plotting.plot_kernels(torch.randn(1, 3, 3), path=path)
    assert path.read_bytes() == b"existing result"
    plotting.plot_kernels(torch.randn(1, 3, 3), path=path, overwrite=True)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(os.listdir(tmp_path)) == ["k.png"]
    with pytest.raises(FileNotFoundError, match="folder"):
        plotting.plot_kernels(torch.randn(3, 3), path=tmp_path / "missing" / "k.png")


def test_plot_frequency_response_matches_fft(tmp_path):
    rng = np.random.default_rng(5)
    k = rng.standard_normal((5, 5))
    fig = plotting.plot_frequency_response([torch.tensor(k)], ["k"], size=16, path=tmp_path / "f.png")
    (ax,) = _kernel_axes(fig)
    expected = np.fft.fftshift(np.abs(np.fft.fft2(k, s=(16, 16))))
    np.testing.assert_allclose(ax.images[0].get_array(), expected, rtol=1e-10)
    left, right, bottom, top = ax.images[0].get_extent()
    assert left < -0.5 < right and right > 0.4
    fig = plotting.plot_frequency_response(torch.tensor(k), size=16, log=True)
    np.testing.assert_allclose(_kernel_axes(fig)[0].images[0].get_array(), 20 * np.log10(expected), rtol=1e-9)


def test_plot_side_by_side_difference(tmp_path):
    rng = np.random.default_rng(9)
    ref = rng.standard_normal((2, 3, 3))
    noise = 0.01 * rng.standard_normal((2, 3, 3))
    learned = 2.0 * ref + noise
    fig = plotting.plot_side_by_side(torch.tensor(learned), torch.tensor(ref), path=tmp_path / "s.png")
    axes = _kernel_axes(fig)
    assert len(axes) == 6  # learned, reference, difference for each of 2 kernels
    for i in range(2):
        a, b = learned[i], ref[i]
        scale = (a * b).sum() / (b * b).sum()  # least-squares scale, computed here
        diff = axes[4 + i].images[0].get_array()
        np.testing.assert_allclose(diff, a - scale * b, atol=1e-12)
        assert np.abs(diff).max() < 0.05
    with pytest.raises(ValueError, match=r"reference must have one kernel per learned kernel \(2\), got 1"):
        plotting.plot_side_by_side(torch.tensor(learned), torch.tensor(ref[:1]))
    with pytest.raises(ValueError, match=r"shape of learned\[0\]"):
        plotting.plot_side_by_side([torch.randn(3, 3)], [torch.randn(5, 5)])


def test_bad_inputs():
    with pytest.raises(ValueError, match="titles must have one entry per kernel"):
        plotting.plot_kernels(torch.randn(2, 3, 3), titles=["only one"])
    with pytest.raises(TypeError, match="got int"):
        plotting.plot_kernels(5)
    with pytest.raises(ValueError, match="at least one kernel"):
        plotting.plot_kernels([])
    with pytest.raises(ValueError, match=r"2 to 4 dimensions, got shape \(1, 1, 1, 3, 3\)"):
        plotting.plot_kernels(torch.randn(1, 1, 1, 3, 3))
