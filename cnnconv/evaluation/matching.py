"""One-to-one matching of predicted to true boundary pixels within a distance tolerance.

* **Tolerance**: ``max_dist < 1`` is a fraction of the image diagonal (BSDS default
  ``0.0075``); ``max_dist >= 1`` is a distance in pixels. Two pixels can be matched when their
  Euclidean distance is ``<= max_dist`` (BSDS: the same test, ``d^2 > maxDist^2`` is rejected).
* **Matching**: BSDS (``correspondPixels``) solves a min-cost perfect assignment in which every
  pixel may also go to an "outlier" at cost ``100 * maxDist``, over a sparse graph with six
  random outlier edges per node. Because an outlier costs far more than any real match, its
  solution is (except in pathological cases) a *maximum-cardinality* matching of minimum total
  distance. cnnconv computes that exactly: a maximum-cardinality matching always (scipy's
  Hopcroft-Karp, :func:`scipy.sparse.csgraph.maximum_bipartite_matching`), and, when the minimum
  total distance matters, the min-cost one among all maximum matchings (per connected component
  of the candidate graph, a dense assignment, :func:`scipy.optimize.linear_sum_assignment`, with
  a prohibitive cost on non-candidate pairs; very large components use LAPJVsp,
  :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`, on the standard
  outlier-augmented graph). Deviations: (1) BSDS's finite outlier cost could in principle prefer
  one match fewer when the only augmenting path is more than about 100 pixels long; cnnconv
  never does; (2) BSDS's random sparse outlier graph makes its optimum approximate; cnnconv's is
  exact; (3) BSDS rounds distances to 0.01 pixel before minimising, cnnconv does not.

scipy is imported on first use.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from cnnconv._utils.checks import check_positive_float
from cnnconv._utils.optional import require
from cnnconv.evaluation._inputs import as_binary_map

__all__ = ["match_boundaries", "resolve_max_dist"]

_PURPOSE = "boundary matching"


def _scipy_graphs() -> tuple[ModuleType, ModuleType]:
    """``scipy.sparse`` and ``scipy.sparse.csgraph``."""
    return require("scipy.sparse", _PURPOSE), require("scipy.sparse.csgraph", _PURPOSE)


def resolve_max_dist(max_dist: float, shape: tuple[int, int]) -> float:
    """Converts the matching tolerance into pixels.

    Args:
        max_dist: a fraction of the image diagonal when ``< 1`` (BSDS default 0.0075), otherwise a
            distance in pixels.
        shape: the image shape ``(H, W)``.

    Returns:
        The tolerance in pixels.

    Example:
        >>> round(resolve_max_dist(0.0075, (128, 128)), 4)
        1.3576
        >>> resolve_max_dist(2, (128, 128))
        2.0
    """
    max_dist = check_positive_float(max_dist, "max_dist")
    if max_dist < 1:
        return max_dist * math.hypot(shape[0], shape[1])
    return max_dist


def _offsets(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column offsets within ``radius`` (inclusive) and their lengths."""
    r = math.floor(radius + 1e-9)
    dv, du = np.mgrid[-r : r + 1, -r : r + 1]
    d2 = dv * dv + du * du
    keep = d2 <= radius * radius + 1e-9
    return dv[keep], du[keep], np.sqrt(d2[keep].astype(np.float64))


