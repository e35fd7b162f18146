"""Progress: tqdm bars on a terminal, plain lines at a steady rate elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from cnnconv._utils.optional import require

__all__ = ["ProgressMeter", "progress"]


def _tqdm() -> Callable[..., Any] | None:
    """tqdm's bar (``tqdm.auto.tqdm``), or ``None`` when tqdm is not installed."""
    try:
        return require("tqdm.auto", "progress bars").tqdm
    except ImportError:
        return None


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    disable: bool | None = None,
    initial: int = 0,
):
    """A tqdm progress bar, shown only on an interactive terminal (stderr is a TTY).

    Falls back to the bare iterable when tqdm is missing or the bar is disabled.
    """
    if disable is None:
        disable = not sys.stderr.isatty()
    if iterable is None:
        iterable = range(initial, total or 0)
    tqdm = None if disable else _tqdm()
    if tqdm is None:
        return iterable
    return tqdm(iterable, total=total, desc=desc, initial=initial, dynamic_ncols=True, leave=False)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressMeter:
    """Progress of a whole run: one bar on a terminal, else a plain line at a steady rate.

    Without a terminal (``nohup``, CI, ``| tee``) a line ``desc: done/total (pct), elapsed
    H:MM:SS, ETA H:MM:SS`` goes to ``stream`` every ``every`` seconds and when it closes. The
    ETA comes from the rate of the work done in this process (work skipped on a resume does not
    count).

    Args:
        total: Units of work in the run.
        desc: Label.
        every: Seconds between lines without a terminal.
        disable: Show nothing.
        stream: Where to write (default ``sys.stderr``).

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> meter = ProgressMeter(4, "demo", every=0.0, stream=out)
        >>> meter.update(2)
        >>> out.getvalue().split(",")[0]
        'demo: 2/4 steps (50%)'
    """

    def __init__(self, total: int, desc: str, *, every: float = 20.0, disable: bool = False, stream=None):
        if not every >= 0:
            raise ValueError(f"every must be a non-negative number of seconds, got {every!r}")
        self.total, self.desc, self.every, self.disable = int(total), desc, float(every), disable
        self.stream = stream if stream is not None else sys.stderr
        self.done = self._skipped = 0
        self._printed = -1  # the count of the last line printed
        self._t0 = self._last = time.monotonic()
        self._bar = None
        tqdm = _tqdm() if not disable and self.stream.isatty() else None
        if tqdm is not None:
            self._bar = tqdm(total=self.total, desc=desc, file=self.stream, dynamic_ncols=True)

    def skip(self, n: int) -> None:
        """Count ``n`` units done earlier (a resumed run's finished work)."""
        self.done += n
        self._skipped += n
        if self._bar is not None:
            self._bar.update(n)

    def update(self, n: int = 1) -> None:
        """Count ``n`` units done now."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.disable and time.monotonic() - self._last >= self.every:
            self._print()

    def line(self) -> str:
        """The progress line."""
        elapsed = time.monotonic() - self._t0
        fresh = self.done - self._skipped
        eta = _clock(elapsed / fresh * max(self.total - self.done, 0)) if fresh > 0 else "unknown"
        share = f"{self.done / self.total:.0%}" if self.total else "-"
        return f"{self.desc}: {self.done}/{self.total} steps ({share}), elapsed {_clock(elapsed)}, ETA {eta}"

    def _print(self) -> None:
        self._last, self._printed = time.monotonic(), self.done
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif not self.disable and self._printed != self.done:
            self._print()
