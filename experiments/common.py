"""Helpers shared by the experiments: markdown reports, figures and CSV files in a run folder.

Everything here writes through a temporary file that is fsynced and renamed into place, so a
file is whole or absent even if the run is killed while writing it. These files are derived from
the run's checkpointed state, so a resumed run writes them again (a finished run is left alone:
``--resume`` stops at its ``report.md``).

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> rep = Report("Demo")
    >>> rep.table([{"k": 3, "error": 1.5e-4}], ["k", "error"])
    >>> rep.write(out / "report.md").read_text().splitlines()[0]
    '# Demo'
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from cnnconv._utils.io import atomic_write
from cnnconv.training import atomic_write_text

__all__ = ["config_file", "fmt", "markdown_table", "Report", "write_csv", "new_figure", "save_figure",
           "line_plot", "optional", "require"]


def config_file(name: str) -> Path:
    """The shipped default config ``<name>.yaml`` of an experiment.

    In a clone the configs are the repository's ``configs/`` folder; an installed package ships
    that same folder as ``cnnconv.experiments.configs``.

    Raises:
        FileNotFoundError: no such config.
    """
    if __package__.startswith("cnnconv."):
        from importlib.resources import files

        path = Path(str(files(f"{__package__}.configs") / f"{name}.yaml"))
    else:
        path = Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped config named {name!r} (looked for {path})")
    return path


def require(module: str):
    """Import an optional package, or fail with the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the experiments need {module}: pip install 'cnnconv[experiments]'"
                          ) from exc


def optional(module: str, attribute: str | None = None):
    """An optional package (or one of its attributes), or ``None`` when it is not installed.

    Example:
        >>> optional("math", "sqrt")(4.0), optional("no_such_package_here")
        (2.0, None)
    """
    import importlib

    try:
        found = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(found, attribute, None) if attribute else found


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` significant digits (scientific when small/large).

    Example:
        >>> fmt(0.000123456), fmt(12.5), fmt("x"), fmt(True)
        ('1.235e-04', '12.5', 'x', 'yes')
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]],
                   cell: Callable[[Any], str] = str) -> str:
    """A markdown table: a header row, the separator, then one line per row of cells.

    Args:
        header: Column titles.
        rows: Rows of cell values, each written with ``cell``.
        cell: Formats one value (default ``str``).

    Example:
        >>> print(markdown_table(["k", "error"], [[3, 0.5]]))
        | k | error |
        |---|---|
        | 3 | 0.5 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]],
              columns: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV (atomically, replacing an existing file).

    Example:
        >>> import tempfile, pathlib
        >>> p = write_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", [{"a": 1, "b": 2.5}])
        >>> p.read_text().splitlines()
        ['a,b', '1,2.5']
    """
    path = Path(path)
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    return atomic_write_text(path, buf.getvalue())


def new_figure(width: float, height: float):
    """A matplotlib Figure (constrained layout) on an Agg canvas, outside pyplot's state."""
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically (replacing an existing file)."""
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))


def line_plot(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], path, *,
              xlabel: str, ylabel: str, title: str = "", logy: bool = False,
              hlines: Mapping[str, float] | None = None):
    """Curves ``{label: (x, y)}`` on one axis, written to ``path`` as a PNG.

    Every curve gets its own (colour, line style) pair, also beyond ten curves; the legend, which
    also names the reference lines, sits outside the axes so that it covers no curve.

    Args:
        series: Label to ``(x values, y values)``.
        path: PNG destination inside the run folder.
        xlabel: x-axis label.
        ylabel: y-axis label.
        title: Axis title.
        logy: Log-scale y axis (one labelled tick per decade).
        hlines: Labelled horizontal reference lines (e.g. an acceptance threshold).

    Returns:
        The figure.
    """
    from matplotlib.ticker import LogLocator, NullFormatter

    fig = new_figure(8.0, 4.2)
    ax = fig.add_subplot()
    for i, (label, (x, y)) in enumerate(series.items()):
        ax.plot(list(x), list(y), label=label, lw=1.5, color=f"C{i % 10}",
                ls=("-", "--", "-.", ":")[i // 10 % 4])
    for i, (label, level) in enumerate((hlines or {}).items()):
        ax.axhline(level, ls=(0, (4, 2 + 2 * i)), lw=1, color="gray", label=label)
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=30))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if series or hlines:
        fig.legend(loc="outside right upper", fontsize=8)
    save_figure(fig, path)
    return fig


class Report:
    """A markdown report assembled section by section, then written once.

    Args:
        title: The ``#`` heading.

    Example:
        >>> rep = Report("Kernel recovery")
        >>> rep.section("Results")
        >>> rep.table([{"k": 3, "err": 0.5}], ["k", "err"], headers=["kernel", "error"])
        >>> print(rep.text().split("\\n", 2)[2])
        ## Results
        <BLANKLINE>
        | kernel | error |
        |---|---|
        | 3 | 0.5 |
        <BLANKLINE>
    """

    def __init__(self, title: str):
        self._parts: list[str] = [f"# {title}\n"]

    def section(self, heading: str, level: int = 2) -> None:
        self._parts.append(f"{'#' * level} {heading}\n")

    def paragraph(self, text: str) -> None:
        self._parts.append(text.strip() + "\n")

    def bullets(self, items: Iterable[str]) -> None:
        self._parts.append("".join(f"- {item}\n" for item in items))

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *,
              headers: Sequence[str] | None = None, digits: int = 4) -> None:
        """A markdown table of ``rows`` (dicts) restricted to ``columns``."""
        headers = list(headers or columns)
        if len(headers) != len(columns):
            raise ValueError(f"headers must have {len(columns)} entries, got {len(headers)}")
        cells = [[row.get(c, "") for c in columns] for row in rows]
        self._parts.append(markdown_table(headers, cells, lambda v: fmt(v, digits)) + "\n")

    def image(self, path: str | os.PathLike, caption: str, run_dir: str | os.PathLike) -> None:
        """Embed a PNG by its path relative to the run folder."""
        rel = os.path.relpath(Path(path), Path(run_dir))
        self._parts.append(f"![{caption}]({rel})\n\n*{caption}*\n")

    def text(self) -> str:
        return "\n".join(self._parts)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report (atomically, replacing an existing file)."""
        return atomic_write_text(path, self.text())
