"""Writing figures to files: the format from the extension, atomic writes, no silent overwrite.

A figure is written as PNG, PDF or SVG after the path's extension (:data:`FORMATS`; any other
extension is refused) with :func:`cnnconv._utils.io.atomic_write`: to a temporary file in the
same folder, then renamed into place, with the permissions the umask gives a new file. An
existing file is never replaced unless ``overwrite=True``. The names are re-exported by
:mod:`cnnconv.analysis.plotting`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO

from cnnconv._utils.io import TMP_SUFFIX, atomic_write

__all__ = ["FORMATS", "figure_format", "save_figure"]

FORMATS = ("png", "pdf", "svg")  # file formats written, chosen by the path's extension


def figure_format(path: str | os.PathLike) -> str:
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


def save_figure(fig: Any, path: str | os.PathLike, *, overwrite: bool = False, dpi: int = 120) -> str:
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
        >>> from cnnconv.analysis.plotting import plot_kernels
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
    refused = f"refusing to overwrite existing file {path!r} (pass overwrite=True)"
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(refused)

    def write(fh: BinaryIO) -> None:
        fig.savefig(fh, format=fmt, dpi=dpi)

    if overwrite:
        atomic_write(path, write)
        return path
    # Written in full under a temporary name (one remove_stale_temporaries recognises), then
    # linked: link() fails if the destination appeared meanwhile, so no race can overwrite a file.
    tmp = atomic_write(Path(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}{TMP_SUFFIX}"), write)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(refused) from None
        except OSError:  # filesystems without hard links
            if os.path.exists(path):
                raise FileExistsError(refused) from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
