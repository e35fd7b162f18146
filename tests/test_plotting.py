"""Tests of cnnconv.analysis.plotting: figures, colour scaling, atomic and non-overwriting PNG output."""

import os

import numpy as np
import pytest
import torch

from cnnconv.analysis import plotting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _kernel_axes(fig):
    """Axes that hold a kernel image (colour-bar axes hold no AxesImage)."""
    return [ax for ax in fig.axes if ax.images]


def test_plot_kernels_scaling_and_png(tmp_path):
    torch.manual_seed(3)
    kernels = torch.randn(2, 3, 5, 5)
    kernels[0, 1] *= 10.0  # very different scales: the row shares the largest
    titles = [f"k{i}" for i in range(6)]
    path = tmp_path / "grid.png"
    fig = plotting.plot_kernels(kernels, titles, path=path)

    axes = _kernel_axes(fig)
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes] == titles
    flat = kernels.reshape(-1, 5, 5)
    for i, (ax, k) in enumerate(zip(axes, flat)):
        row = flat[3 * (i // 3):3 * (i // 3) + 3]  # a 2x3 grid for six kernels
        vmin, vmax = ax.images[0].get_clim()
        assert vmax == pytest.approx(float(row.abs().max())) and vmin == pytest.approx(-vmax)  # centred on 0
        np.testing.assert_allclose(ax.images[0].get_array(), k.double().numpy())
    assert len(fig.axes) == 8  # one colour bar per row
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



@pytest.mark.parametrize("overwrite", [False, True])
def test_figure_written_through_temporaries_a_resume_removes(tmp_path, overwrite):
    """While a figure is being written, every file beside the result is a temporary that
    remove_stale_temporaries (run on resume) deletes: a kill at that moment leaves nothing behind;
    a destination that appears meanwhile is never replaced without ``overwrite``."""
    from cnnconv._utils.io import remove_stale_temporaries

    fig = plotting.plot_kernels(torch.randn(2, 3, 3))
    path = tmp_path / "k.png"
    real_savefig = fig.savefig
    during = []

    def savefig(fh, **kwargs):
        real_savefig(fh, **kwargs)
        during.append(sorted(os.listdir(tmp_path)))
        path.write_bytes(b"written meanwhile")

    fig.savefig = savefig
    if overwrite:
        plotting.save_figure(fig, path, overwrite=True)
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    else:
        with pytest.raises(FileExistsError, match="refusing to overwrite"):
            plotting.save_figure(fig, path)
        assert path.read_bytes() == b"written meanwhile"
    assert len(during) == 1 and len(during[0]) == 1  # exactly one temporary while writing
    (tmp_path / during[0][0]).write_bytes(b"left by a kill")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == during[0]
    assert os.listdir(tmp_path) == ["k.png"]
    if overwrite:  # the permissions of a new file, not the temporary's 0o600
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask

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


# --------------------------------------------------------------------------- layout and scales


def _colorbars(fig):
    """Colour-bar axes (matplotlib marks them with a ``_colorbar`` attribute)."""
    return [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def _inside_canvas(fig):
    """Every title, the figure title and every text of ``fig`` lies inside the canvas."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    texts = [ax.title for ax in fig.axes] + [t for ax in fig.axes for t in ax.texts]
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    for text in texts:
        if not text.get_text():
            continue
        box = text.get_window_extent(renderer)
        assert box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= width + 0.5 and box.y1 <= height + 0.5, text.get_text()
    return renderer


def _no_overlap(boxes):
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_plot_kernels_shared_row_scale_colorbars_and_no_title_overlap():
    """Five rows with a figure title: one colour bar per row, each row's kernels share symmetric
    limits, and no title overlaps another or leaves the canvas."""
    rng = np.random.default_rng(11)
    kernels = [torch.tensor(rng.standard_normal((3, 3)) * 10.0 ** rng.uniform(-2, 1)) for _ in range(10)]
    fig = plotting.plot_kernels(kernels, [f"kernel number {i}" for i in range(10)], ncols=2,
                                suptitle="ten kernels\nin five rows")
    axes = _kernel_axes(fig)
    assert len(_colorbars(fig)) == 5
    for r in range(5):
        expected = max(float(k.abs().max()) for k in kernels[2 * r:2 * r + 2])
        for ax in axes[2 * r:2 * r + 2]:
            assert ax.images[0].get_clim() == pytest.approx((-expected, expected))
    renderer = _inside_canvas(fig)
    boxes = [ax.title.get_window_extent(renderer) for ax in axes] + [fig._suptitle.get_window_extent(renderer)]
    _no_overlap(boxes + [ax.get_window_extent(renderer) for ax in axes])  # titles clear of every panel
    fig = plotting.plot_kernels(kernels, share="all")
    assert {ax.images[0].get_clim() for ax in _kernel_axes(fig)} == {(-_max(kernels), _max(kernels))}
    assert len(_colorbars(fig)) == 1
    with pytest.raises(ValueError, match="share must be 'row' or 'all', got 'each'"):
        plotting.plot_kernels(kernels, share="each")


def _max(kernels):
    return max(float(k.abs().max()) for k in kernels)


def test_plot_side_by_side_difference_has_its_own_scale():
    """A 1.5% residual: the difference panel is scaled on its own and its title says by how much."""
    rng = np.random.default_rng(4)
    ref = rng.standard_normal((5, 5))
    noise = rng.standard_normal((5, 5))
    learned = 3.0 * ref + 0.015 * np.abs(3.0 * ref).max() * noise / np.abs(noise).max()
    fig = plotting.plot_side_by_side([torch.tensor(learned)], [torch.tensor(ref)], ["learned"], ["ref"])
    top, middle, bottom = _kernel_axes(fig)
    scale = (learned * ref).sum() / (ref * ref).sum()
    diff = learned - scale * ref
    kernel_max = max(np.abs(learned).max(), np.abs(scale * ref).max())
    assert top.images[0].get_clim() == pytest.approx((-kernel_max, kernel_max))
    assert middle.images[0].get_clim() == pytest.approx((-kernel_max, kernel_max))  # per comparison
    np.testing.assert_allclose(middle.images[0].get_array(), scale * ref, rtol=1e-12)
    dmax = np.abs(diff).max()
    assert bottom.images[0].get_clim() == pytest.approx((-dmax, dmax))
    factor = kernel_max / dmax
    assert 40 < factor < 200
    assert bottom.get_title() == f"difference x {factor:.0f}"
    assert len(_colorbars(fig)) == 2  # the comparison's and the difference's


def test_plot_side_by_side_64_kernels_bounded_grid_no_overlapping_labels():
    rng = np.random.default_rng(2)
    learned = torch.tensor(rng.standard_normal((64, 3, 3)))
    ref = learned + 0.05 * torch.tensor(rng.standard_normal((64, 3, 3)))
    fig = plotting.plot_side_by_side(learned, ref, [f"conv1.weight[{i},0]" for i in range(64)],
                                     [f"gaussian_dxx conv_flip (0.{i:03d})" for i in range(64)], suptitle="64 kernels")
    width, height = fig.canvas.get_width_height()
    assert width * 120 / fig.dpi <= 4000 and height * 120 / fig.dpi <= 4000
    assert max(fig.get_size_inches()) <= plotting.MAX_FIGURE_INCHES + 1e-9
    assert len(_kernel_axes(fig)) == 3 * 64
    renderer = _inside_canvas(fig)
    titles = [ax.title.get_window_extent(renderer) for ax in _kernel_axes(fig)]
    _no_overlap(titles + [ax.get_window_extent(renderer) for ax in _colorbars(fig)])
    for ax in _kernel_axes(fig):  # value labels, where drawn, do not overlap each other
        _no_overlap([t.get_window_extent(renderer) for t in ax.texts])


def test_value_labels_do_not_overlap():
    """Long labels (small and negative values) on a 7x7 kernel are shrunk to fit or left out."""
    rng = np.random.default_rng(8)
    k = torch.tensor(-rng.uniform(1e-4, 9e-4, (7, 7)))
    fig = plotting.plot_kernels([k, k * 3])
    renderer = _inside_canvas(fig)
    for ax in _kernel_axes(fig):
        _no_overlap([t.get_window_extent(renderer) for t in ax.texts])


def test_plot_frequency_response_row_scale_and_layout():
    rng = np.random.default_rng(6)
    kernels = [torch.tensor(rng.standard_normal((5, 5)) * s) for s in (1.0, 10.0, 0.1, 3.0)]
    fig = plotting.plot_frequency_response(kernels, [f"k{i}" for i in range(4)], size=16, ncols=2, suptitle="responses")
    axes = _kernel_axes(fig)
    assert len(_colorbars(fig)) == 2
    for r in range(2):
        mags = [np.abs(np.fft.fft2(k.numpy(), s=(16, 16))) for k in kernels[2 * r:2 * r + 2]]
        for ax in axes[2 * r:2 * r + 2]:
            assert ax.images[0].get_clim() == pytest.approx((min(m.min() for m in mags), max(m.max() for m in mags)))
    for ax in axes:  # the image fills its axes (no blank strip at +0.5 cycles/px)
        left, right, bottom, top = ax.images[0].get_extent()
        assert ax.get_xlim() == pytest.approx((left, right)) and ax.get_ylim() == pytest.approx((bottom, top))
    renderer = _inside_canvas(fig)
    _no_overlap([ax.title.get_window_extent(renderer) for ax in axes] + [fig._suptitle.get_window_extent(renderer)])
