"""Run folders: made without reuse, locked while a run runs, written atomically."""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

from cnnconv._utils.io import atomic_write

__all__ = ["RunFolderInUse", "RunLock", "atomic_write_text", "claim_run_dir", "make_run_dir"]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, fsync it and rename it into place.

    See :func:`cnnconv._utils.io.atomic_write` (permissions follow the umask; a failure such as a
    full disk raises an ``OSError`` naming ``path`` and leaves the old file).

    Example:
        >>> import tempfile, pathlib
        >>> p = atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hi")
        >>> p.read_text()
        'hi'
    """
    return atomic_write(path, text)


class RunFolderInUse(RuntimeError):
    """Another process holds the run folder's lock."""


class RunLock:
    """An exclusive, non-blocking ``fcntl.flock`` on ``<run folder>/.lock``, held while a run runs.

    The lock file holds the owner's process id, named in the error a second process gets. The
    operating system drops the lock when its process dies (even by SIGKILL), so a killed run
    never leaves its folder locked. :meth:`release` deletes the lock file; a process that
    locked a file just deleted notices (the path no longer names its file) and tries again.

    Args:
        folder: The run folder (must exist).

    Raises:
        RunFolderInUse: another process holds the lock.

    Example:
        >>> import tempfile
        >>> lock = RunLock(tempfile.mkdtemp())
        >>> lock.release()
    """

    NAME = ".lock"

    def __init__(self, folder: str | os.PathLike):
        import fcntl

        self.path = Path(folder) / self.NAME
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderInUse(f"run folder {self.path.parent} is in use by process {owner}") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # released and deleted by its owner meanwhile: lock the new file
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd: int | None = fd

    def release(self) -> None:
        """Delete the lock file and unlock (idempotent)."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _clear_run_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.name == RunLock.NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def claim_run_dir(
    root: str | os.PathLike, experiment: str, run_name: str | None = None, *, overwrite: bool = False
) -> tuple[Path, RunLock]:
    """Like :func:`make_run_dir`, but return the folder locked (see :class:`RunLock`).

    With ``overwrite``, an existing folder is emptied only once its lock is held, so a running
    run (or a second ``--overwrite`` of the same name) is never deleted under it.

    Returns:
        ``(folder, lock)``; call ``lock.release()`` when the run ends.

    Raises:
        FileExistsError: ``run_name`` exists and ``overwrite`` is false, or it is not a run folder.
        RunFolderInUse: the folder to overwrite is in use.
        ValueError: ``run_name`` is not a plain folder name.
    """
    base = Path(root) / experiment
    base.mkdir(parents=True, exist_ok=True)
    if run_name is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for i in range(1000):
            path = base / (stamp if i == 0 else f"{stamp}-{i}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path, RunLock(path)
        raise FileExistsError(f"could not find a free run folder name under {base}")
    if not run_name or "/" in run_name or run_name in (".", ".."):
        raise ValueError(f"run name must be a plain folder name, got {run_name!r}")
    path = base / run_name
    try:
        path.mkdir()
        return path, RunLock(path)
    except FileExistsError:
        if not overwrite:
            raise FileExistsError(
                f"run folder {path} exists; pick another --name, or pass --overwrite to replace it"
            ) from None
    if any(p.name != RunLock.NAME for p in path.iterdir()) and not (path / "config.yaml").is_file():
        raise FileExistsError(f"refusing to overwrite {path}: it is not a cnnconv run folder")
    lock = RunLock(path)
    try:
        _clear_run_dir(path)
    except BaseException:
        lock.release()
        raise
    return path, lock


def make_run_dir(
    root: str | os.PathLike, experiment: str, run_name: str | None = None, *, overwrite: bool = False
) -> Path:
    """Create ``root/experiment/run_name`` (default: a timestamp), never reusing a folder.

    Args:
        root: Runs root, e.g. ``runs``.
        experiment: Experiment name.
        run_name: Folder name; a timestamp ``YYYYmmdd-HHMMSS`` (with ``-1``, ``-2`` ... suffixes
            on collision) when ``None``.
        overwrite: Replace an existing ``run_name`` folder (only a cnnconv run folder, i.e. one
            holding ``config.yaml``, or an empty one).

    Returns:
        The new, empty folder.

    Raises:
        FileExistsError: ``run_name`` exists and ``overwrite`` is false.
        RunFolderInUse: the folder to overwrite is in use by a running run.
    """
    path, lock = claim_run_dir(root, experiment, run_name, overwrite=overwrite)
    lock.release()
    return path
