"""Metrics for the edge-learning experiments, gathered from the modules that compute them.

* :func:`evaluate_boundaries`: boundary detection scored by the BSDS protocol (Martin, Fowlkes
  and Malik, 2004; Arbelaez et al., 2011), with :func:`boundary_counts`,
  :func:`summarize_counts`, :func:`bsds_thresholds` and :class:`BoundaryEvaluation`
  (:mod:`cnnconv.evaluation.bsds`, where the protocol and its deviations from BSDS are
  described); the thinning :func:`thin_boundaries` (:mod:`cnnconv.evaluation.thinning`) and the
  one-to-one matching :func:`match_boundaries` within the tolerance :func:`resolve_max_dist`
  (:mod:`cnnconv.evaluation.matching`) it is built on.
* :func:`orientation_error`: angular error of a predicted edge direction on true boundary pixels
  (:mod:`cnnconv.evaluation.orientation`).
* :func:`paired_t_interval`: the confidence interval of a mean paired difference over seeds, for
  verdicts between two methods (:mod:`cnnconv.evaluation.stats`).

Example:
    >>> import torch
    >>> gt = torch.zeros(1, 16, 16, dtype=torch.bool); gt[:, 8, 2:14] = True
    >>> evaluate_boundaries(gt.float(), gt, thresholds=3, max_dist=1).ods
    1.0
"""

from __future__ import annotations

from cnnconv.evaluation.bsds import (
    BoundaryEvaluation,
    BoundarySweep,
    boundary_counts,
    bsds_thresholds,
    evaluate_boundaries,
    summarize_counts,
)
from cnnconv.evaluation.matching import match_boundaries, resolve_max_dist
from cnnconv.evaluation.orientation import OrientationError, orientation_error
from cnnconv.evaluation.stats import paired_t_interval
from cnnconv.evaluation.thinning import thin_boundaries

__all__ = [
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
]
