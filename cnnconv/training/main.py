"""The command line of an experiment: config, run folder, lock, record and the run."""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnconv._utils.io import remove_stale_temporaries
from cnnconv._utils.version import installed_version
from cnnconv.training._yaml import dump_yaml, read_config_file
from cnnconv.training.checkpoints import CheckpointError
from cnnconv.training.config import config_help, config_to_dict, load_config
from cnnconv.training.ddp import cleanup_distributed, setup_distributed
from cnnconv.training.metrics_log import _summary_writer_class
from cnnconv.training.run import Run
from cnnconv.training.rundir import RunFolderInUse, RunLock, atomic_write_text, claim_run_dir

__all__ = ["experiment_main", "run_record"]


def _resume_dir(path: str) -> Path:
    p = Path(path)
    if p.is_file() and p.suffix == ".pt":
        p = p.parent.parent
    if not (p / "config.yaml").is_file():
        raise FileNotFoundError(f"--resume {path}: not a run folder (no config.yaml in {p})")
    return p


def _git_commit(folder: Path) -> str | None:
    """The commit checked out in the clone holding ``folder`` (``+dirty`` when edited), or None."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def run_record(argv: Sequence[str], device: torch.device, source: str | os.PathLike | None) -> dict:
    """What a run folder records about how it was made (written to ``run_info.yaml``).

    Args:
        argv: The command line arguments.
        device: The training device.
        source: A file of the experiment; its clone's git commit is recorded (None when
            installed, or when ``source`` is None: an experiment defined outside a file).

    Returns:
        ``command`` (this process's), ``arguments`` (the experiment's), ``versions`` (python,
        torch, numpy, cnnconv), ``git_commit``, ``device``, ``threads``, ``started`` (UTC).
    """
    import platform

    return {
        "command": [sys.executable, *sys.argv],
        "arguments": list(argv),
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "numpy": np.__version__,
            "cnnconv": installed_version(),
        },
        "git_commit": None if source is None else _git_commit(Path(source).resolve().parent),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def experiment_main(
    name: str,
    config_cls: type,
    run_fn: Callable[[Any, Run], Any],
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    finished_marker: str | None = "report.md",
) -> Path:
    """The standard command line of a cnnconv experiment.

    Options: ``--config FILE``, ``--set key=value`` (repeatable), ``--out ROOT`` (default
    ``runs``), ``--name RUN``, ``--overwrite``, ``--resume RUN_DIR_OR_CHECKPOINT``,
    ``--device auto|cpu|cuda``, ``--tensorboard``, ``--quiet``. The config and device are
    validated before anything else happens (an error is one line on stderr, exit status 2, and
    no run folder is made); then the run folder is made and locked (rank 0, see
    :class:`RunLock`), the resolved config written to ``config.yaml``, seeds set from
    ``cfg.seed`` and ``run_fn(cfg, run)`` called. Under ``torchrun`` every rank runs ``run_fn``
    and only rank 0 writes.

    ``--resume`` locks the folder, deletes temporary files left by a killed write and runs
    ``run_fn`` again: finished phases return at once from their checkpoints, and every file
    derived from them (CSV tables, figures, the report) is written again. An unusable
    checkpoint (see :func:`load_checkpoint`) is a one-line error naming the file.

    Args:
        name: Experiment name (folder under ``--out``).
        config_cls: Config dataclass; every field must have a default.
        run_fn: ``run_fn(cfg, run)``.
        argv: Arguments (default ``sys.argv[1:]``).
        description: ``--help`` text (default: ``run_fn``'s module docstring).
        finished_marker: File whose presence marks a finished run: ``--resume`` on such a run
            reports it and returns without touching it. ``None`` for experiments that handle
            resuming a finished run themselves.

    Returns:
        The run folder.
    """
    if description is None:
        module = sys.modules.get(getattr(run_fn, "__module__", ""), None)
        description = (module.__doc__ or "").strip() if module else ""
    epilog = "config fields (set with --set key=value):\n" + "\n".join(config_help(config_cls))
    package = getattr(run_fn, "__module__", "").rpartition(".")[0]
    prog = f"cnnconv run {name}" if package.startswith("cnnconv.") else f"python -m {package}.{name}"
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: built-in)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field; repeatable",
    )
    parser.add_argument(
        "--out", default="runs", metavar="ROOT", help=f"runs root; the run goes to ROOT/{name}/RUN (default: runs)"
    )
    parser.add_argument("--name", metavar="RUN", help="run folder name (default: a timestamp)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same --name")
    parser.add_argument("--resume", metavar="PATH", help="continue the run in this folder (or from this checkpoint)")
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="training device (default: CUDA when present, else CPU)",
    )
    parser.add_argument(
        "--tensorboard", action="store_true", help="also log scalars to RUN/tensorboard (needs tensorboard)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--progress-every",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (default: 20)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not args.progress_every >= 0:
        parser.error(f"--progress-every must be >= 0 seconds, got {args.progress_every}")
    if args.resume:
        if args.name or args.overwrite:
            parser.error("--resume continues an existing run folder; drop --name/--overwrite")
        if args.config or args.overrides:
            parser.error("--resume continues with the run's own config.yaml; drop --config/--set")

    def fail(message: Any) -> typing.NoReturn:
        print(f"{parser.prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
        raise SystemExit(2)

    try:
        if args.resume:
            run_dir = _resume_dir(args.resume)
            cfg = load_config(config_cls, run_dir / "config.yaml")
            if finished_marker and (run_dir / finished_marker).is_file():
                # A finished run has nothing to continue; tidy what a kill may have left.
                if int(os.environ.get("RANK", "0")) == 0:
                    tidy_lock = RunLock(run_dir)
                    remove_stale_temporaries(run_dir)
                    tidy_lock.release()
                print(
                    f"{name}: {run_dir} already finished; its report is {run_dir / finished_marker}. Nothing to resume."
                )
                return run_dir
        else:
            cfg = load_config(config_cls, args.config, args.overrides)
    except (ValueError, TypeError, FileNotFoundError, RunFolderInUse) as exc:
        fail(exc)
    if args.tensorboard:
        try:
            _summary_writer_class()
        except ImportError as exc:
            fail(exc)

    try:
        info, device = setup_distributed(args.device)
    except ValueError as exc:
        fail(exc)
    lock: RunLock | None = None
    threads = torch.get_num_threads()
    try:
        run_dir_or_error: Any = None
        if info.is_main:
            try:
                if args.resume:
                    lock = RunLock(run_dir)
                    remove_stale_temporaries(run_dir)
                else:
                    run_dir, lock = claim_run_dir(args.out, name, args.name, overwrite=args.overwrite)
                    atomic_write_text(run_dir / "config.yaml", dump_yaml(config_to_dict(cfg)))
                run_dir_or_error = run_dir
            except (FileExistsError, ValueError, RunFolderInUse) as exc:
                run_dir_or_error = str(exc)
        if info.distributed:
            import torch.distributed as dist

            box = [run_dir_or_error]
            dist.broadcast_object_list(box, src=0)
            run_dir_or_error = box[0]
        if isinstance(run_dir_or_error, str):
            fail(run_dir_or_error)
        run_dir = Path(run_dir_or_error)
        if getattr(cfg, "num_threads", 0) and device.type == "cpu":
            torch.set_num_threads(cfg.num_threads)  # put back when the run ends
        if info.is_main:
            record = run_record(argv, device, getattr(sys.modules[run_fn.__module__], "__file__", None))
            info_path = run_dir / "run_info.yaml"
            # A resumed run keeps how it was started and adds how it was resumed.
            runs = read_config_file(info_path).get("runs", []) if args.resume and info_path.is_file() else []
            atomic_write_text(info_path, dump_yaml({"runs": [*runs, record]}))
        seed = int(getattr(cfg, "seed", 0))
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        run = Run(
            cfg,
            run_dir,
            device,
            dist=info,
            resume=bool(args.resume),
            quiet=args.quiet,
            tensorboard=args.tensorboard,
            progress_every=args.progress_every,
        )
        try:
            run_fn(cfg, run)
        except CheckpointError as exc:
            fail(f"{exc}. Delete it to redo that phase from its start, or restore a good copy.")
        finally:
            run.close()
        if info.is_main:
            report = run_dir / "report.md"
            where = report if report.exists() else run_dir
            print(f"{name}: results in {where}")
        return run_dir
    finally:
        if lock is not None:
            lock.release()
        torch.set_num_threads(threads)
        cleanup_distributed()
