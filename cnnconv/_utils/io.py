"""Atomic file writes: a file is either its old content or its new content, never a mix.

:func:`atomic_write` writes to a temporary file in the destination's folder, flushes and fsyncs
it, gives it the permissions of any file the user creates (``0o666`` less the umask), renames it
over the destination and fsyncs the folder, so a kill or a power cut at any moment leaves either
the old file or the new one. Temporary files are named ``.<name>.<random>.tmp``; one left by a
killed process is removed by :func:`remove_stale_temporaries` (run folders do so on resume).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "remove_stale_temporaries"]

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    # os.umask can only be read by setting it; put it back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms where folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on folders; the rename is done anyway
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike,
    data: bytes | bytearray | memoryview | str | Callable[[BinaryIO], None],
    *,
    encoding: str = "utf-8",
) -> Path:
    """Write ``data`` to ``path`` atomically and durably, replacing any existing file.

    Args:
        path: Destination file; its folder is created if missing.
        data: The new content: ``bytes`` (or a ``bytearray``/``memoryview``), ``str`` (encoded
            with ``encoding``), or a function ``write(fh)`` that writes into a binary file object
            (e.g. ``torch.save(obj, fh)``).
        encoding: Text encoding of a ``str``.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError: ``data`` is not bytes, str or callable.
        OSError: writing failed (e.g. disk full); the message names ``path``, the destination is
            left as it was and no temporary file remains.

    Example:
        >>> import tempfile, pathlib
        >>> p = atomic_write(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hi")
        >>> p.read_text()
        'hi'
    """
    if isinstance(data, str):
        data = data.encode(encoding)
    if not isinstance(data, (bytes, bytearray, memoryview)) and not callable(data):
        raise TypeError(f"data must be bytes, str or a function writing to a file, got {type(data).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            if exc.errno:
                raise OSError(exc.errno, f"could not write {path}: {os.strerror(exc.errno)}") from exc
            raise OSError(f"could not write {path}: {exc}") from exc
        raise
    _fsync_folder(path.parent)
    return path


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left under ``folder`` by writes that were killed midway.

    Only call this while no other process writes into ``folder`` (e.g. holding its run lock).

    Args:
        folder: Folder searched recursively for ``.<name>.<random>.tmp`` files.

    Returns:
        The files removed.
    """
    removed = []
    for tmp in Path(folder).rglob(f".*{TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
