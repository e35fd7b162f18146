"""Metrics for the edge-learning experiments.

Three measures live here:

* :func:`evaluate_boundaries`: boundary detection scored by the BSDS protocol (Martin, Fowlkes and
  Malik, 2004; Arbelaez et al., 2011): a threshold sweep, morphological thinning of every
  binarised map, one-to-one matching of predicted to true boundary pixels within a distance
  tolerance, and the summary numbers ODS F, OIS F, AP and R50.
* :func:`orientation_error`: angular error of a predicted edge direction on true boundary pixels.
* :func:`kernel_recovery_error`: relative L2 error of a learned kernel against a reference after
  the best sign / 90-degree rotation (which includes the convolution flip) alignment.

and :func:`paired_t_interval`, the confidence interval of a mean paired difference over seeds,
for verdicts between two methods.

Protocol details and deviations from the BSDS MATLAB/C++ code (``correspondPixels``,
``evaluation_bdry_image.m``, ``collect_eval_bdry.m``) and from P. Dollar's ``edgesEvalImg``:

* **Thresholds**: an integer ``n`` gives ``linspace(1/(n+1), 1 - 1/(n+1), n)`` as in BSDS; a
  pixel is predicted at threshold ``t`` when ``prediction >= t``.
* **Thinning**: each binarised prediction is thinned to one-pixel width with
  :func:`skimage.morphology.thin`, the same algorithm as MATLAB's ``bwmorph(bmap, 'thin', inf)``.
  Ground truth is used as given (it is expected to be thin already).
* **Tolerance**: ``max_dist < 1`` is a fraction of the image diagonal (BSDS default
  ``0.0075``); ``max_dist >= 1`` is a distance in pixels. Two pixels can be matched when their
  Euclidean distance is ``<= max_dist`` (BSDS: the same test, ``d^2 > maxDist^2`` is rejected).
* **Matching**: BSDS solves a min-cost perfect assignment in which every pixel may also go to an
  "outlier" at cost ``100 * maxDist``, over a sparse graph with six random outlier edges per
  node. Because an outlier costs far more than any real match, its solution is (except in
  pathological cases) a *maximum-cardinality* matching of minimum total distance. cnnconv
  computes that exactly: a maximum-cardinality matching always (scipy's Hopcroft-Karp,
  :func:`scipy.sparse.csgraph.maximum_bipartite_matching`), and, when the minimum total distance
  matters, the min-cost one among all maximum matchings (per connected component of the
  candidate graph, a dense assignment, :func:`scipy.optimize.linear_sum_assignment`, with a
  prohibitive cost on non-candidate pairs; very large components use LAPJVsp,
  :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`, on the standard
  outlier-augmented graph). Deviations: (1) BSDS's finite outlier cost could in principle prefer
  one match fewer when the only augmenting path is more than about 100 pixels long; cnnconv never
  does; (2) BSDS's random sparse outlier graph makes its optimum approximate; cnnconv's is exact;
  (3) BSDS rounds distances to 0.01 pixel before minimising, cnnconv does not. The counts of
  matched pixels depend only on the cardinality, so with one ground truth per image both
  matchings give identical counts; with several ground truths the precision counts the union of
  predicted pixels matched to any of them, which depends on *which* maximum matching is chosen,
  and ``matching="auto"`` then uses the min-cost one like BSDS.
* **Counts** (per image and threshold): ``cnt_r`` = matched true pixels summed over the ground
  truths, ``sum_r`` = true pixels summed over the ground truths, ``cnt_p`` = predicted pixels
  matched to at least one ground truth, ``sum_p`` = predicted pixels. Recall ``cnt_r / sum_r``,
  precision ``cnt_p / sum_p`` (0 when the denominator is 0), ``F = 2PR / (P + R)`` (0 when both
  are 0).
* **ODS**: counts summed over the dataset at each threshold; the best F along the P-R curve
  linearly interpolated between consecutive thresholds in 101 steps (BSDS ``findBestRPF``).
* **OIS**: for each image the threshold with the highest (non-interpolated) F, ties to the
  lowest threshold; the counts at those thresholds are summed and give the OIS F (BSDS
  ``collect_eval_bdry``).
* **AP**: the precision, linearly interpolated as a function of recall at recall
  ``0, 0.01, ..., 1`` (0 outside the recall range reached), summed and multiplied by 0.01, as
  in BSDS. Where several thresholds give the same recall, the highest precision among them is
  used. Fewer than two distinct recall values give AP 0 (BSDS).
* **R50**: recall at 50% precision: the largest recall on the P-R curve (the threshold points
  joined by straight lines in threshold order, as for ODS) at which precision is at least 0.5;
  0 when precision never reaches 0.5. When precision falls monotonically as recall grows this
  equals Dollar's ``edgesEvalDir`` formula (recall interpolated as a function of precision at
  ``max(0.5, lowest precision)``); unlike that formula it is not thrown off by the noisy,
  non-monotone precision of the few pixels kept at the highest thresholds, nor by the (R=0,
  P=0) points of thresholds that keep no pixel (Dollar's code gives NaN where cnnconv gives 0).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = [
    "BoundaryEvaluation",
    "resolve_max_dist",
    "bsds_thresholds",
    "thin_boundaries",
    "summarize_counts",
    "match_boundaries",
    "boundary_counts",
    "evaluate_boundaries",
    "OrientationError",
    "orientation_error",
    "KernelTransform",
    "KernelRecovery",
    "kernel_recovery_error",
    "paired_t_interval",
]

_EXTRA = "pip install 'cnnconv[experiments]'"


def _require_scipy():
    try:
        import scipy.sparse  # noqa: F401
        from scipy.sparse import csgraph  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"cnnconv.evaluation.metrics needs scipy for boundary matching: {_EXTRA}") from exc
    return scipy.sparse, csgraph


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")


def _as_binary_map(x: Any, name: str) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) map, got shape {tuple(a.shape)}")
    if a.dtype == np.bool_:
        return a
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got NaN or inf values")
    u = np.unique(a)
    if not np.all(np.isin(u, (0, 1))):
        raise ValueError(f"{name} must be binary (0/1 or bool), got values such as {u[:5].tolist()}")
    return a.astype(bool)


# ---------------------------------------------------------------------------------------------
# Thinning
# ---------------------------------------------------------------------------------------------

# Neighbour bits (as skimage.morphology.thin): bit k is the k-th neighbour counter-clockwise from
# east: E, NE, N, NW, W, SW, S, SE.
_NBR_DV = np.array([0, -1, -1, -1, 0, 1, 1, 1])
_NBR_DU = np.array([1, 1, 0, -1, -1, -1, 0, 1])
_THIN_LUTS: tuple[np.ndarray, np.ndarray] | None = None


def _thin_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of Guo and Hall's two-subiteration thinning (1989), by neighbour code."""
    global _THIN_LUTS
    if _THIN_LUTS is None:
        codes = np.arange(256)
        b = [(codes >> k) & 1 == 1 for k in range(8)]  # b[k]: neighbour k is set
        # G1: exactly one 8-connected run of set neighbours (crossing number 1)
        g1 = sum((~b[i]) & (b[i + 1] | b[(i + 2) % 8]) for i in (0, 2, 4, 6)) == 1
        n1 = sum(b[k] | b[k - 1] for k in (1, 3, 5, 7))
        n2 = sum(b[k] | b[(k + 1) % 8] for k in (1, 3, 5, 7))
        nmin = np.minimum(n1, n2)
        g2 = (nmin == 2) | (nmin == 3)
        g3 = ~((b[1] | b[2] | ~b[7]) & b[0])
        g3p = ~((b[5] | b[6] | ~b[3]) & b[4])
        _THIN_LUTS = (g1 & g2 & g3, g1 & g2 & g3p)
    return _THIN_LUTS


