"""Figures of convolution kernels (matplotlib, an optional dependency imported lazily).

Every function builds a ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global
backend change, nothing left open), returns it, and writes it when ``path`` is given, as PNG, PDF
or SVG after the path's extension (:data:`FORMATS`; any other extension is refused). Files are
written to a temporary file in the same folder and renamed into place, with the permissions the
umask gives a new file; an existing file is never replaced unless ``overwrite=True``.

Kernels are drawn with a diverging colormap centred on zero (red positive, blue negative), each
kernel on its own scale ``[-max|k|, max|k|]`` with its own colour bar; rows are image rows
(row 0 on top), as the kernel is applied by ``F.conv2d``.

Example:
    >>> from cnnconv import kernels, plotting
    >>> fig = plotting.plot_kernels([kernels.sobel_x(), kernels.sobel_y()], titles=["x", "y"])
    >>> len(fig.axes) >= 2
    True
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Sequence

import torch

__all__ = ["FORMATS", "figure_format", "plot_kernels", "plot_frequency_response", "plot_side_by_side", "save_figure"]

FORMATS = ("png", "pdf", "svg")  # file formats written, chosen by the path's extension

_EXTRA_HINT = "plotting needs matplotlib: pip install 'cnnconv[experiments]'"


def _figure(width: float, height: float):
    """A new Figure on an Agg canvas, independent of pyplot."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_EXTRA_HINT) from exc
    # No layout engine: constrained layout costs seconds with one colour bar per panel.
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def figure_format(path) -> str:
    """The file format for ``path`` from its extension (case-insensitive): one of :data:`FORMATS`.

    Raises:
        ValueError: the extension is missing or not one of :data:`FORMATS`.

    Example:
        >>> figure_format("kernels.PDF")
        'pdf'
    """
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        known = ", ".join("." + f for f in FORMATS)
        raise ValueError(f"path must end in one of the extensions {known}, got {os.fspath(path)!r}")
    return ext


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_figure(fig, path, *, overwrite: bool = False, dpi: int = 120) -> str:
    """Write ``fig`` atomically (temporary file in the same folder, then rename) as PNG, PDF or
    SVG after the extension of ``path`` (see :func:`figure_format`).

    The file gets the permissions of a newly created file (``0o666`` less the umask), not the
    ``0o600`` of the temporary file.

    Args:
        fig: a matplotlib Figure.
        path: destination file (str or ``os.PathLike``) ending in ``.png``, ``.pdf`` or ``.svg``;
            its folder must exist.
        overwrite: replace an existing file; otherwise an existing file raises FileExistsError.
        dpi: resolution (of the PNG, and of raster parts in a PDF or SVG).

    Returns:
        The path written, as a string.

    Example:
        >>> import os, tempfile
        >>> from cnnconv import kernels
        >>> out = os.path.join(tempfile.mkdtemp(), "k.png")
        >>> save_figure(plot_kernels([kernels.sobel_x()]), out) == out
        True
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    fmt = figure_format(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder of path does not exist, got {path!r}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing file {path!r} (pass overwrite=True)")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="." + fmt, dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format=fmt, dpi=dpi)
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the destination appeared meanwhile: no race can overwrite a file.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"refusing to overwrite existing file {path!r} (pass overwrite=True)") from None
            except OSError:  # filesystems without hard links
                if os.path.exists(path):
                    raise FileExistsError(f"refusing to overwrite existing file {path!r} (pass overwrite=True)") from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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


def _draw_kernel(fig, ax, k: torch.Tensor, title, colorbar: bool, cmap: str, annotate: bool):
    vmax = float(k.abs().max())
    vmax = vmax if vmax > 0 else 1.0
    image = ax.imshow(k.numpy(), cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if annotate and max(k.shape) <= 7:
        for (r, c), v in zip(((r, c) for r in range(k.shape[0]) for c in range(k.shape[1])), k.flatten().tolist()):
            ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v) > 0.6 * vmax else "black")
    if colorbar:
        _colorbar(fig, image, ax, [-vmax, 0.0, vmax])
    return image


def _colorbar(fig, image, ax, ticks=None, label=None):
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if ticks is not None:
        cbar.set_ticks(ticks)
        cbar.set_ticklabels([f"{t:.2g}" for t in ticks])
    cbar.ax.tick_params(labelsize=7)
    if label:
        cbar.set_label(label, fontsize=8)
    return cbar


def _finish(fig, suptitle, hspace=0.35, wspace=0.45, left=0.04, bottom=0.04):
    # Margins in inches, so that they do not shrink or grow with the number of panels.
    width, height = fig.get_size_inches()
    top = 1.0 - (0.55 if suptitle else 0.15) / height
    if suptitle:
        fig.suptitle(suptitle)
    fig.subplots_adjust(
        left=left / width * 8, right=1.0 - 0.6 / width, bottom=bottom / height * 6, top=top,
        hspace=hspace, wspace=wspace,
    )


def _grid_shape(n: int, ncols) -> tuple[int, int]:
    if ncols is None:
        ncols = min(n, max(1, math.ceil(math.sqrt(n))))
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    return math.ceil(n / ncols), min(ncols, n)


def plot_kernels(
    kernels,
    titles=None,
    path=None,
    *,
    ncols: int | None = None,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
    annotate: bool = True,
    suptitle: str | None = None,
    overwrite: bool = False,
    dpi: int = 120,
):
    """Grid of kernels, diverging colormap centred on zero, each on its own scale.

    Args:
        kernels: tensor ``(kh, kw)``, ``(N, kh, kw)`` or ``(O, I, kh, kw)``, or a sequence of 2-D
            kernels (sizes may differ).
        titles: one title per kernel, or ``None``.
        path: write the figure there (PNG, PDF or SVG by extension, atomically; see
            :func:`save_figure`).
        ncols: columns of the grid (default: about a square grid).
        cmap: a diverging colormap.
        colorbar: draw a colour bar next to each kernel.
        annotate: write the values on kernels up to 7x7.
        suptitle: figure title.
        overwrite: allow replacing an existing ``path``.
        dpi: resolution.

    Returns:
        The matplotlib Figure.

    Example:
        >>> from cnnconv import kernels
        >>> fig = plot_kernels(torch.stack([kernels.sobel_x(), kernels.laplacian(4)]))
        >>> [round(v, 1) for v in fig.axes[0].images[0].get_clim()]
        [-2.0, 2.0]
    """
    items = _to_list(kernels, "kernels")
    titles = _check_titles(titles, len(items))
    nrows, ncols = _grid_shape(len(items), ncols)
    fig = _figure(2.3 * ncols + 0.4, 2.1 * nrows + (0.4 if suptitle else 0.1))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(items):
            ax.set_axis_off()
            continue
        _draw_kernel(fig, ax, items[i], titles[i], colorbar, cmap, annotate)
    _finish(fig, suptitle)
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
    cmap: str = "viridis",
    suptitle: str | None = None,
    overwrite: bool = False,
    dpi: int = 120,
):
    """Panels of frequency-response magnitudes, zero frequency in the centre.

    Axes are in cycles/pixel (fx to the right, fy downwards, from -0.5 to 0.5).

    Args:
        kernels: as for :func:`plot_kernels`.
        titles: one title per kernel, or ``None``.
        path: write the figure there (PNG, PDF or SVG by extension).
        size: frequency grid size (the kernel is zero-padded to ``size x size``).
        log: show ``20 log10`` of the magnitude (dB) instead of the magnitude.
        ncols: columns of the grid.
        cmap: a sequential colormap.
        suptitle: figure title.
        overwrite: allow replacing an existing ``path``.
        dpi: resolution.

    Returns:
        The matplotlib Figure.

    Example:
        >>> from cnnconv import kernels
        >>> fig = plot_frequency_response([kernels.gaussian(1.0, 7)], size=32)
        >>> fig.axes[0].images[0].get_array().shape
        (32, 32)
    """
    from cnnconv.inspect import frequency_response

    items = _to_list(kernels, "kernels")
    titles = _check_titles(titles, len(items))
    nrows, ncols = _grid_shape(len(items), ncols)
    fig = _figure(3.2 * ncols + 0.6, 2.8 * nrows + (0.4 if suptitle else 0.1))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(items):
            ax.set_axis_off()
            continue
        mag, freqs = frequency_response(items[i], size=max(size, max(items[i].shape)))
        values = 20.0 * torch.log10(mag.clamp_min(1e-12)) if log else mag
        step = float(freqs[1] - freqs[0])
        extent = (float(freqs[0]) - step / 2, float(freqs[-1]) + step / 2, float(freqs[-1]) + step / 2, float(freqs[0]) - step / 2)
        image = ax.imshow(values.cpu().numpy(), cmap=cmap, extent=extent, interpolation="nearest")
        ax.set_xlabel("fx (cycles/px)", fontsize=8)
        ax.set_ylabel("fy (cycles/px)", fontsize=8)
        ax.set_xticks([-0.5, 0.0, 0.5])
        ax.set_yticks([-0.5, 0.0, 0.5])
        ax.tick_params(labelsize=7)
        if titles[i]:
            ax.set_title(titles[i], fontsize=9)
        _colorbar(fig, image, ax, label="dB" if log else "|H|")
    _finish(fig, suptitle, hspace=0.55, wspace=0.75, left=0.08, bottom=0.08)
    if path is not None:
        save_figure(fig, path, overwrite=overwrite, dpi=dpi)
    return fig


def plot_side_by_side(
    learned,
    reference,
    titles=None,
    reference_titles=None,
    path=None,
    *,
    difference: bool = True,
    cmap: str = "RdBu_r",
    annotate: bool = True,
    suptitle: str | None = None,
    overwrite: bool = False,
    dpi: int = 120,
):
    """Learned kernels (top row) against references (middle row), with their difference.

    Each reference is least-squares scaled onto its learned kernel before the difference is
    taken (so a reference at another scale still compares); the difference row shares the
    learned kernel's colour scale, which makes a small residual look small.

    Args:
        learned: kernels as for :func:`plot_kernels`.
        reference: the same number of kernels, each the shape of its learned kernel.
        titles: titles of the learned kernels.
        reference_titles: titles of the references.
        path: write the figure there (PNG, PDF or SVG by extension).
        difference: add a third row ``learned - a * reference``.
        cmap: a diverging colormap.
        annotate: write the values on kernels up to 7x7.
        suptitle: figure title.
        overwrite: allow replacing an existing ``path``.
        dpi: resolution.

    Returns:
        The matplotlib Figure.

    Example:
        >>> from cnnconv import kernels
        >>> fig = plot_side_by_side([kernels.sobel_x() * 0.9], [kernels.sobel_x()])
        >>> len(fig.axes[0].images), len(fig.axes) >= 3
        (1, True)
    """
    learned = _to_list(learned, "learned")
    reference = _to_list(reference, "reference")
    if len(learned) != len(reference):
        raise ValueError(f"reference must have one kernel per learned kernel ({len(learned)}), got {len(reference)}")
    for i, (a, b) in enumerate(zip(learned, reference)):
        if a.shape != b.shape:
            raise ValueError(f"reference[{i}] must have the shape of learned[{i}] {tuple(a.shape)}, got {tuple(b.shape)}")
    titles = _check_titles(titles, len(learned))
    reference_titles = _check_titles(reference_titles, len(learned), "reference_titles")
    rows = 3 if difference else 2
    n = len(learned)
    fig = _figure(2.3 * n + 0.4, 2.1 * rows + (0.4 if suptitle else 0.1))
    axes = fig.subplots(rows, n, squeeze=False)
    for i in range(n):
        a, b = learned[i], reference[i]
        _draw_kernel(fig, axes[0, i], a, titles[i] or f"learned {i}", True, cmap, annotate)
        _draw_kernel(fig, axes[1, i], b, reference_titles[i] or f"reference {i}", True, cmap, annotate)
        if difference:
            denom = float((b * b).sum())
            scale = float((a * b).sum()) / denom if denom > 0 else 0.0
            diff = a - scale * b
            vmax = float(a.abs().max()) or 1.0
            image = axes[2, i].imshow(diff.numpy(), cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
            axes[2, i].set_xticks([])
            axes[2, i].set_yticks([])
            axes[2, i].set_title(f"difference (ref x {scale:.3g})", fontsize=9)
            _colorbar(fig, image, axes[2, i], [-vmax, 0.0, vmax])
    _finish(fig, suptitle)
    if path is not None:
        save_figure(fig, path, overwrite=overwrite, dpi=dpi)
    return fig
