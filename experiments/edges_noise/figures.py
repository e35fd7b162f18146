"""The figures of experiment 2: ODS against noise, the learned kernels beside hand-designed
ones, and precision-recall curves. Every detector keeps one line style across the figures of a
run; fixed detectors are drawn with thin broken lines, learned ones with thick solid lines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..common import new_figure, save_figure
from .detectors import hand_designed_kernels
from .stats import _best_per_group, _is_hand, _noise_label

__all__ = ["plot_ods_vs_noise", "plot_kernel_panel", "plot_pr_curves"]


def plot_ods_vs_noise(summary: dict, path: Path) -> Path:
    """ODS against noise, one line per detector group (see :func:`_ods_vs_noise_figure`)."""
    save_figure(_ods_vs_noise_figure(summary), path, dpi=110)
    return Path(path)


# Per family: colour ramp (colormap, range), line style, markers, and whether the detector is fixed
# (thin broken lines and hollow markers) or learned (thick solid lines and filled markers). Within
# a family the colour darkens with sigma or kernel size.
_FAMILY_STYLE = {
    "hand": ("Greys", (0.95, 0.5), "--", "sD^", True),
    "dog": ("Blues", (0.45, 1.0), ":", "osD^vp", True),
    "canny": ("Oranges", (0.45, 0.85), "-.", "v^", True),
    "learned": ("Reds", (0.4, 1.0), "-", "osD", False),
    "parametric": ("Greens", (0.75, 0.75), "-", "*", False),
}
_OTHER_STYLE = ("Purples", (0.5, 0.95), "-", "osD^v", False)
_LEARNED_LABEL = "best learned {k}x{k}"
_PARAMETRIC_LABEL = "learnable sigma DoG"


def _style_key(name: str, entry: dict) -> str:
    """The series a detector belongs to: its name, or its group for learned detectors."""
    if entry["family"] == "learned":
        return _LEARNED_LABEL.format(k=entry["kernel_size"])
    if entry["family"] == "parametric":
        return _PARAMETRIC_LABEL
    return name


def _detector_styles(summary: dict) -> dict:
    """Line style of every series (:func:`_style_key`), the same in every figure of a run.

    Returns:
        ``{key: matplotlib line keywords}``, with a distinct (colour, marker, line style) per key.
    """
    from matplotlib import colormaps

    members: dict = {}
    for at in summary.values():
        for name, e in at.items():
            key = _style_key(name, e)
            order = e["sigma"] if e["sigma"] is not None else (e["kernel_size"] or 0)
            members.setdefault(e["family"], {}).setdefault(key, order)
    styles = {}
    for family, keys in members.items():
        cmap, (lo, hi), ls, markers, fixed = _FAMILY_STYLE.get(family, _OTHER_STYLE)
        ordered = sorted(keys, key=keys.get)  # stable: first-seen order among equals
        for i, key in enumerate(ordered):
            t = lo + (hi - lo) * i / max(1, len(ordered) - 1)
            styles[key] = dict(color=colormaps[cmap](t), ls=ls, marker=markers[i % len(markers)],
                               lw=1.3 if fixed else 2.4, ms=5 if fixed else 7,
                               mfc="white" if fixed else colormaps[cmap](t))
    return styles


def _ods_vs_noise_figure(summary: dict):
    """ODS against noise: every fixed detector, and per noise level the best learned variant of
    each kernel size and the learnable-sigma DoG.

    With more than one seed each point is the mean with a ± std error bar (the series are shifted
    a little sideways so that the bars do not hide each other); with one seed there are no bars.
    The noise levels are evenly spaced on the x axis. The legend sits outside the axes.
    """
    noises = sorted(summary)
    styles = _detector_styles(summary)
    best = _best_per_group(summary)
    series: dict = {}  # key -> [(noise index, entry)]
    for i, noise in enumerate(noises):
        for d, e in summary[noise].items():
            if e["family"] in ("learned", "parametric"):
                continue
            series.setdefault(d, []).append((i, e))
        for label, d in best[noise].items():
            e = summary[noise][d]
            if e["family"] in ("learned", "parametric"):
                series.setdefault(_style_key(d, e), []).append((i, e))
    # Fixed detectors first, then the learned ones, as in the report's tables.
    keys = sorted(series, key=lambda k: not _is_hand(k, series[k][0][1]))
    seeds = max(e["n"] for at in summary.values() for e in at.values())
    fig = new_figure(9.5, 5.2)
    ax = fig.add_subplot()
    for j, key in enumerate(keys):
        xs = [i for i, _ in series[key]]
        means = [e["ods"][0] for _, e in series[key]]
        if seeds > 1:
            shift = 0.25 * (j / max(1, len(keys) - 1) - 0.5)
            ax.errorbar([x + shift for x in xs], means, yerr=[e["ods"][1] for _, e in series[key]],
                        label=key, capsize=2, elinewidth=0.8, **styles[key])
        else:
            ax.plot(xs, means, label=key, **styles[key])
    ax.set_xticks(range(len(noises)), [_noise_label(n) for n in noises])
    ax.set_xlabel("noise std (fraction of the edge contrast; levels evenly spaced)")
    ax.set_ylabel(f"ODS F (mean ± std over {seeds} seeds)" if seeds > 1 else "ODS F (one seed)")
    ax.set_title("Boundary detection under noise, held-out scenes")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8,
               title="broken lines: fixed\nsolid lines: learned", title_fontsize=8)
    return fig


def _crop_support(k: torch.Tensor, rel: float = 1e-3) -> torch.Tensor:
    """Centred crop to the smallest odd square holding every value above ``rel * max|k|``."""
    big = (k.abs() > rel * k.abs().max()).nonzero()
    if big.numel() == 0:
        return k
    c = k.shape[-1] // 2
    r = int((big - c).abs().max())
    return k[c - r: c + r + 1, c - r: c + r + 1]


def plot_kernel_panel(summary: dict, kernels_by_unit: dict, seed: int, path: Path) -> Path:
    """Learned x-kernels beside Sobel and the best derivative of Gaussian, one row per noise level.

    ``kernels_by_unit[(seed, noise)][name]["weights"]`` holds the aligned ``(2, k, k)`` kernels.
    See :func:`_kernel_panel_figure`.
    """
    save_figure(_kernel_panel_figure(summary, kernels_by_unit, seed), path)
    return Path(path)


def _kernel_panel_figure(summary: dict, kernels_by_unit: dict, seed: int):
    """The kernel panel: columns are detector groups (named on top), rows noise levels (named on
    the left). Learned kernels are on an arbitrary scale (the logistic head absorbs it), so every
    kernel is divided by its largest absolute weight, written under it; all panels then share
    one symmetric diverging colour scale [-1, 1] (red positive, blue negative) and one colour bar.
    """
    noises = sorted(summary)
    best = _best_per_group(summary)
    cols = ["sobel", "best DoG of the grid", "best learned 3x3", "best learned 5x5",
            "best learned 7x7", "learnable sigma DoG"]
    cols = [c for c in cols if any(c in best[n] for n in noises)]
    fig = new_figure(1.75 * len(cols) + 1.6, 1.9 * len(noises) + 0.9)
    axes = fig.subplots(len(noises), len(cols), squeeze=False)
    image = None
    for r, noise in enumerate(noises):
        for c, label in enumerate(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"noise {_noise_label(noise)}", fontsize=10)
            name = best[noise].get(label)
            if r == 0:
                ax.set_title(label, fontsize=9)
            if name is None:
                ax.set_xlabel("none", fontsize=7)
                for spine in ax.spines.values():
                    spine.set_visible(False)
                continue
            entry = summary[noise][name]
            if entry["family"] == "hand":
                k = hand_designed_kernels(name, dtype=torch.float64)[0]
            elif entry["family"] == "dog":
                k = hand_designed_kernels("dog", sigma=entry["sigma"], dtype=torch.float64)[0]
            else:
                k = torch.tensor(kernels_by_unit[(seed, noise)][name]["weights"][0], dtype=torch.float64)
                if entry["family"] == "parametric":
                    k = _crop_support(k)  # sized for the largest sigma; show the part that matters
            peak = float(k.abs().max()) or 1.0
            image = ax.imshow((k / peak).numpy(), cmap="RdBu_r", vmin=-1.0, vmax=1.0,
                              interpolation="nearest")
            short = "learned sigma" if entry["family"] == "parametric" else (
                name.replace("learned-", "").replace("-zerosum", " zs"))
            ax.set_xlabel(f"{short} ({k.shape[-1]}x{k.shape[-1]})\nmax |w| {peak:.2g}", fontsize=7)
    if image is not None:
        cbar = fig.colorbar(image, ax=axes, shrink=min(0.6, 2.5 / len(noises)), ticks=[-1, -0.5, 0, 0.5, 1])
        cbar.set_label("weight / max |weight| of its kernel", fontsize=8)
        cbar.ax.tick_params(labelsize=7)
    fig.suptitle(f"x-derivative kernels, seed {seed}\n(learned pairs aligned to Sobel's direction)",
                 fontsize=10)
    return fig


def plot_pr_curves(summary: dict, curves_by_unit: dict, seed: int, noise: float,
                   path: Path) -> Path | None:
    """P-R curves of the headline detectors at one noise level (one seed); ``None`` when there
    are none. See :func:`_pr_curves_figure`."""
    fig = _pr_curves_figure(summary, curves_by_unit, seed, noise)
    if fig is None:
        return None
    save_figure(fig, path, dpi=110)
    return Path(path)


def _pr_curves_figure(summary: dict, curves_by_unit: dict, seed: int, noise: float):
    """P-R curves, each with its ODS point (largest F) marked, zoomed to the region the curves
    span near their ODS points, iso-F lines labelled at the edge of the view, legend outside."""
    curves = curves_by_unit.get((seed, noise), {})
    best = _best_per_group(summary)[noise]
    names = [n for n in dict.fromkeys(best.values()) if n in curves]
    if not names:
        return None
    styles = _detector_styles(summary)
    fig = new_figure(8.6, 5.4)
    ax = fig.add_subplot()
    shown = []  # (recall, precision) points of the informative part of each curve
    for n in names:
        r = np.asarray(curves[n]["recall"], dtype=np.float64)
        p = np.asarray(curves[n]["precision"], dtype=np.float64)
        f = np.where(r + p > 0, 2 * r * p / np.maximum(r + p, 1e-12), 0.0)
        i = int(np.argmax(f))
        style = dict(styles[_style_key(n, summary[noise][n])], ms=3)
        line, = ax.plot(r, p, label=f"{n} (ODS F {f[i]:.3f})", **style)
        ax.plot(r[i], p[i], marker=style["marker"], ms=9, color=line.get_color(),
                mfc=style["mfc"], mew=1.5, ls="none", zorder=3)
        keep = f >= 0.8 * f[i]  # the part of the curve around its ODS point
        shown.append(np.stack([r[keep], p[keep]], axis=1))
    pts = np.concatenate(shown)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    x0, y0 = max(0.0, math.floor(x0 * 10 - 0.5) / 10), max(0.0, math.floor(y0 * 10 - 0.5) / 10)
    x1, y1 = min(1.0, math.ceil(x1 * 10 + 0.5) / 10), min(1.0, math.ceil(y1 * 10 + 0.5) / 10)
    rr = np.linspace(max(x0, 1e-3), x1, 400)
    for fv in np.arange(1, 10) / 10:
        with np.errstate(divide="ignore", invalid="ignore"):
            pp = fv * rr / (2 * rr - fv)
        ok = (pp > 0) & (pp <= 1)
        ax.plot(rr[ok], pp[ok], color="0.8", lw=0.7, zorder=0)
        # Label just outside the view where the iso-F line leaves it: the top edge, else the right.
        r_top = y1 * fv / (2 * y1 - fv) if 2 * y1 > fv else math.inf
        if x0 < r_top < x1:
            at, offset, align = (r_top, y1), (0, 2), dict(ha="center", va="bottom")
        else:
            p_right = fv * x1 / (2 * x1 - fv) if 2 * x1 > fv else math.inf
            if not y0 < p_right < y1:
                continue
            at, offset, align = (x1, p_right), (3, 0), dict(ha="left", va="center")
        ax.annotate(f"F={fv:.1f}", at, xytext=offset, textcoords="offset points", fontsize=7,
                    color="0.45", annotation_clip=False, **align)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision-recall, noise {_noise_label(noise)}, seed {seed} (large marker: ODS point)",
                 fontsize=10, pad=14)
    ax.grid(alpha=0.2)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig

