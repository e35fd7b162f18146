"""The ``cnnconv`` parser and entry point: one ``add`` function per command in :data:`COMMANDS`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from cnnconv.cli.calibrate_cmd import add_calibrate
from cnnconv.cli.inspect_cmd import add_inspect
from cnnconv.cli.kernels_cmd import add_kernels
from cnnconv.cli.output import PROG, CommandError, safe

__all__ = ["COMMANDS", "build_parser", "main"]


# runner is imported when the parser is built, not with the package: ``python -m
# cnnconv.cli.runner`` must find it not yet imported.
def _add_run(subparsers: Any) -> None:
    from cnnconv.cli.runner import add_run_parser

    add_run_parser(subparsers)


def _add_bench(subparsers: Any) -> None:
    from cnnconv.cli.runner import add_bench_parser

    add_bench_parser(subparsers)


#: One function per command, each registering it on the subparsers (``cnnconv --help`` lists them).
COMMANDS: list[Callable] = [add_inspect, add_kernels, add_calibrate, _add_run, _add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    import torch

    from cnnconv._utils.version import installed_version

    version = installed_version() or "(not installed)"
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="cnnconv: learnable and fixed convolutions for PyTorch.",
        epilog="Run 'cnnconv COMMAND --help' for a command's options, examples and expected duration.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version} (torch {torch.__version__})")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for add in COMMANDS:
        add(subparsers)
    return parser


def _error(message: str) -> int:
    print(f"{PROG}: error: {safe(message)}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the ``cnnconv`` command; returns the exit status.

    Errors (missing file, refused file, no convolutions, bad arguments, unreadable or unwritable
    files, out of memory) are printed as one line ``cnnconv: error: ...`` on stderr with exit
    status 2, without a traceback; control characters in the message are escaped.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from cnnconv.analysis import InspectError

    try:
        return int(args.func(args) or 0)
    except (CommandError, InspectError) as exc:
        return _error(str(exc))
    except FileNotFoundError as exc:
        return _error(str(exc))
    except ImportError as exc:
        return _error(str(exc))
    except BrokenPipeError:  # e.g. `cnnconv inspect ... | head`
        return 0
    except (OSError, ValueError, TypeError, RuntimeError, MemoryError) as exc:
        return _error(f"{type(exc).__name__}: {exc}")