def _candidate_edges(
    pred: np.ndarray, gt: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All (pred pixel, true pixel) pairs within ``radius``: node ids, distances, pixel indices.

    Returns ``(rows, cols, dists, pred_flat, gt_flat)`` where ``rows``/``cols`` index the
    predicted/true pixels listed (as flat indices into the ``(H, W)`` map) in ``pred_flat`` and
    ``gt_flat``.
    """
    h, w = pred.shape
    dv, du, dist = _offsets(radius)
    r = int(max(np.abs(dv).max(), np.abs(du).max()))
    wp = w + 2 * r
    gid = np.full((h + 2 * r, wp), -1, dtype=np.int64)
    gt_flat = np.flatnonzero(gt)
    pred_flat = np.flatnonzero(pred)
    gid[gt_flat // w + r, gt_flat % w + r] = np.arange(gt_flat.size)
    base = (pred_flat // w + r) * wp + (pred_flat % w + r)
    nbr = gid.reshape(-1)[base[:, None] + (dv * wp + du)[None, :]]
    rows, k = np.nonzero(nbr >= 0)
    return rows, nbr[rows, k], dist[k], pred_flat, gt_flat


def _max_cardinality(rows: np.ndarray, cols: np.ndarray, n1: int, n2: int) -> np.ndarray:
    """Hopcroft-Karp: for each predicted pixel its matched true pixel, or -1."""
    sparse, csgraph = _scipy_graphs()
    # rows come sorted from np.nonzero, so the CSR arrays can be built directly (much faster than
    # the COO conversion)
    indptr = np.zeros(n1 + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n1), out=indptr[1:])
    graph = sparse.csr_matrix((np.ones(rows.size, dtype=np.int8), cols.astype(np.int32), indptr), shape=(n1, n2))
    return np.asarray(csgraph.maximum_bipartite_matching(graph, perm_type="column"), dtype=np.int64)


# Components with at most this many (predicted x true) pixel pairs are solved as a dense
# assignment (64 MB of float64 at the limit); larger ones as a sparse one.
_DENSE_PAIRS = 8_000_000


def _min_cost_max_cardinality(
    rows: np.ndarray, cols: np.ndarray, dists: np.ndarray, n1: int, n2: int, radius: float
) -> np.ndarray:
    """Min total distance among maximum-cardinality matchings.

    The candidate graph is split into connected components (pixels farther apart than the
    tolerance never interact), and each is solved on its own:

    * as a dense rectangular assignment (:func:`scipy.optimize.linear_sum_assignment`) in which
      a non-candidate pair costs ``big = (min(n1, n2) + 1) * (radius + 1)``, more than any
      total of real distances, so the optimum has the most real pairs and, among those, the
      least total distance; pairs at cost ``big`` are then dropped;
    * above :data:`_DENSE_PAIRS` pixel pairs, by the sparse solver on the outlier-augmented
      graph (:func:`_sparse_min_cost`).

    The sparse solver alone (LAPJVsp) ran for minutes on some dense random maps of a few
    hundred pixels that the dense one solves in milliseconds.
    """
    sparse, csgraph = _scipy_graphs()
    linear_sum_assignment = require("scipy.optimize", _PURPOSE).linear_sum_assignment

    match = np.full(n1, -1, dtype=np.int64)
    adjacency = sparse.coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, n1 + cols)), shape=(n1 + n2, n1 + n2))
    _, labels = csgraph.connected_components(adjacency, directed=False)
    edge_label = labels[rows]
    order = np.argsort(edge_label, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_label[order])) + 1
    for part in np.split(order, bounds):
        r, c, d = rows[part], cols[part], dists[part]
        pred_ids, r_local = np.unique(r, return_inverse=True)
        true_ids, c_local = np.unique(c, return_inverse=True)
        m1, m2 = pred_ids.size, true_ids.size
        if m1 * m2 <= _DENSE_PAIRS:
            big = (min(m1, m2) + 1) * (radius + 1.0)
            cost = np.full((m1, m2), big)
            cost[r_local, c_local] = d
            ri, ci = linear_sum_assignment(cost)
            real = cost[ri, ci] < big
            match[pred_ids[ri[real]]] = true_ids[ci[real]]
        else:
            local = _sparse_min_cost(r_local, c_local, d, m1, m2, radius)
            hit = local >= 0
            match[pred_ids[hit]] = true_ids[local[hit]]
    return match


def _sparse_min_cost(
    rows: np.ndarray, cols: np.ndarray, dists: np.ndarray, n1: int, n2: int, radius: float
) -> np.ndarray:
    """Min total distance among maximum-cardinality matchings (outlier-augmented assignment).

    Left nodes: predicted pixels ``0..n1-1`` and outlier slots of true pixels ``n1..n1+n2-1``;
    right nodes: true pixels ``0..n2-1`` and outlier slots of predicted pixels ``n2..n2+n1-1``.
    Edges: real pairs (distance), pixel to its own outlier slot (cost ``oc``), and for each real
    pair the transposed outlier-outlier pair (cost 0), so every matching of real pairs extends to
    a perfect matching whose cost is ``sum(distances) + oc * (n1 + n2 - 2 * matches)``. With
    ``oc`` larger than any achievable change in total distance, the optimum has the maximum
    number of matches.
    """
    sparse, csgraph = _scipy_graphs()
    n = n1 + n2
    oc = (n + 1) * (radius + 1.0)
    ar1 = np.arange(n1)
    ar2 = np.arange(n2)
    r = np.concatenate([rows, ar1, n1 + ar2, n1 + cols])
    c = np.concatenate([cols, n2 + ar1, ar2, n2 + rows])
    # every perfect matching has n edges, so adding 1 to each weight keeps the optimum and keeps
    # zero-distance pairs (explicit zeros would read as missing edges) in the graph
    wgt = np.concatenate([dists, np.full(n1, oc), np.full(n2, oc), np.zeros(rows.size)]) + 1.0
    graph = sparse.csr_matrix((wgt, (r, c)), shape=(n, n))
    ri, ci = csgraph.min_weight_full_bipartite_matching(graph)
    real = (ri < n1) & (ci < n2)
    match = np.full(n1, -1, dtype=np.int64)
    match[ri[real]] = ci[real]
    return match


def match_boundaries(
    pred: Any,
    gt: Any,
    max_dist: float = 0.0075,
    *,
    matching: str = "max_cardinality",
    return_pairs: bool = False,
) -> tuple[np.ndarray, ...]:
    """Matches predicted to true boundary pixels one-to-one within a tolerance.

    Args:
        pred: binary predicted boundary map (already thinned if that is wanted).
        gt: binary true boundary map of the same shape.
        max_dist: tolerance, a fraction of the image diagonal when ``< 1``, else pixels.
        matching: ``"max_cardinality"`` (Hopcroft-Karp: the most matches, enough for the counts)
            or ``"min_cost"`` (the most matches with the least total distance, as BSDS's
            ``correspondPixels``).
        return_pairs: also return the matched pairs.

    Returns:
        ``(matched_pred, matched_gt)``: boolean maps of the predicted and true pixels that were
        matched; both have the same number of True pixels. With ``return_pairs`` a third item,
        an int64 array ``(K, 4)`` of ``(pred_row, pred_col, gt_row, gt_col)`` per match.

    Shape:
        - pred, gt: :math:`(H, W)`; outputs :math:`(H, W)`.

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((8, 8), bool); gt[4, 1:7] = True
        >>> pred = np.roll(gt, 1, axis=0)              # one pixel below
        >>> m_pred, m_gt = match_boundaries(pred, gt, max_dist=1.0)
        >>> int(m_pred.sum()), int(m_gt.sum())
        (6, 6)
    """
    p = as_binary_map(pred, "pred")
    g = as_binary_map(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {p.shape} and {g.shape}")
    if matching not in ("max_cardinality", "min_cost"):
        raise ValueError(f"matching must be 'max_cardinality' or 'min_cost', got {matching!r}")
    radius = resolve_max_dist(max_dist, p.shape)
    return _match_pixels(p, g, radius, matching, return_pairs)


def _match_pixels(
    p: np.ndarray, g: np.ndarray, radius: float, matching: str, pairs: bool = False
) -> tuple[np.ndarray, ...]:
    """:func:`match_boundaries` on checked boolean maps and a tolerance in pixels."""
    matched_pred = np.zeros(p.shape, dtype=bool)
    matched_gt = np.zeros(g.shape, dtype=bool)
    rows, cols, dists, pred_flat, gt_flat = _candidate_edges(p, g, radius)
    if rows.size == 0:
        return (matched_pred, matched_gt) + ((np.zeros((0, 4), dtype=np.int64),) if pairs else ())
    n1, n2 = pred_flat.size, gt_flat.size
    if matching == "min_cost":
        m1 = _min_cost_max_cardinality(rows, cols, dists, n1, n2, radius)
    else:
        m1 = _max_cardinality(rows, cols, n1, n2)
    hit = m1 >= 0
    matched_pred.reshape(-1)[pred_flat[hit]] = True
    matched_gt.reshape(-1)[gt_flat[m1[hit]]] = True
    if not pairs:
        return matched_pred, matched_gt
    w = p.shape[1]
    pf, gf = pred_flat[hit], gt_flat[m1[hit]]
    return matched_pred, matched_gt, np.stack([pf // w, pf % w, gf // w, gf % w], axis=1)
