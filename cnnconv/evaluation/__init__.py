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

# the public names of each module of this package re-exported here, imported on first use
_EXPORTS = {
    "data": (
        "IMAGE_EXTENSIONS",
        "PHOTOGRAPHS",
        "ImageFolderDataset",
        "PhotoCrops",
        "SceneOptions",
        "SyntheticScenes",
        "bundled_photographs",
        "make_dead_leaves",
        "make_scene",
    ),
    "datasets": ("BSDS500", "BSDS_SPLITS", "MotorcycleOcclusions", "occlusion_boundaries"),
    "metrics": (
        "BoundaryEvaluation",
        "BoundarySweep",
        "OrientationError",
        "boundary_counts",
        "bsds_thresholds",
        "evaluate_boundaries",
        "match_boundaries",
        "orientation_error",
        "paired_t_interval",
        "resolve_max_dist",
        "summarize_counts",
        "thin_boundaries",
    ),
}
_LAZY_NAMES = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = list(_LAZY_NAMES)


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
