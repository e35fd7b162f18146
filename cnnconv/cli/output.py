"""What every command shares: errors, safe printing, number formats, JSON and --plot options."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PROG = "cnnconv"
MAX_VALUES_SIDE = 7  # kernel values are printed for kernels up to 7x7


class CommandError(Exception):
    """An error reported as ``cnnconv: error: ...`` with exit status 2."""


def abspath(path) -> str:
    """``path`` as printed by every command: absolute, control characters escaped."""
    return safe(os.path.abspath(os.fspath(path)))


def dump_json(data, indent) -> None:
    """Print ``data`` (made JSON-safe) on one line, or pretty with ``indent`` spaces."""
    json.dump(clean(data), sys.stdout, indent=indent, default=str)
    sys.stdout.write("\n")


def add_json_options(p, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON (one line)")
    p.add_argument("--indent", type=int, metavar="N", help="with --json, pretty-print with N spaces")


def check_indent(indent) -> None:
    if indent is not None and not 0 <= indent <= 8:
        raise CommandError(f"--indent must be between 0 and 8, got {indent}")


def safe(text) -> str:
    """``text`` with every non-printable character escaped as in ``repr`` (``\\x1b``, ``\\n``...):
    names read from a file cannot move the cursor, recolour or retitle the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"
    return str(value)


def clean(value):
    """Make a value JSON-safe (NaN and inf become None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def value_rows(k) -> list[str]:
    # Values that round to zero are printed as 0.0000, not -0.0000.
    values = [[0.0 if abs(v) < 5e-5 else v for v in row] for row in k.detach().cpu().double().tolist()]
    width = max(len(f"{v:.4f}") for row in values for v in row)
    return ["  ".join(f"{v:>{width}.4f}" for v in row) for row in values]


def check_plot_path(path: str, overwrite: bool) -> None:
    from cnnconv.analysis.plotting import figure_format

    try:
        figure_format(path)
    except ValueError as exc:
        raise CommandError(f"--plot: {exc}") from None
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise CommandError(f"--plot is a directory, not a file: {path!r}")
    if os.path.lexists(path) and not overwrite:
        raise CommandError(f"refusing to overwrite existing file {path!r} (pass --overwrite)")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise CommandError(f"folder of --plot does not exist: {folder!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"folder of --plot is not writable: {folder!r}")


def add_command(subparsers: Any, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """Register command ``name``: its help line, description, and an epilog of examples kept as
    written."""
    return subparsers.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_plot_options(p: argparse.ArgumentParser, help: str) -> None:
    """``--plot FILE`` (with ``help``) and ``--overwrite``."""
    p.add_argument("--plot", metavar="FILE", help=help)
    p.add_argument("--overwrite", action="store_true", help="allow --plot to replace an existing file")


@contextmanager
def writing_plot(path: str) -> Iterator[None]:
    """Report a failure to write ``--plot`` as a :class:`CommandError`."""
    try:
        yield
    except OSError as exc:
        raise CommandError(f"cannot write --plot {abspath(path)!r}: {exc.strerror or exc}") from None
