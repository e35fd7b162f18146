"""Figures of convolution kernels (matplotlib, an optional dependency imported lazily).

Every function builds a ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global
backend change, nothing left open), returns it, and writes it when ``path`` is given, as PNG, PDF
or SVG after the path's extension (:data:`FORMATS`; any other extension is refused). Files are
written by :func:`save_figure` (:mod:`.figure_io`): to a temporary file in the same folder and
renamed into place, with the permissions the umask gives a new file; an existing file is never
replaced unless ``overwrite=True``.

Kernels are drawn with a diverging colormap centred on zero (red positive, blue negative), on a
symmetric scale ``[-m, m]`` shared by the kernels of a figure row (or of a comparison) and shown
by a colour bar, so amplitudes compare; kernel rows are image rows (row 0 on top), as the kernel
is applied by ``F.conv2d``. Layouts use matplotlib's constrained layout: titles, colour bars and
value labels stay inside the canvas and do not overlap.

Example:
    >>> from cnnconv import kernels
    >>> from cnnconv.analysis import plotting
    >>> fig = plotting.plot_kernels([kernels.sobel_x(), kernels.sobel_y()], titles=["x", "y"])
    >>> len(fig.axes) >= 2
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cnnconv._utils.optional import require
from cnnconv.analysis.describe import frequency_response
from cnnconv.analysis.figure_io import FORMATS, figure_format, save_figure

__all__ = [
    "FORMATS",
    "MAX_FIGURE_INCHES",
    "figure_format",
    "plot_frequency_response",
    "plot_kernels",
    "plot_side_by_side",
    "save_figure",
]

#: Largest width and height of a figure in inches (3600 px at the default 120 dpi): large grids
#: get smaller panels instead of an unbounded image.
MAX_FIGURE_INCHES = 30.0


def _figure(width: float, height: float):
    """A new Figure on an Agg canvas, independent of pyplot."""
    require("matplotlib", "plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _to_list(kernels, name: str) -> list[torch.Tensor]:
    """Accept a tensor ``(kh, kw)``, ``(N, kh, kw)``, ``(O, I, kh, kw)`` or a sequence of 2-D kernels."""
    if isinstance(kernels, torch.Tensor):
        k = kernels.detach()
        if k.ndim == 2:
            items = [k]
        elif k.ndim == 3:
            items = list(k)
        elif k.ndim == 4:
            items = list(k.reshape(-1, *k.shape[-2:]))
        else:
            raise ValueError(f"{name} must have 2 to 4 dimensions, got shape {tuple(k.shape)}")
    elif isinstance(kernels, Sequence) and not isinstance(kernels, (str, bytes)):
        items = []
        for i, item in enumerate(kernels):
            t = torch.as_tensor(item).detach() if not isinstance(item, torch.Tensor) else item.detach()
            if t.ndim == 1:
                t = t.unsqueeze(0)
            if t.ndim != 2:
                raise ValueError(f"{name}[{i}] must be a 2-D kernel, got shape {tuple(t.shape)}")
            items.append(t)
    else:
        raise TypeError(f"{name} must be a tensor or a sequence of 2-D tensors, got {type(kernels).__name__}")
    if not items:
        raise ValueError(f"{name} must hold at least one kernel, got none")
    return [t.to(device="cpu", dtype=torch.float64) for t in items]


def _check_titles(titles, n: int, name: str = "titles"):
    if titles is None:
        return [None] * n
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"{name} must have one entry per kernel ({n}), got {len(titles)}")
    return [None if t is None else str(t) for t in titles]


def _grid_figure(nrows: int, ncols: int, panel_w: float, panel_h: float, suptitle):
    """A figure of ``nrows x ncols`` panels laid out by matplotlib's constrained layout (titles,
    colour bars and the figure title never overlap or leave the canvas).

    Panels shrink so that neither side of the figure exceeds :data:`MAX_FIGURE_INCHES`. Returns
    the figure, the axes array and the shrink factor (1.0 when the panels keep their size).
    """
    width = ncols * panel_w + 0.8
    height = nrows * panel_h + (0.5 if suptitle else 0.1)
    shrink = min(1.0, MAX_FIGURE_INCHES / width, MAX_FIGURE_INCHES / height)
    fig = _figure(width * shrink, height * shrink)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    if suptitle:
        fig.suptitle(suptitle)
    return fig, axes, shrink


def _limit(kernels) -> float:
    """The symmetric colour limit ``max |k|`` over ``kernels`` (1.0 when all are zero)."""
    vmax = max(float(k.abs().max()) for k in kernels)
    return vmax if vmax > 0 else 1.0


def _value_fontsize(k: torch.Tensor, panel_w: float) -> float | None:
    """Font size at which every value label of ``k`` fits its cell of a ``panel_w``-inch panel,
    at most 7 pt; ``None`` when the kernel is larger than 7x7 or the labels would be under 4 pt."""
    if max(k.shape) > 7:
        return None
    longest = max(len(f"{v:.2g}") for v in k.flatten().tolist())
    # Cell width in points (the image fills about 3/4 of the panel), a digit ~0.62 em wide.
    size = min(7.0, 0.75 * panel_w * 72 / max(k.shape) / (0.62 * longest + 0.6))
    return size if size >= 4 else None


def _title_fontsize(title: str, panel_w: float) -> float:
    """At most 9 pt, smaller for a title line wider than about 3/4 of a ``panel_w``-inch panel
    (the rest is the colour bar and the gap), at least 5 pt."""
    longest = max(len(line) for line in title.splitlines())
    return max(5.0, min(9.0, 0.75 * panel_w * 72 / (0.6 * longest)))


def _draw_kernel(ax, k: torch.Tensor, title, vmax: float, cmap: str, fontsize: float | None, panel_w: float):
    """Draw ``k`` on ``ax`` with colour limits ``[-vmax, vmax]``; write its values at
    ``fontsize`` (none when ``None``); size the title to the ``panel_w``-inch panel."""
    image = ax.imshow(k.numpy(), cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=_title_fontsize(title, panel_w))
    if fontsize:
        for (r, c), v in zip(((r, c) for r in range(k.shape[0]) for c in range(k.shape[1])), k.flatten().tolist()):
            ax.text(
                c,
                r,
                f"{v:.2g}",
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if abs(v) > 0.6 * vmax else "black",
            )
    return image


def _colorbar(fig, image, axes, ticks=None, label=None, aspect: float = 20):
    """A colour bar for ``image`` beside ``axes`` (one Axes or a list sharing the scale),
    ``aspect`` times longer than wide."""
    cbar = fig.colorbar(image, ax=axes, fraction=0.046 if not isinstance(axes, list) else 0.02, pad=0.02, aspect=aspect)
    if ticks is not None:
        cbar.set_ticks(ticks)
        cbar.set_ticklabels([f"{t:.2g}" for t in ticks])
    cbar.ax.tick_params(labelsize=7)
    if label:
        cbar.set_label(label, fontsize=8)
    return cbar


def _grid_shape(n: int, ncols) -> tuple[int, int]:
    if ncols is None:
        ncols = min(n, max(1, math.ceil(math.sqrt(n))))
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    return math.ceil(n / ncols), min(ncols, n)


def _check_share(share: str) -> None:
    if share not in ("row", "all"):
        raise ValueError(f"share must be 'row' or 'all', got {share!r}")


def plot_kernels(
    kernels,
    titles=None,
    path=None,
    *,
    ncols: int | None = None,
    share: str = "row",
    cmap: str = "RdBu_r",
    colorbar: bool = True,
    annotate: bool = True,
    suptitle: str | None = None,
    overwrite: bool = False,
    dpi: int = 120,
):
    """Grid of kernels, diverging colormap centred on zero, one colour scale per row.

    The kernels of a row share the symmetric colour limits ``[-m, m]`` (``m`` the largest
    ``|value|`` in the row, or in the whole figure with ``share="all"``) and one colour bar, so
    amplitudes compare across the row. The figure is at most :data:`MAX_FIGURE_INCHES` on each
    side (panels shrink for large grids).

    Args:
        kernels: tensor ``(kh, kw)``, ``(N, kh, kw)`` or ``(O, I, kh, kw)``, or a sequence of 2-D
            kernels (sizes may differ).
        titles: one title per kernel, or ``None``.
        path: write the figure there (PNG, PDF or SVG by extension, atomically; see
            :func:`save_figure`).
        ncols: columns of the grid (default: about a square grid).
        share: ``"row"`` (one colour scale per row) or ``"all"`` (one for the whole figure).
        cmap: a diverging colormap.
        colorbar: draw a colour bar per row (one for the figure with ``share="all"``).
        annotate: write the values on kernels up to 7x7 when they fit their cells.
        suptitle: figure title.
        overwrite: allow replacing an existing ``path``.
        dpi: resolution.

    Returns:
        The matplotlib Figure.

    Example:
        >>> from cnnconv import kernels
        >>> fig = plot_kernels(torch.stack([kernels.sobel_x(), kernels.laplacian(4)]))
        >>> [round(v, 1) for v in fig.axes[1].images[0].get_clim()]  # the row's largest |value|
        [-4.0, 4.0]
    """
    _check_share(share)
    items = _to_list(kernels, "kernels")
    titles = _check_titles(titles, len(items))
    nrows, ncols = _grid_shape(len(items), ncols)
    fig, axes, shrink = _grid_figure(nrows, ncols, 2.2, 2.0, suptitle)
    rows = [items[r * ncols : (r + 1) * ncols] for r in range(nrows)]
    limits = [_limit(items)] * nrows if share == "all" else [_limit(row) for row in rows]
    for r, row in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            if c >= len(row):
                ax.set_axis_off()
                continue
            fontsize = _value_fontsize(row[c], 2.2 * shrink) if annotate else None
            image = _draw_kernel(ax, row[c], titles[r * ncols + c], limits[r], cmap, fontsize, 2.2 * shrink)
        if colorbar and (share == "row" or r == nrows - 1):
            vmax = limits[r]
            _colorbar(fig, image, list(axes[r] if share == "row" else axes.flat), [-vmax, 0.0, vmax])
    if path is not None:
        save_figure(fig, path, overwrite=overwrite, dpi=dpi)
    return fig


def plot_frequency_response(
    kernels,
    titles=None,
    path=None,
    *,
    size: int = 64,
    log: bool = False,
    ncols: int | None = None,
    share: str = "row",
    cmap: str = "viridis",
    suptitle: str | None = None,
    overwrite: bool = False,
    dpi: int = 120,
):
    """Panels of frequency-response magnitudes, zero frequency in the centre.

    Axes are in cycles/pixel (fx to the right, fy downwards, from -0.5 to 0.5). The panels of a
    row share their colour limits and one colour bar (``share="all"``: the whole figure), so
    gains compare across the row.

    Args:
        kernels: as for :func:`plot_kernels`.
        titles: one title per kernel, or ``None``.
        path: write the figure there (PNG, PDF or SVG by extension).
        size: frequency grid size (the kernel is zero-padded to ``size x size``).
        log: show ``20 log10`` of the magnitude (dB) instead of the magnitude.
        ncols, share: as for :func:`plot_kernels`.
        cmap: a sequential colormap.
        suptitle, overwrite, dpi: as for :func:`plot_kernels`.

    Returns:
        The matplotlib Figure.

    Example:
        >>> from cnnconv import kernels
        >>> fig = plot_frequency_response([kernels.gaussian(1.0, 7)], size=32)
        >>> fig.axes[0].images[0].get_array().shape
        (32, 32)
    """
    _check_share(share)
    items = _to_list(kernels, "kernels")
    titles = _check_titles(titles, len(items))
    nrows, ncols = _grid_shape(len(items), ncols)
    fig, axes, shrink = _grid_figure(nrows, ncols, 2.8, 2.6, suptitle)
    panels = []
    for k in items:
        mag, freqs = frequency_response(k, size=max(size, max(k.shape)))
        panels.append((20.0 * torch.log10(mag.clamp_min(1e-12)) if log else mag, freqs))
    rows = [panels[r * ncols : (r + 1) * ncols] for r in range(nrows)]
    shared = rows if share == "row" else [panels] * nrows
    for r, row in enumerate(rows):
        vmin = min(float(v.min()) for v, _ in shared[r])
        vmax = max(float(v.max()) for v, _ in shared[r])
        for c, ax in enumerate(axes[r]):
            if c >= len(row):
                ax.set_axis_off()
                continue
            values, freqs = row[c]
            step = float(freqs[1] - freqs[0])
            lo, hi = float(freqs[0]) - step / 2, float(freqs[-1]) + step / 2
            image = ax.imshow(
                values.cpu().numpy(), cmap=cmap, extent=(lo, hi, hi, lo), vmin=vmin, vmax=vmax, interpolation="nearest"
            )
            ax.set_xlabel("fx (cycles/px)", fontsize=8)
            ax.set_ylabel("fy (cycles/px)", fontsize=8)
            ticks = [t for t in (-0.5, -0.25, 0.0, 0.25, 0.5) if lo <= t <= hi]  # inside the image
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
            ax.tick_params(labelsize=7)
            if titles[r * ncols + c]:
                ax.set_title(titles[r * ncols + c], fontsize=_title_fontsize(titles[r * ncols + c], 2.8 * shrink))
        if share == "row" or r == nrows - 1:
            _colorbar(fig, image, list(axes[r] if share == "row" else axes.flat), label="dB" if log else "|H|")
    if path is not None:
        save_figure(fig, path, overwrite=overwrite, dpi=dpi)
    return fig


def _factor_text(factor: float) -> str:
    return f"{factor:.0f}" if factor >= 10 else f"{factor:.2g}"


def plot_side_by_side(
    learned,
    reference,
    titles=None,
    reference_titles=None,
    path=None,
    *,
    difference: bool = True,
    ncols: int | None = None,
    cmap: str = "RdBu_r",
    annotate: bool = True,
    suptitle: str | None = None,
    overwrite: bool = False,
    dpi: int = 120,
):
    """Learned kernels (top row of each block) against references (middle), with their difference.

    Each reference is least-squares scaled onto its learned kernel (``a * reference``, the
    factor in its title) and drawn at that scale, sharing the learned kernel's symmetric colour
    scale and colour bar. The difference ``learned - a * reference`` gets its own symmetric
    scale and colour bar, magnified against the kernel's scale by the factor its title gives
    (``difference x N``), so that a small residual stays visible. Comparisons are laid out as a
    grid of blocks of ``ncols`` columns; the figure is at most :data:`MAX_FIGURE_INCHES` on each
    side.

    Args:
        learned: kernels as for :func:`plot_kernels`.
        reference: the same number of kernels, each the shape of its learned kernel.
        titles: titles of the learned kernels.
        reference_titles: titles of the references.
        path: write the figure there (PNG, PDF or SVG by extension).
        difference: add a third row ``learned - a * reference``.
        ncols: comparisons per block of rows (default: about a square figure).
        cmap, annotate, suptitle, overwrite, dpi: as for :func:`plot_kernels`.

    Returns:
        The matplotlib Figure.

    Example:
        >>> from cnnconv import kernels
        >>> fig = plot_side_by_side([kernels.sobel_x() * 0.9], [kernels.sobel_x()])
        >>> [ax.get_title().splitlines()[0] for ax in fig.axes if ax.images]
        ['learned 0', 'reference 0', 'difference (zero)']
    """
    learned = _to_list(learned, "learned")
    reference = _to_list(reference, "reference")
    if len(learned) != len(reference):
        raise ValueError(f"reference must have one kernel per learned kernel ({len(learned)}), got {len(reference)}")
    for i, (a, b) in enumerate(zip(learned, reference)):
        if a.shape != b.shape:
            raise ValueError(
                f"reference[{i}] must have the shape of learned[{i}] {tuple(a.shape)}, got {tuple(b.shape)}"
            )
    titles = _check_titles(titles, len(learned))
    reference_titles = _check_titles(reference_titles, len(learned), "reference_titles")
    rows = 3 if difference else 2
    n = len(learned)
    if ncols is None:  # about a square figure, blocks as full as possible
        ncols = math.ceil(n / math.ceil(n / min(n, math.ceil(math.sqrt(n * rows)))))
    blocks, ncols = _grid_shape(n, ncols)
    fig, axes, shrink = _grid_figure(blocks * rows, ncols, 2.2, 2.1, suptitle)
    for i in range(n):
        a, b = learned[i], reference[i]
        top, col = rows * (i // ncols), i % ncols
        denom = float((b * b).sum())
        scale = float((a * b).sum()) / denom if denom > 0 else 0.0
        b = scale * b
        vmax = _limit([a, b])
        fontsize = _value_fontsize(a, 2.2 * shrink) if annotate else None
        _draw_kernel(axes[top, col], a, titles[i] or f"learned {i}", vmax, cmap, fontsize, 2.2 * shrink)
        image = _draw_kernel(
            axes[top + 1, col],
            b,
            f"{reference_titles[i] or f'reference {i}'}\nscaled x {scale:.3g}",
            vmax,
            cmap,
            fontsize,
            2.2 * shrink,
        )
        _colorbar(fig, image, [axes[top, col], axes[top + 1, col]], [-vmax, 0.0, vmax], aspect=60)
        if difference:
            diff = a - b
            dmax = float(diff.abs().max())
            # A residual below 1e-12 of the kernel is rounding: not magnified.
            title = f"difference x {_factor_text(vmax / dmax)}" if dmax > 1e-12 * vmax else "difference (zero)"
            dmax = dmax if dmax > 1e-12 * vmax else vmax
            image = _draw_kernel(
                axes[top + 2, col],
                diff,
                title,
                dmax,
                cmap,
                _value_fontsize(diff, 2.2 * shrink) if annotate else None,
                2.2 * shrink,
            )
            _colorbar(fig, image, axes[top + 2, col], [-dmax, 0.0, dmax])
    for i in range(n, blocks * ncols):
        for r in range(rows):
            axes[rows * (i // ncols) + r, i % ncols].set_axis_off()
    if path is not None:
        save_figure(fig, path, overwrite=overwrite, dpi=dpi)
    return fig
