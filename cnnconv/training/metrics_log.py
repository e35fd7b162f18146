"""Metrics logging: the long-format ``metrics.csv`` of a run, and TensorBoard."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import torch

from cnnconv._utils.io import atomic_write
from cnnconv._utils.optional import require

__all__ = ["MetricsLogger", "read_metrics"]


class MetricsLogger:
    """Append-only long-format CSV (``tag,step,metric,value``), flushed after every row.

    Example:
        >>> import tempfile, pathlib
        >>> log = MetricsLogger(pathlib.Path(tempfile.mkdtemp()) / "metrics.csv")
        >>> log.log("train", 1, loss=0.5)
        >>> read_metrics(log.path)["train"]["loss"]
        ([1], [0.5])
    """

    FIELDS = ("tag", "step", "metric", "value")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        cut = False  # a last line cut short by a crash: start a fresh line after it
        if not new:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                cut = fh.read(1) != b"\n"
        self._open()
        if cut:
            self._fh.write("\n")
        if new:
            self._writer.writerow(self.FIELDS)
        self._fh.flush()

    def log(self, tag: str, step: int, **metrics: float) -> None:
        for name, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self._writer.writerow((tag, int(step), name, repr(float(value))))
        self._fh.flush()

    def truncate(self, tag: str, after_step: int) -> None:
        """Drop rows of ``tag`` with a step beyond ``after_step``, and unreadable rows (a line
        cut short by a crash), rewriting the file atomically."""
        self._fh.close()
        with open(self.path, newline="", errors="replace") as fh:
            rows = [_metric_row(r) for r in csv.reader(fh)][1:]
        keep = [r for r in rows if r is not None and not (r[0] == tag and r[1] > after_step)]
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(self.FIELDS)
        writer.writerows((t, s, m, repr(v)) for t, s, m, v in keep)
        atomic_write(self.path, buf.getvalue())
        self._open()

    def _open(self) -> None:
        """Open the file for appending; the handle stays open until :meth:`close` or :meth:`truncate`."""
        # A context manager cannot hold a handle that outlives this call: close() closes it.
        self._fh = open(self.path, "a", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._fh)

    def sync(self) -> None:
        """Flush the rows written so far to disk (``fsync``)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _metric_row(row: list[str]) -> tuple[str, int, str, float] | None:
    """``(tag, step, metric, value)`` from a CSV row, or ``None`` if it is not one."""
    if len(row) != 4:
        return None
    try:
        return row[0], int(row[1]), row[2], float(row[3])
    except ValueError:
        return None


def read_metrics(path: str | os.PathLike) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """Read a ``metrics.csv`` into ``{tag: {metric: (steps, values)}}``, sorted by step.

    Unreadable rows (e.g. a line cut short by a crash) are skipped.
    """
    out: dict[str, dict[str, list]] = {}
    with open(path, newline="", errors="replace") as fh:
        for row in list(csv.reader(fh))[1:]:
            parsed = _metric_row(row)
            if parsed is not None:
                tag, step, metric, value = parsed
                out.setdefault(tag, {}).setdefault(metric, []).append((step, value))
    return {
        tag: {m: ([s for s, _ in sorted(v)], [x for _, x in sorted(v)]) for m, v in metrics.items()}
        for tag, metrics in out.items()
    }


def _summary_writer_class() -> type:
    """TensorBoard's ``SummaryWriter``.

    Raises:
        ImportError: tensorboard is not installed; the message says how to install it.
    """
    require("tensorboard", "--tensorboard", hint="pip install tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter
