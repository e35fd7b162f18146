"""The package's version, defined once: ``[project] version`` in ``pyproject.toml``."""

from __future__ import annotations

import importlib.metadata

__all__ = ["installed_version"]


def installed_version() -> str | None:
    """The installed cnnconv's version, or None when the package is not installed (a bare checkout)."""
    try:
        return importlib.metadata.version("cnnconv")
    except importlib.metadata.PackageNotFoundError:
        return None
