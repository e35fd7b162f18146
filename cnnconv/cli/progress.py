"""Progress of a long command on stderr: a tqdm bar on a terminal, else a line every
:data:`PROGRESS_EVERY` seconds."""

from __future__ import annotations

import sys
import threading
import time

from cnnconv.cli.output import PROG

__all__ = ["PROGRESS_EVERY", "Progress"]

PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


class Progress:
    """Progress of a long command on stderr, as a context manager.

    On a terminal with tqdm installed: a bar (cleared at the end). Otherwise a background thread
    prints ``cnnconv: LABEL: [done/total UNIT, ]N s elapsed[ (NOTE)]`` every
    :data:`PROGRESS_EVERY` seconds, so a run that takes long is never silent.

    Args:
        label: what is being done.
        total: number of steps, or ``None`` when unknown (only the elapsed time is shown).
        unit: name of the steps.
        note: appended to each line, e.g. the expected duration.
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "steps", note: str = ""):
        self.label, self.total, self.unit, self.note = label, total, unit, note
        self.done = 0
        self._bar = None
        self._stop = threading.Event()
        self._start = time.monotonic()

    def __enter__(self):
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=self.total,
                    desc=self._description(),
                    unit=" " + self.unit,
                    file=sys.stderr,
                    leave=False,
                    bar_format=None if self.total else "{desc}: {elapsed} elapsed",
                )
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def stage(self, label: str, total: int | None = None) -> None:
        """Start the next stage of the work: a new label and step count."""
        self.label, self.total, self.done = label, total, 0
        if self._bar is not None:
            self._bar.set_description(self._description(), refresh=False)
            self._bar.bar_format = None if total else "{desc}: {elapsed} elapsed"
            self._bar.reset(total=total)

    def _description(self) -> str:
        return f"{self.label} ({self.note})" if self.note else self.label

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def _beat(self) -> None:
        while not self._stop.wait(0.5 if self._bar is not None else PROGRESS_EVERY):
            if self._bar is not None:
                self._bar.refresh()  # keeps the elapsed time moving between steps
                continue
            count = f"{self.done}/{self.total} {self.unit}, " if self.total else ""
            note = f" ({self.note})" if self.note else ""
            elapsed = time.monotonic() - self._start
            print(f"{PROG}: {self.label}: {count}{elapsed:.0f} s elapsed{note}", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._bar is not None:
            self._bar.close()
