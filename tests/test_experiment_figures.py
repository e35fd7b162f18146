"""Figures of the experiments, drawn from small synthetic results: structural checks of what a
reader needs (distinct series, legends off the data, colour bars, honest labels, nothing cut off)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.image import imread  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from experiments import edges_noise as en  # noqa: E402

NOISES = [0.0, 0.1, 0.4]
SIGMAS = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0]


def _detectors():
    """(name, row fields) of every detector of the full configuration: 15 series in the figure."""
    out = [(n, {"family": "hand", "kernel_size": 3}) for n in ("sobel", "prewitt", "scharr")]
    out += [(f"dog-s{s:g}", {"family": "dog", "sigma": s, "kernel_size": 2 * round(3 * s) + 1}) for s in SIGMAS]
    out += [(f"canny-s{s:g}", {"family": "canny", "sigma": s}) for s in (1.0, 2.0)]
    for k, init, zs in itertools.product((3, 5, 7), ("random", "sobel"), (False, True)):
        out.append((f"learned-{k}x{k}-{init}" + ("-zerosum" if zs else ""),
                    {"family": "learned", "kernel_size": k, "init": init, "zero_sum": zs}))
    out.append(("dog-learned-sigma", {"family": "parametric", "kernel_size": 13}))
    return out


def _results(seeds, rng):
    """Rows, kernels and P-R curves shaped as ``run_unit`` returns them, with random values."""
    rows, kernels_by_unit, curves_by_unit = [], {}, {}
    t = np.linspace(0.02, 0.98, 33)
    for seed, noise in itertools.product(seeds, NOISES):
        kernels, curves = {}, {}
        for name, info in _detectors():
            row = {"seed": seed, "noise": noise, "detector": name, "kernel_size": None, "init": None,
                   "zero_sum": None, "sigma": None, "fitted_sigma": None, "learned_sigma": None,
                   "ods": float(rng.uniform(0.4, 0.85)), "ois": None, "ap": None, "r50": None,
                   "orientation_error": None}
            row.update(info)
            if info["family"] == "parametric":
                row["learned_sigma"] = float(rng.uniform(0.8, 1.5))
            rows.append(row)
            if info["family"] in ("learned", "parametric"):
                k = info["kernel_size"]
                kernels[name] = {"weights": rng.standard_normal((2, k, k)).tolist(), "angle": 0.0,
                                 "reflect": False}
            top = rng.uniform(0.5, 0.7)
            curves[name] = {"recall": (top * (1 - t ** rng.uniform(2, 4))).tolist(),
                            "precision": (0.3 + 0.6 * t ** rng.uniform(0.3, 0.8)).tolist()}
        kernels_by_unit[(seed, noise)] = kernels
        curves_by_unit[(seed, noise)] = curves
    return rows, kernels_by_unit, curves_by_unit


@pytest.fixture(scope="module")
def three_seeds():
    rows, kernels, curves = _results([0, 1, 2], np.random.default_rng(7))
    return en.summarize(rows), kernels, curves


@pytest.fixture(scope="module")
def one_seed():
    rows, kernels, curves = _results([4], np.random.default_rng(8))
    return en.summarize(rows), kernels, curves


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b) -> float:
    """Area shared by two display boxes."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def _named_texts(fig):
    """Titles, axis labels, annotations and legend texts: the text a reader must see whole."""
    texts = [fig._suptitle] + [t for legend in fig.legends for t in [legend.get_title(), *legend.get_texts()]]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
    return [t for t in texts if t is not None and t.get_visible() and t.get_text().strip()]


def _assert_all_text_inside(fig):
    renderer = _renderer(fig)
    inches = fig.bbox_inches
    tight = fig.get_tightbbox(renderer)  # everything drawn, tick labels included
    assert (tight.x0 >= inches.x0 - 0.01 and tight.y0 >= inches.y0 - 0.01 and tight.x1 <= inches.x1 + 0.01
            and tight.y1 <= inches.y1 + 0.01), f"the drawing {tight} overflows the canvas {inches}"
    canvas = fig.bbox
    for t in _named_texts(fig):
        box = t.get_window_extent(renderer)
        assert (box.x0 >= canvas.x0 - 1 and box.y0 >= canvas.y0 - 1 and box.x1 <= canvas.x1 + 1
                and box.y1 <= canvas.y1 + 1), f"text {t.get_text()!r} is cut off: {box} outside {canvas}"


def _assert_legend_off_the_data(fig, ax):
    renderer = _renderer(fig)
    assert ax.get_legend() is None, "the legend is drawn inside the axes"
    assert fig.legends, "the figure has no legend"
    for legend in fig.legends:
        assert _overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer)) == 0