def thin_boundaries(bmap: Any) -> np.ndarray:
    """Thins a binary map to one-pixel-wide curves (MATLAB ``bwmorph(bmap, 'thin', inf)``).

    Guo and Hall's two-subiteration parallel thinning, the algorithm of MATLAB's ``bwmorph``
    ``'thin'`` and of :func:`skimage.morphology.thin` (whose results this reproduces exactly,
    tested), computed only on the set pixels, which is much faster for sparse edge maps.

    Args:
        bmap: binary map (bool or 0/1), array or tensor.

    Returns:
        The thinned boolean map.

    Shape:
        - bmap: :math:`(H, W)`; output :math:`(H, W)`.

    Example:
        >>> import numpy as np
        >>> band = np.zeros((7, 9), bool); band[2:5, 1:8] = True   # a 3-pixel-wide bar
        >>> thin_boundaries(band).sum(axis=0).tolist()              # one pixel per column
        [0, 0, 1, 1, 1, 1, 1, 0, 0]
    """
    m = _as_binary_map(bmap, "bmap")
    h, w = m.shape
    wp = w + 2
    img = np.zeros((h + 2, wp), dtype=np.int32)
    img[1:-1, 1:-1] = m
    flat = img.reshape(-1)
    idx = np.flatnonzero(flat)
    offs = _NBR_DV * wp + _NBR_DU
    weights = (1 << np.arange(8)).astype(np.int32)
    luts = _thin_luts()
    while idx.size:
        removed = False
        for lut in luts:
            code = flat[idx[:, None] + offs[None, :]] @ weights
            d = lut[code]
            if d.any():
                flat[idx[d]] = 0
                idx = idx[~d]
                removed = True
        if not removed:
            break
    return img[1:-1, 1:-1].astype(bool)



# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------


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
    if isinstance(max_dist, bool) or not isinstance(max_dist, (int, float, np.floating, np.integer)):
        raise TypeError(f"max_dist must be a number, got {type(max_dist).__name__}")
    max_dist = float(max_dist)
    if not math.isfinite(max_dist) or max_dist <= 0:
        raise ValueError(f"max_dist must be positive and finite, got {max_dist}")
    if max_dist < 1:
        return max_dist * math.hypot(shape[0], shape[1])
    return max_dist


