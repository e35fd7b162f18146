"""Optional dependencies, imported on first use with an error that says how to install them.

Example:
    >>> require("math", "square roots").sqrt(4.0)
    2.0
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRA_HINT", "require"]

EXTRA_HINT = "pip install 'cnnconv[experiments]'"


def require(module: str, purpose: str, hint: str = EXTRA_HINT) -> ModuleType:
    """Import ``module``, or raise an ImportError saying what needs it and how to install it.

    Args:
        module: dotted module name, e.g. ``"scipy.sparse"``.
        purpose: what needs it, completing "... needs <package>", e.g. ``"boundary matching"``.
        hint: the install command to suggest.

    Raises:
        ImportError: ``module`` cannot be imported; the message names ``purpose`` and ``hint``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise ImportError(f"{purpose} needs {package}: {hint}") from exc