def _series(ax) -> dict:
    """``{label: (colour, marker, line style, line width)}`` of the labelled series of ``ax``."""
    out = {}
    for handle, label in zip(*ax.get_legend_handles_labels()):
        line = handle.lines[0] if isinstance(handle, ErrorbarContainer) else handle
        out[label] = (to_hex(line.get_color()), line.get_marker(), line.get_linestyle(), line.get_linewidth())
    return out


def _assert_png_size(path, max_px=2200):
    height, width = imread(path).shape[:2]
    assert 300 <= width <= max_px and 200 <= height <= max_px, (width, height)


# --------------------------------------------------------------------------- ODS against noise


def test_ods_vs_noise_every_series_has_its_own_style(three_seeds):
    summary, _, _ = three_seeds
    fig = en.figures._ods_vs_noise_figure(summary)
    ax = fig.axes[0]
    series = _series(ax)
    assert len(series) == 3 + len(SIGMAS) + 2 + 3 + 1
    styles = [s[:3] for s in series.values()]
    assert len(set(styles)) == len(styles), "two series share colour, marker and line style"
    colours = [s[0] for s in series.values()]
    assert len(set(colours)) == len(colours), "two series share a colour"
    assert series["sobel"][0] != series["canny-s2"][0]
    learned = {k: v for k, v in series.items() if k.startswith(("best learned", "learnable"))}
    fixed = {k: v for k, v in series.items() if k not in learned}
    assert len(learned) == 4
    # Fixed and learned detectors are told apart by the line itself: style and width.
    assert all(v[2] != "-" for v in fixed.values()) and all(v[2] == "-" for v in learned.values())
    assert min(v[3] for v in learned.values()) > max(v[3] for v in fixed.values())


def test_ods_vs_noise_error_bars_and_label_follow_the_seeds(three_seeds, one_seed):
    ax3 = en.figures._ods_vs_noise_figure(three_seeds[0]).axes[0]
    assert any(isinstance(c, ErrorbarContainer) and c.has_yerr for c in ax3.containers)
    assert "mean ± std over 3 seeds" in ax3.get_ylabel()
    ax1 = en.figures._ods_vs_noise_figure(one_seed[0]).axes[0]
    assert not any(isinstance(c, ErrorbarContainer) for c in ax1.containers)
    assert "±" not in ax1.get_ylabel() and "std" not in ax1.get_ylabel()
    assert "one seed" in ax1.get_ylabel()
    # The plotted means are the summary's, at each noise level.
    plotted = dict(zip(*ax1.get_legend_handles_labels()[::-1]))["sobel"].get_ydata()
    expected = [one_seed[0][n]["sobel"]["ods"][0] for n in NOISES]
    np.testing.assert_allclose(plotted, expected)


def test_ods_vs_noise_legend_outside_and_nothing_cut_off(three_seeds, tmp_path):
    summary, _, _ = three_seeds
    fig = en.figures._ods_vs_noise_figure(summary)
    _assert_legend_off_the_data(fig, fig.axes[0])
    _assert_all_text_inside(fig)
    _assert_png_size(en.plot_ods_vs_noise(summary, tmp_path / "ods.png"))


# --------------------------------------------------------------------------- P-R curves


def test_pr_curves_legend_outside_zoomed_and_iso_f_labelled(three_seeds, tmp_path):
    summary, _, curves = three_seeds
    noise = max(summary)
    fig = en.figures._pr_curves_figure(summary, curves, 0, noise)
    ax = fig.axes[0]
    _assert_legend_off_the_data(fig, ax)
    _assert_all_text_inside(fig)
    series = _series(ax)
    shown = list(dict.fromkeys(en.stats._best_per_group(summary)[noise].values()))
    assert len(series) == len(shown)
    assert len(set(s[:3] for s in series.values())) == len(series)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert (x1 - x0) * (y1 - y0) < 0.8, "the view is not zoomed in"
    for label in series:
        name = label.split(" (")[0]
        r = np.asarray(curves[(0, noise)][name]["recall"])
        p = np.asarray(curves[(0, noise)][name]["precision"])
        f = 2 * r * p / (r + p)
        i = int(np.argmax(f))
        assert f"ODS F {f[i]:.3f}" in label
        assert x0 <= r[i] <= x1 and y0 <= p[i] <= y1, "an ODS point is outside the view"
    iso = [t.get_text() for t in ax.texts if t.get_text().startswith("F=")]
    assert len(iso) >= 2
    _assert_png_size(en.plot_pr_curves(summary, curves, 0, noise, tmp_path / "pr.png"))