def _offsets(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column offsets within ``radius`` (inclusive) and their lengths."""
    r = int(math.floor(radius + 1e-9))
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


def _max_cardinality(rows, cols, n1, n2):
    sparse, csgraph = _require_scipy()
    # rows come sorted from np.nonzero, so the CSR arrays can be built directly (much faster than
    # the COO conversion)
    indptr = np.zeros(n1 + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n1), out=indptr[1:])
    graph = sparse.csr_matrix(
        (np.ones(rows.size, dtype=np.int8), cols.astype(np.int32), indptr), shape=(n1, n2)
    )
    return np.asarray(csgraph.maximum_bipartite_matching(graph, perm_type="column"), dtype=np.int64)


# Components with at most this many (predicted x true) pixel pairs are solved as a dense
# assignment (64 MB of float64 at the limit); larger ones as a sparse one.
_DENSE_PAIRS = 8_000_000


def _min_cost_max_cardinality(rows, cols, dists, n1, n2, radius):
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
    sparse, csgraph = _require_scipy()
    from scipy.optimize import linear_sum_assignment

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


def _sparse_min_cost(rows, cols, dists, n1, n2, radius):
    """Min total distance among maximum-cardinality matchings (outlier-augmented assignment).

    Left nodes: predicted pixels ``0..n1-1`` and outlier slots of true pixels ``n1..n1+n2-1``;
    right nodes: true pixels ``0..n2-1`` and outlier slots of predicted pixels ``n2..n2+n1-1``.
    Edges: real pairs (distance), pixel to its own outlier slot (cost ``oc``), and for each real
    pair the transposed outlier-outlier pair (cost 0), so every matching of real pairs extends to
    a perfect matching whose cost is ``sum(distances) + oc * (n1 + n2 - 2 * matches)``. With
    ``oc`` larger than any achievable change in total distance, the optimum has the maximum
    number of matches.
    """
    sparse, csgraph = _require_scipy()
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
    p = _as_binary_map(pred, "pred")
    g = _as_binary_map(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {p.shape} and {g.shape}")
    if matching not in ("max_cardinality", "min_cost"):
        raise ValueError(f"matching must be 'max_cardinality' or 'min_cost', got {matching!r}")
    radius = resolve_max_dist(max_dist, p.shape)
    return _match_pixels(p, g, radius, matching, return_pairs)


def _match_pixels(p: np.ndarray, g: np.ndarray, radius: float, matching: str, pairs: bool = False):
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


# ---------------------------------------------------------------------------------------------
# Threshold sweep
# ---------------------------------------------------------------------------------------------


def bsds_thresholds(thresholds: int | Sequence[float] | np.ndarray | torch.Tensor = 99) -> np.ndarray:
    """The threshold grid of the sweep.

    Args:
        thresholds: a count ``n`` (BSDS grid ``linspace(1/(n+1), 1 - 1/(n+1), n)``) or explicit
            values in ``(0, 1]``, sorted and de-duplicated here.

    Returns:
        Increasing float64 thresholds.

    Example:
        >>> bsds_thresholds(3).tolist()
        [0.25, 0.5, 0.75]
    """
    if isinstance(thresholds, bool):
        raise TypeError(f"thresholds must be an int or a sequence of floats, got {thresholds!r}")
    if isinstance(thresholds, (int, np.integer)):
        n = int(thresholds)
        if n < 1:
            raise ValueError(f"thresholds must be a positive count, got {n}")
        return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)
    if isinstance(thresholds, torch.Tensor):
        thresholds = thresholds.detach().cpu().numpy()
    try:
        t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"thresholds must be an int or a sequence of floats, got {thresholds!r}"
        ) from exc
    if t.size == 0:
        raise ValueError("thresholds must not be empty, got 0 values")
    if not np.all(np.isfinite(t)) or t.min() <= 0 or t.max() > 1:
        raise ValueError(
            f"thresholds must lie in (0, 1], got values from {t.min()} to {t.max()}"
        )
    return np.unique(t)


def _as_prediction(x: Any, i: int) -> np.ndarray:
    a = _to_numpy(x, f"predictions[{i}]")
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"predictions[{i}] must be a 2-D (H, W) map, got shape {tuple(a.shape)}")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"predictions[{i}] must be finite, got NaN or inf values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"predictions[{i}] must lie in [0, 1] (normalise the detector response), "
            f"got values from {lo} to {hi}"
        )
    return a


def _split_batch(x: Any, name: str) -> list:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if x.ndim == 2:
            return [x]
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ValueError(
                f"{name} must be (N, H, W), (N, 1, H, W) or a list of (H, W) maps, "
                f"got shape {tuple(x.shape)}"
            )
        return list(x)
    if isinstance(x, (list, tuple)):
        return list(x)
    raise TypeError(f"{name} must be a tensor, an array or a list, got {type(x).__name__}")


def _gt_list(x: Any, i: int, shape: tuple[int, int]) -> list[np.ndarray]:
    name = f"ground_truths[{i}]"
    if isinstance(x, (list, tuple)):
        gts = [_as_binary_map(g, f"{name}[{k}]") for k, g in enumerate(x)]
        if not gts:
            raise ValueError(f"{name} must hold at least one ground truth map, got an empty list")
    else:
        a = _to_numpy(x, name)
        if a.ndim == 3 and a.shape[0] != 1:
            gts = [_as_binary_map(g, f"{name}[{k}]") for k, g in enumerate(a)]
        else:
            gts = [_as_binary_map(a, name)]
    for g in gts:
        if g.shape != shape:
            raise ValueError(f"{name} has shape {g.shape} but the prediction has shape {shape}")
    return gts


def boundary_counts(
    prediction: Any,
    ground_truth: Any,
    *,
    thresholds: int | Sequence[float] | np.ndarray = 99,
    max_dist: float = 0.0075,
    thin: bool = True,
    matching: str = "auto",
) -> np.ndarray:
    """BSDS counts of one image over the threshold sweep.

    Args:
        prediction: soft boundary map in ``[0, 1]``, shape ``(H, W)``.
        ground_truth: a binary ``(H, W)`` map, a ``(K, H, W)`` stack or a list of ``K`` maps.
        thresholds: see :func:`bsds_thresholds`.
        max_dist: tolerance, a fraction of the diagonal when ``< 1``, else pixels.
        thin: thin each binarised prediction (BSDS does).
        matching: ``"auto"`` (maximum cardinality for one ground truth, min cost for several),
            ``"max_cardinality"`` or ``"min_cost"``.

    Returns:
        float64 array ``(T, 4)`` with columns ``cnt_r, sum_r, cnt_p, sum_p``.

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((16, 16), bool); gt[8, 2:14] = True
        >>> boundary_counts(gt * 0.7, gt, thresholds=[0.5, 0.9], max_dist=1).tolist()
        [[12.0, 12.0, 12.0, 12.0], [0.0, 12.0, 0.0, 0.0]]
    """
    return _image_counts(_as_prediction(prediction, 0), ground_truth, 0,
                         bsds_thresholds(thresholds), max_dist, thin, matching)


def _image_counts(pred, gt_any, i, thr, max_dist, thin, matching) -> np.ndarray:
    if matching not in ("auto", "max_cardinality", "min_cost"):
        raise ValueError(
            f"matching must be 'auto', 'max_cardinality' or 'min_cost', got {matching!r}"
        )
    gts = _gt_list(gt_any, i, pred.shape)
    if matching == "auto":
        matching = "max_cardinality" if len(gts) == 1 else "min_cost"
    radius = resolve_max_dist(max_dist, pred.shape)
    sum_r = float(sum(int(g.sum()) for g in gts))
    # thresholding is monotone, so equal pixel counts at two thresholds mean equal maps
    sorted_vals = np.sort(pred.reshape(-1))
    n_above = sorted_vals.size - np.searchsorted(sorted_vals, thr, side="left")
    out = np.zeros((thr.size, 4))
    last_n, last_row = -1, None
    for t_i, t in enumerate(thr):
        if n_above[t_i] == last_n:
            out[t_i] = last_row
            continue
        bmap = pred >= t
        if thin and n_above[t_i] > 0:
            bmap = thin_boundaries(bmap)
        acc = np.zeros(pred.shape, dtype=bool)
        cnt_r = 0
        for g in gts:
            mp, mg = _match_pixels(bmap, g, radius, matching)
            acc |= mp
            cnt_r += int(mg.sum())
        row = (cnt_r, sum_r, int(acc.sum()), int(bmap.sum()))
        out[t_i] = row
        last_n, last_row = n_above[t_i], row
    return out


def _rpf(cnt_r, sum_r, cnt_p, sum_p):
    r = cnt_r / (sum_r + (sum_r == 0))
    p = cnt_p / (sum_p + (sum_p == 0))
    f = 2 * p * r / (p + r + ((p + r) == 0))
    return r, p, f


def _best_interpolated(t, r, p):
    """BSDS findBestRPF: best F on the P-R curve interpolated between consecutive thresholds."""
    if t.size == 1:
        f = 2 * p * r / (p + r + ((p + r) == 0))
        return float(t[0]), float(r[0]), float(p[0]), float(f[0])
    a = (np.arange(101) / 100.0)[None, :]
    rt = a * r[1:, None] + (1 - a) * r[:-1, None]
    pt = a * p[1:, None] + (1 - a) * p[:-1, None]
    tt = a * t[1:, None] + (1 - a) * t[:-1, None]
    ft = 2 * pt * rt / (pt + rt + ((pt + rt) == 0))
    k = int(np.argmax(ft))  # row-major: the first (lowest threshold) maximum, as BSDS
    return float(tt.flat[k]), float(rt.flat[k]), float(pt.flat[k]), float(ft.flat[k])


def _average_precision(r, p) -> float:
    ru = np.unique(r)
    if ru.size < 2:
        return 0.0
    pu = np.array([p[r == v].max() for v in ru])
    grid = (np.arange(101) / 100.0)
    pi = np.interp(grid, ru, pu, left=0.0, right=0.0)
    return float(pi.sum() * 0.01)


def _r50(r, p) -> float:
    """Largest recall at which the P-R curve (in threshold order, linear between thresholds)
    has precision >= 0.5; 0 if it never does."""
    best = float(r[p >= 0.5].max()) if np.any(p >= 0.5) else 0.0
    r0, r1, p0, p1 = r[:-1], r[1:], p[:-1], p[1:]
    cross = (p0 - 0.5) * (p1 - 0.5) < 0
    if np.any(cross):
        a = (0.5 - p0[cross]) / (p1[cross] - p0[cross])
        best = max(best, float((r0[cross] + a * (r1[cross] - r0[cross])).max()))
    return best


@dataclasses.dataclass
class BoundaryEvaluation:
    """Result of :func:`evaluate_boundaries`.

    Attributes:
        thresholds: ``(T,)`` increasing thresholds of the sweep.
        recall, precision, f: ``(T,)`` dataset-wide curves (counts summed over images).
        counts: ``(T, 4)`` dataset-wide ``cnt_r, sum_r, cnt_p, sum_p``.
        image_counts: ``(N, T, 4)`` per-image counts.
        ods, ods_threshold, ods_recall, ods_precision: optimal dataset scale (interpolated).
        ois, ois_recall, ois_precision: optimal image scale.
        image_thresholds: ``(N,)`` each image's best threshold (the OIS choice).
        ap: area under the interpolated P-R curve.
        r50: recall at 50% precision.
        max_dist: the tolerance argument as given.
    """

    thresholds: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    f: np.ndarray
    counts: np.ndarray
    image_counts: np.ndarray
    ods: float
    ods_threshold: float
    ods_recall: float
    ods_precision: float
    ois: float
    ois_recall: float
    ois_precision: float
    image_thresholds: np.ndarray
    ap: float
    r50: float
    max_dist: float

    def to_dict(self, curves: bool = True) -> dict[str, Any]:
        """Plain Python numbers (and lists for the curves), ready for JSON/CSV/YAML.

        Args:
            curves: include the ``thresholds``, ``recall``, ``precision`` and ``f`` lists.

        Returns:
            A dict with ``ods, ods_threshold, ods_recall, ods_precision, ois, ois_recall,
            ois_precision, ap, r50, max_dist, n_images`` and, if asked, the curves.
        """
        d: dict[str, Any] = {
            "ods": self.ods,
            "ods_threshold": self.ods_threshold,
            "ods_recall": self.ods_recall,
            "ods_precision": self.ods_precision,
            "ois": self.ois,
            "ois_recall": self.ois_recall,
            "ois_precision": self.ois_precision,
            "ap": self.ap,
            "r50": self.r50,
            "max_dist": self.max_dist,
            "n_images": int(self.image_counts.shape[0]),
        }
        if curves:
            d["thresholds"] = self.thresholds.tolist()
            d["recall"] = self.recall.tolist()
            d["precision"] = self.precision.tolist()
            d["f"] = self.f.tolist()
        return d


def summarize_counts(
    image_counts: np.ndarray, thresholds: np.ndarray, max_dist: float = 0.0075
) -> BoundaryEvaluation:
    """ODS, OIS, AP and R50 from per-image counts (for counts gathered in several passes).

    Args:
        image_counts: ``(N, T, 4)`` counts ``cnt_r, sum_r, cnt_p, sum_p`` as returned by
            :func:`boundary_counts` and stacked.
        thresholds: ``(T,)`` increasing thresholds.
        max_dist: recorded in the result only.

    Returns:
        A :class:`BoundaryEvaluation`.
    """
    c = np.asarray(image_counts, dtype=np.float64)
    thr = np.asarray(thresholds, dtype=np.float64)
    if c.ndim != 3 or c.shape[2] != 4 or c.shape[1] != thr.size or c.shape[0] == 0:
        raise ValueError(
            f"image_counts must have shape (N>0, T={thr.size}, 4), got {tuple(c.shape)}"
        )
    tot = c.sum(axis=0)
    r, p, f = _rpf(*tot.T)
    ods_t, ods_r, ods_p, ods_f = _best_interpolated(thr, r, p)
    _, _, fi = _rpf(c[..., 0], c[..., 1], c[..., 2], c[..., 3])
    best = np.argmax(fi, axis=1)
    sel = c[np.arange(c.shape[0]), best].sum(axis=0)
    ois_r, ois_p, ois_f = (float(v) for v in _rpf(*sel))
    return BoundaryEvaluation(
        thresholds=thr,
        recall=r,
        precision=p,
        f=f,
        counts=tot,
        image_counts=c,
        ods=ods_f,
        ods_threshold=ods_t,
        ods_recall=ods_r,
        ods_precision=ods_p,
        ois=ois_f,
        ois_recall=ois_r,
        ois_precision=ois_p,
        image_thresholds=thr[best],
        ap=_average_precision(r, p),
        r50=_r50(r, p),
        max_dist=float(max_dist),
    )


def evaluate_boundaries(
    predictions: Any,
    ground_truths: Any,
    *,
    thresholds: int | Sequence[float] | np.ndarray = 99,
    max_dist: float = 0.0075,
    thin: bool = True,
    matching: str = "auto",
) -> BoundaryEvaluation:
    """Scores soft boundary maps against ground truth by the BSDS protocol.

    Every detector must be given to this function the same way: a response already passed
    through the same non-maximum suppression and normalised to ``[0, 1]``. For each threshold the
    map is binarised (``>= t``), thinned, and matched one-to-one to each ground truth within
    ``max_dist`` (see the module docstring for the exact protocol and its deviations from BSDS).

    Args:
        predictions: ``(N, H, W)`` or ``(N, 1, H, W)`` tensor/array, or a list of ``(H, W)`` maps
            (sizes may differ between images), values in ``[0, 1]``.
        ground_truths: one entry per image: a binary ``(H, W)`` map, a ``(K, H, W)`` stack or a
            list of ``K`` maps (several annotators); or an ``(N, H, W)`` tensor/array.
        thresholds: a count (BSDS grid) or explicit values in ``(0, 1]``.
        max_dist: tolerance, a fraction of the image diagonal when ``< 1`` (BSDS 0.0075), else
            pixels.
        thin: thin the binarised predictions (BSDS does; turn off only for maps already one
            pixel wide at every threshold).
        matching: ``"auto"``, ``"max_cardinality"`` or ``"min_cost"`` (see the module docstring).

    Returns:
        A :class:`BoundaryEvaluation` with the P-R curve, ODS, OIS, AP and R50.

    Shape:
        - predictions: :math:`(N, H, W)`; ground_truths: :math:`(N, H, W)` or lists.

    Example:
        >>> import torch
        >>> gt = torch.zeros(2, 32, 32, dtype=torch.bool); gt[:, 16, 4:28] = True
        >>> pred = gt.roll(1, dims=1).float() * 0.8     # one pixel off, within tolerance
        >>> res = evaluate_boundaries(pred, gt, thresholds=9, max_dist=1)
        >>> round(res.ods, 3), round(res.ois, 3)
        (1.0, 1.0)
    """
    preds = _split_batch(predictions, "predictions")
    gts = _split_batch(ground_truths, "ground_truths")
    if len(preds) != len(gts):
        raise ValueError(
            f"predictions and ground_truths must hold the same number of images, "
            f"got {len(preds)} and {len(gts)}"
        )
    if not preds:
        raise ValueError("predictions must hold at least one image, got 0")
    if not isinstance(thin, bool):
        raise TypeError(f"thin must be a bool, got {type(thin).__name__}")
    thr = bsds_thresholds(thresholds)
    resolve_max_dist(max_dist, (1, 1))  # validate early
    counts = np.stack(
        [
            _image_counts(_as_prediction(p, i), g, i, thr, max_dist, thin, matching)
            for i, (p, g) in enumerate(zip(preds, gts))
        ]
    )
    return summarize_counts(counts, thr, max_dist)


# ---------------------------------------------------------------------------------------------
# Orientation error
# ---------------------------------------------------------------------------------------------


class OrientationError(NamedTuple):
    """Angular error statistics in degrees (modulo 180) and the number of pixels used."""

    mean: float
    median: float
    count: int


def orientation_error(pred_direction: Any, true_orientation: Any, mask: Any) -> OrientationError:
    """Absolute angular error between predicted and true edge normals, modulo 180 degrees.

    The sign of an edge normal depends on which side is brighter, which a detector may get
    either way (and a magnitude-only detector cannot know), so directions ``a`` and ``a + pi``
    count as equal: the error is ``min(d, 180 - d)`` with ``d = |a - b| mod 180`` degrees, in
    ``[0, 90]``. Angles are in radians with the convention of ``atan2(gy, gx)`` (x = columns to
    the right, y = rows downward), as :mod:`cnnconv.evaluation.data` stores them.

    Args:
        pred_direction: predicted normal direction in radians.
        true_orientation: true normal direction in radians.
        mask: boolean map of the pixels to score (e.g. the true boundary).

    Returns:
        :class:`OrientationError` ``(mean, median, count)``; mean and median in degrees.

    Shape:
        - all inputs: the same shape, any number of dimensions.

    Example:
        >>> import torch
        >>> a = torch.tensor([0.0, 3.0, 1.0]); b = torch.tensor([0.1, 3.0 - torch.pi, 1.0])
        >>> e = orientation_error(a, b, torch.tensor([True, True, False]))
        >>> round(e.mean, 3), e.count
        (2.865, 2)
    """
    a = _to_numpy(pred_direction, "pred_direction").astype(np.float64)
    b = _to_numpy(true_orientation, "true_orientation").astype(np.float64)
    m = _to_numpy(mask, "mask")
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be boolean, got dtype {m.dtype}")
    if a.shape != b.shape or a.shape != m.shape:
        raise ValueError(
            f"pred_direction, true_orientation and mask must have the same shape, "
            f"got {a.shape}, {b.shape} and {m.shape}"
        )
    n = int(m.sum())
    if n == 0:
        raise ValueError("mask must select at least one pixel, got an empty mask")
    a, b = a[m], b[m]
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("pred_direction and true_orientation must be finite on the mask")
    d = np.mod(np.abs(a - b), np.pi)
    d = np.degrees(np.minimum(d, np.pi - d))
    return OrientationError(float(d.mean()), float(np.median(d)), n)


# ---------------------------------------------------------------------------------------------
# Kernel recovery error
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KernelTransform:
    """A sign / rotation / mirror alignment of a kernel.

    Attributes:
        sign: +1 or -1.
        rot90: number of counter-clockwise quarter turns (``torch.rot90`` on the last two
            dimensions); ``rot90=2`` is the convolution flip.
        mirror: whether the kernel is transposed (only searched with ``allow_mirror=True``).
    """

    sign: int = 1
    rot90: int = 0
    mirror: bool = False

    def apply(self, kernel: torch.Tensor) -> torch.Tensor:
        """Applies the transform to the last two dimensions of ``kernel``."""
        k = kernel.transpose(-1, -2) if self.mirror else kernel
        k = torch.rot90(k, self.rot90, dims=(-2, -1))
        return self.sign * k


class KernelRecovery(NamedTuple):
    """Relative L2 error after the best alignment, and that alignment."""

    error: float
    transform: KernelTransform


def _pad_to(k: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    dh, dw = shape[0] - k.shape[-2], shape[1] - k.shape[-1]
    if dh % 2 or dw % 2:
        raise ValueError(
            f"kernels of sizes {tuple(k.shape[-2:])} and {shape} cannot be centred on each other "
            f"(the size difference must be even)"
        )
    return torch.nn.functional.pad(k, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def kernel_recovery_error(
    learned: Any, reference: Any, *, allow_mirror: bool = False
) -> KernelRecovery:
    """Relative L2 error of a learned kernel after the best sign and rotation alignment.

    ``error = min_T ||T(learned) - reference|| / ||reference||`` over ``T`` = sign (+1/-1) times
    a rotation by 0, 90, 180 or 270 degrees; the 180-degree rotation is the convolution flip (a
    kernel learned for convolution instead of correlation). Scale is *not* aligned: recovery must
    get the scale right. With ``allow_mirror`` the transposes are searched too (the full
    8-element dihedral group times sign). When the two kernels differ in size, the smaller is
    zero-padded around its centre (a 3x3 Sobel inside a learned 5x5 kernel), so energy the learned
    kernel puts on the outer ring counts as error. For stacks ``(..., kh, kw)`` one transform is
    applied to the whole stack (e.g. both channels of a learned gradient pair) and the error is
    over all elements. Computed in float64.

    Args:
        learned: learned kernel(s), tensor or array ``(..., kh, kw)``.
        reference: reference kernel(s) with the same leading dimensions (or broadcastable).
        allow_mirror: also search transposed kernels.

    Returns:
        :class:`KernelRecovery` ``(error, transform)``; ``transform.apply(learned)`` aligns the
        learned kernel to the reference (after padding to a common size).

    Example:
        >>> import torch
        >>> ref = torch.arange(9.0).reshape(3, 3)
        >>> err, tf = kernel_recovery_error(-ref.flip(0, 1), ref)   # flipped and negated
        >>> err, tf.sign, tf.rot90
        (0.0, -1, 2)
        >>> sobel = torch.tensor([[-1., 0, 1], [-2, 0, 2], [-1, 0, 1]])
        >>> round(kernel_recovery_error(torch.zeros(5, 5), sobel).error, 6)  # zeros: error 1
        1.0
    """
    a = torch.from_numpy(np.array(_to_numpy(learned, "learned"), dtype=np.float64))
    b = torch.from_numpy(np.array(_to_numpy(reference, "reference"), dtype=np.float64))
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(
            f"learned and reference must have at least 2 dimensions (kh, kw), "
            f"got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("learned and reference must be finite")
    size = (max(a.shape[-2], b.shape[-2]), max(a.shape[-1], b.shape[-1]))
    a = _pad_to(a, size)
    b = _pad_to(b, size)
    ref_norm = float(torch.linalg.vector_norm(b))
    if ref_norm == 0:
        raise ValueError("reference must not be all zeros (its norm is the denominator)")
    best: KernelRecovery | None = None
    for mirror in (False, True) if allow_mirror else (False,):
        for rot in range(4):
            for sign in (1, -1):
                tf = KernelTransform(sign, rot, mirror)
                t = tf.apply(a)
                if t.shape[-2:] != b.shape[-2:]:
                    continue
                err = float(torch.linalg.vector_norm(t - b)) / ref_norm
                if best is None or err < best.error - 1e-15:
                    best = KernelRecovery(err, tf)
    if best is None:
        raise ValueError(
            f"no rotation of a kernel of size {tuple(a.shape[-2:])} matches the reference size "
            f"{tuple(b.shape[-2:])}"
        )
    return best


# ---------------------------------------------------------------------------------------------
# Statistics over seeds
# ---------------------------------------------------------------------------------------------

# Two-sided Student t quantiles t_{(1 + confidence) / 2, df} for df = 1..30, 40, 60, 120 and
# infinity (the normal quantile), to 6 significant digits (from scipy.stats.t.ppf); used when
# scipy is not installed.
_T_DF = np.array(list(range(1, 31)) + [40, 60, 120, np.inf])
_T_TABLE = {
    0.9: (6.31375, 2.91999, 2.35336, 2.13185, 2.01505, 1.94318, 1.89458, 1.85955, 1.83311,
          1.81246, 1.79588, 1.78229, 1.77093, 1.76131, 1.75305, 1.74588, 1.73961, 1.73406,
          1.72913, 1.72472, 1.72074, 1.71714, 1.71387, 1.71088, 1.70814, 1.70562, 1.70329,
          1.70113, 1.69913, 1.69726, 1.68385, 1.67065, 1.65765, 1.64485),
    0.95: (12.7062, 4.30265, 3.18245, 2.77645, 2.57058, 2.44691, 2.36462, 2.306, 2.26216,
           2.22814, 2.20099, 2.17881, 2.16037, 2.14479, 2.13145, 2.11991, 2.10982, 2.10092,
           2.09302, 2.08596, 2.07961, 2.07387, 2.06866, 2.0639, 2.05954, 2.05553, 2.05183,
           2.04841, 2.04523, 2.04227, 2.02108, 2.0003, 1.97993, 1.95996),
    0.99: (63.6567, 9.92484, 5.84091, 4.60409, 4.03214, 3.70743, 3.49948, 3.35539, 3.24984,
           3.16927, 3.10581, 3.05454, 3.01228, 2.97684, 2.94671, 2.92078, 2.89823, 2.87844,
           2.86093, 2.84534, 2.83136, 2.81876, 2.80734, 2.79694, 2.78744, 2.77871, 2.77068,
           2.76326, 2.75639, 2.75, 2.70446, 2.66028, 2.61742, 2.57583),
}


def _t_quantile(confidence: float, df: int) -> float:
    """Two-sided t quantile: scipy.stats when installed, else the table (linear in ``1/df``
    between its entries above 30 degrees of freedom)."""
    try:
        import scipy.stats as stats
    except ImportError:
        stats = None
    if stats is not None:
        return float(stats.t.ppf(0.5 + confidence / 2.0, df))
    key = next((c for c in _T_TABLE if abs(c - confidence) < 1e-12), None)
    if key is None:
        raise ValueError(
            f"confidence must be one of {sorted(_T_TABLE)} without scipy installed, got {confidence}"
        )
    return float(np.interp(1.0 / df, (1.0 / _T_DF)[::-1], np.array(_T_TABLE[key])[::-1]))


def paired_t_interval(a: Any, b: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Confidence interval of the mean paired difference ``a - b`` (Student t over pairs).

    For scores of two methods on the same seeds (same scenes, same noise): with
    ``d = a - b``, ``n`` pairs and ``s`` the sample standard deviation of ``d``, the interval is
    ``mean(d) +- t_{(1 + confidence)/2, n-1} * s / sqrt(n)``. The quantile comes from
    :mod:`scipy.stats` when installed, else from a table for confidence 0.9, 0.95 and 0.99.

    Two pairs are the minimum the formula accepts, but with one degree of freedom the interval
    is very wide and the spread estimate itself unreliable: a verdict (a win or a loss when the
    interval excludes 0) needs at least 3 pairs.

    Args:
        a: scores of the first method, one per seed (sequence, array or tensor).
        b: scores of the second method on the same seeds, in the same order.
        confidence: the coverage, in ``(0, 1)``.

    Returns:
        ``(mean_diff, low, high)`` as floats.

    Raises:
        ValueError: fewer than 2 pairs, different lengths, non-finite values, or a confidence
            outside ``(0, 1)`` (without scipy: not in the table).

    Example:
        >>> mean, low, high = paired_t_interval([0.91, 0.88, 0.93], [0.89, 0.87, 0.90])
        >>> round(mean, 4), round(low, 4), round(high, 4)
        (0.02, -0.0048, 0.0448)
    """
    x = np.asarray(_to_numpy(a, "a"), dtype=np.float64).reshape(-1)
    y = np.asarray(_to_numpy(b, "b"), dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError(f"a and b must hold at least 2 pairs, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("a and b must be finite, got NaN or inf values")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)):
        raise TypeError(f"confidence must be a number, got {type(confidence).__name__}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = x - y
    mean = float(d.mean())
    half = _t_quantile(float(confidence), d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return mean, mean - half, mean + half
