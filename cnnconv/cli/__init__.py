"""The ``cnnconv`` command line (also ``python -m cnnconv``).

Commands are registered by one small function each (``add_<command>``, one module per command:
:mod:`.inspect_cmd`, :mod:`.kernels_cmd`, :mod:`.calibrate_cmd`, :mod:`.runner` for ``run`` and
``bench``) listed in ``COMMANDS`` (:mod:`.commands`); each sets a handler ``func(args) -> int``.
``cnnconv --help`` lists them all. What the commands share (errors, safe printing, JSON and
``--plot`` options) is in :mod:`.output`, progress lines in :mod:`.progress`.

Paths are printed absolute. Long runs (``calibrate``, ``inspect`` of a large checkpoint) show
progress on stderr: a tqdm bar on a terminal when tqdm is installed, else a line with the
elapsed time every :data:`~cnnconv.cli.progress.PROGRESS_EVERY` seconds.

Example:
    cnnconv inspect model.pt --layer features.0 --top 3
    cnnconv inspect model.pt --json > kernels.json
    cnnconv kernels sobel_x gaussian:sigma=1.5,size=7 --plot bank.png
    cnnconv calibrate --quick
"""

from __future__ import annotations

from cnnconv.cli.commands import COMMANDS, build_parser, main
from cnnconv.cli.output import PROG, CommandError

__all__ = ["COMMANDS", "PROG", "CommandError", "build_parser", "main"]