def test_pr_curves_without_curves_is_none(three_seeds, tmp_path):
    summary, _, _ = three_seeds
    assert en.plot_pr_curves(summary, {}, 0, max(summary), tmp_path / "pr.png") is None
    assert not (tmp_path / "pr.png").exists()


# --------------------------------------------------------------------------- kernel panel


def test_kernel_panel_shared_symmetric_scale_with_colour_bar(three_seeds, tmp_path):
    summary, kernels, _ = three_seeds
    fig = en.figures._kernel_panel_figure(summary, kernels, 0, )
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == len(NOISES) * 6
    for im in images:
        vmin, vmax = im.get_clim()
        assert vmin == -vmax == -1.0
        assert np.abs(im.get_array()).max() == pytest.approx(1.0)
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colour_bars) == 1 and colour_bars[0].get_ylabel()
    # Sobel's x kernel, scaled to a largest weight of 1, is [-1 0 1; -2 0 2; -1 0 1] / 2.
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 2
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), sobel)
    # A learned kernel is drawn as stored, divided by its largest absolute weight.
    name = en.stats._best_per_group(summary)[NOISES[0]]["best learned 5x5"]
    k = np.asarray(kernels[(0, NOISES[0])][name]["weights"][0])
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), k / np.abs(k).max())


def test_kernel_panel_titles_do_not_overlap(three_seeds, tmp_path):
    summary, kernels, _ = three_seeds
    fig = en.figures._kernel_panel_figure(summary, kernels, 0)
    _assert_all_text_inside(fig)
    renderer = _renderer(fig)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    labels = [t for ax in panels for t in (ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text()]
    labels.append(fig._suptitle)
    boxes = [t.get_window_extent(renderer) for t in labels]
    for (a, ta), (b, tb) in itertools.combinations(zip(boxes, labels), 2):
        assert _overlap(a, b) == 0, f"{ta.get_text()!r} overlaps {tb.get_text()!r}"
    for t, box in zip(labels, boxes):
        for ax in panels:
            assert _overlap(box, ax.get_window_extent(renderer)) == 0, f"{t.get_text()!r} covers a kernel"
    _assert_png_size(en.plot_kernel_panel(summary, kernels, 0, tmp_path / "k.png"))


# --------------------------------------------------------------------------- benchmark charts


def _tick_labels(axis):
    """The tick labels drawn on ``axis``: non-empty and inside the view."""
    lo, hi = sorted(axis.get_view_interval())
    return [t.label1 for t in axis.get_major_ticks() + axis.get_minor_ticks()
            if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi]


def _assert_ticks_apart(fig, axis):
    renderer = _renderer(fig)
    labels = _tick_labels(axis)
    assert len(labels) >= 2
    for a, b in itertools.combinations(labels, 2):
        assert _overlap(a.get_window_extent(renderer), b.get_window_extent(renderer)) == 0, \
            f"tick labels {a.get_text()!r} and {b.get_text()!r} overlap"
    return [t.get_text() for t in labels]


SWEEP = ("1-D sweep: n * n samples, full correlation, time (ms)",
         ["n", "torch F.conv1d", "numpy.convolve", "cnnconv fft", "scipy fftconvolve", "F.conv1d / cnnconv"],
         [["10", "0.00333", "0.00125", "0.287", "0.0375", "0.0116"],
          ["100", "0.00827", "0.00391", "0.281", "0.0397", "0.0294"],
          ["1000", "0.288", "0.0611", "0.331", "0.0611", "0.871"],
          ["10000", "3645", "36.1", "0.62", "0.337", "5879"]])
AUTO_HEADER = ["k", "channels", "size", "kind", "direct", "fft", "auto picks", "chosen / best"]


def test_bar_labels_name_the_rows_not_their_timings():
    from experiments.fft_benchmark import _bar_labels

    _, header, rows = SWEEP
    assert _bar_labels(header, rows) == (["10", "100", "1000", "10000"], "n")
    auto = [["3", "16", "64", "dense", "1.25", "0.98", "fft", "1.00"],
            ["31", "1", "128", "depthwise", "150", "2.5", "fft", "1.00"]]
    assert _bar_labels(AUTO_HEADER, auto) == (["3, 16, 64, dense", "31, 1, 128, depthwise"],
                                              "k, channels, size, kind")
    # A text first column names the row by itself, even when every time is a whole number.
    cases = [["depthwise 4x3x512^2 k=31", "357", "73404", "205.6"]]
    assert _bar_labels(["case", "cnnconv fft", "F.conv2d", "F.conv2d/ours"], cases) == (
        ["depthwise 4x3x512^2 k=31"], "case")
    methods = [["cnnconv fft_conv2d", "12.5", "1.00"], ["nn.Conv2d (direct)", "250", "20.0"]]
    assert _bar_labels(["method", "forward", "fwd ratio"], methods)[0] == ["cnnconv fft_conv2d", "nn.Conv2d (direct)"]


def test_bar_chart_ratio_axis_readable(tmp_path):
    from experiments.fft_benchmark import _bar_chart, _bar_labels, _number

    title, header, rows = SWEEP
    labels, xlabel = _bar_labels(header, rows)
    fig = _bar_chart(labels, [_number(r[-1]) for r in rows], header[-1], title, tmp_path / "b.png",
                     xlabel=xlabel)
    ax = fig.axes[0]
    assert "time (ms)" not in ax.get_title() and "1-D sweep" in ax.get_title()
    assert "ratio" in ax.get_ylabel() and "above 1: cnnconv is faster" in ax.get_ylabel()
    assert ax.get_xlabel() == "n"
    assert ax.get_yscale() == "log"
    assert _assert_ticks_apart(fig, ax.yaxis) == ["0.01", "0.1", "1", "10", "100", "1000", "10000"]
    assert _assert_ticks_apart(fig, ax.xaxis) == labels
    _assert_all_text_inside(fig)
    _assert_png_size(tmp_path / "b.png")


def test_bar_chart_long_title_and_many_bars_fit(tmp_path):
    from experiments.fft_benchmark import _bar_chart, _bar_labels

    rng = np.random.default_rng(3)
    rows = [[str(k), str(c), str(s), kind, f"{rng.uniform(0.1, 9):.3g}", f"{rng.uniform(0.1, 9):.3g}", "fft",
             f"{rng.uniform(1, 2):.2f}"]
            for k, c, s, kind in itertools.product((1, 3, 9, 31, 63), (1, 16), (32, 128, 512), ("dense", "depthwise"))]
    labels, xlabel = _bar_labels(AUTO_HEADER, rows)
    title = ("Dense 8x16x128^2, 16->16, k=31, same: time (ms) and ratio to cnnconv (targets: nn.Conv2d "
             "fwd+bwd >= 15x, fft-conv-pytorch and kornia fwd >= 2x). kornia's fft_conv applies one kernel "
             "to every channel: it has no channel mixing, so n/a. " * 3)
    fig = _bar_chart(labels, [float(r[-1]) for r in rows], "chosen / best", title, tmp_path / "b.png",
                     xlabel=xlabel)
    assert fig.axes[0].get_title().count("\n") <= 2
    _assert_all_text_inside(fig)
    _assert_ticks_apart(fig, fig.axes[0].xaxis)
    _assert_png_size(tmp_path / "b.png")


def test_time_chart_plain_ticks_and_legend_outside():
    from experiments.timing import time_chart as _time_chart

    ks = [3, 5, 7, 11, 15, 23, 31, 47, 63, 95, 127]
    t = {"direct F.conv2d": (ks, [1e-5 * k ** 2 for k in ks]), "cnnconv fft": (ks, [1e-3] * len(ks))}
    fig = _time_chart(t, {"k^2 slope": (ks, [2e-5 * k ** 2 for k in ks], ":")}, ks, "kernel size k",
                      "Depthwise 1x3x256x256: direct vs FFT crossover")
    ax = fig.axes[0]
    assert _assert_ticks_apart(fig, ax.xaxis) == [str(k) for k in ks]
    assert _assert_ticks_apart(fig, ax.yaxis) == ["0.1", "1", "10", "100"]
    assert "ms" in ax.get_ylabel()
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1e-2 * k ** 2 for k in ks])  # in ms
    _assert_legend_off_the_data(fig, ax)
    _assert_all_text_inside(fig)


def test_line_plot_series_distinct_legend_outside(tmp_path):
    from experiments.common import line_plot

    rng = np.random.default_rng(5)
    x = np.arange(20)
    curves = {f"run {i}": (x, np.exp(rng.uniform(-8, 0)) * np.exp(-0.1 * x)) for i in range(13)}
    fig = line_plot(curves, tmp_path / "l.png", xlabel="step", ylabel="relative error", title="Error",
                    logy=True, hlines={"acceptance": 1e-3})
    ax = fig.axes[0]
    series = _series(ax)
    assert len(series) == 14
    styles = [v[:3] for k, v in series.items() if k != "acceptance"]
    assert len(set(styles)) == 13, "two curves look the same"
    _assert_legend_off_the_data(fig, ax)
    _assert_ticks_apart(fig, ax.yaxis)
    _assert_all_text_inside(fig)
    _assert_png_size(tmp_path / "l.png")
