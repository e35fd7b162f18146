"""Edge evaluation: synthetic scenes with exact boundaries, real-image datasets and BSDS metrics.

:mod:`cnnconv.evaluation.data` renders scenes (:mod:`~cnnconv.evaluation.scenes`, built on
:mod:`~cnnconv.evaluation.shapes` and :mod:`~cnnconv.evaluation.render`) and loads photographs
(:mod:`~cnnconv.evaluation.photos`); :mod:`cnnconv.evaluation.datasets` reads images with
boundary ground truth; :mod:`cnnconv.evaluation.metrics` scores boundary maps with the BSDS
protocol (:mod:`~cnnconv.evaluation.bsds` on :mod:`~cnnconv.evaluation.thinning` and
:mod:`~cnnconv.evaluation.matching`), edge directions (:mod:`~cnnconv.evaluation.orientation`)
and differences over seeds (:mod:`~cnnconv.evaluation.stats`). This layer sits above the layers
and imports only downward.

The public names of ``data``, ``datasets`` and ``metrics`` are available here too, imported on
first use, so ``import cnnconv.evaluation`` loads neither numpy nor any optional package.

Example:
    >>> from cnnconv import evaluation
    >>> evaluation.evaluate_boundaries is evaluation.metrics.evaluate_boundaries
    True
"""

from __future__ import annotations

import importlib
from typing import Any

# the modules whose public names (their ``__all__``) are re-exported here, imported on first use
_MODULES = ("data", "datasets", "metrics")


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{name}")


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return [n for m in _MODULES for n in _module(m).__all__]
    if not name.startswith("_"):
        for m in _MODULES:
            module = _module(m)
            if name in module.__all__:
                return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__getattr__("__all__")))
