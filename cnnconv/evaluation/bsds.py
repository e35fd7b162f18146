"""Boundary detection scored by the BSDS protocol (Martin, Fowlkes and Malik, 2004; Arbelaez et al., 2011).

A threshold sweep, morphological thinning of every binarised map
(:func:`cnnconv.evaluation.thinning.thin_boundaries`), one-to-one matching of predicted to true
boundary pixels within a distance tolerance (:mod:`cnnconv.evaluation.matching`, where the
tolerance and the matching are described), and the summary numbers ODS F, OIS F, AP and R50.

Protocol details and deviations from the BSDS MATLAB/C++ code (``correspondPixels``,
``evaluation_bdry_image.m``, ``collect_eval_bdry.m``) and from P. Dollar's ``edgesEvalImg``:

* **Thresholds**: an integer ``n`` gives ``linspace(1/(n+1), 1 - 1/(n+1), n)`` as in BSDS; a
  pixel is predicted at threshold ``t`` when ``prediction >= t``.
* **Thinning**: each binarised prediction is thinned to one-pixel width by
  :func:`~cnnconv.evaluation.thinning.thin_boundaries`, the algorithm of MATLAB's
  ``bwmorph(bmap, 'thin', inf)`` and :func:`skimage.morphology.thin`. Ground truth is used as
  given (it is expected to be thin already).
* **Matching**: the counts of matched pixels depend only on the cardinality of the matching,
  so with one ground truth per image a maximum-cardinality matching and BSDS's min-cost one give
  identical counts; with several ground truths the precision counts the union of predicted
  pixels matched to any of them, which depends on *which* maximum matching is chosen, and
  ``matching="auto"`` then uses the min-cost one like BSDS.
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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

import numpy as np
import torch

from cnnconv._utils.checks import check_choice
from cnnconv.evaluation._inputs import as_binary_map, to_numpy
from cnnconv.evaluation.matching import _match_pixels, resolve_max_dist
from cnnconv.evaluation.thinning import thin_boundaries

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "BoundaryEvaluation",
    "BoundarySweep",
    "boundary_counts",
    "bsds_thresholds",
    "evaluate_boundaries",
    "summarize_counts",
]


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
        raise TypeError(f"thresholds must be an int or a sequence of floats, got {thresholds!r}") from exc
    if t.size == 0:
        raise ValueError("thresholds must not be empty, got 0 values")
    if not np.all(np.isfinite(t)) or t.min() <= 0 or t.max() > 1:
        raise ValueError(f"thresholds must lie in (0, 1], got values from {t.min()} to {t.max()}")
    return np.unique(t)


def _as_prediction(x: Any, i: int) -> np.ndarray:
    a = to_numpy(x, f"predictions[{i}]")
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
            f"predictions[{i}] must lie in [0, 1] (normalise the detector response), got values from {lo} to {hi}"
        )
    return a


def _split_batch(x: Any, name: str) -> list[Any]:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if x.ndim == 2:
            return [x]
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ValueError(
                f"{name} must be (N, H, W), (N, 1, H, W) or a list of (H, W) maps, got shape {tuple(x.shape)}"
            )
        return list(x)
    if isinstance(x, (list, tuple)):
        return list(x)
    raise TypeError(f"{name} must be a tensor, an array or a list, got {type(x).__name__}")


def _gt_list(x: Any, i: int, shape: tuple[int, int]) -> list[np.ndarray]:
    name = f"ground_truths[{i}]"
    if isinstance(x, (list, tuple)):
        gts = [as_binary_map(g, f"{name}[{k}]") for k, g in enumerate(x)]
        if not gts:
            raise ValueError(f"{name} must hold at least one ground truth map, got an empty list")
    else:
        a = to_numpy(x, name)
        if a.ndim == 3 and a.shape[0] != 1:
            gts = [as_binary_map(g, f"{name}[{k}]") for k, g in enumerate(a)]
        else:
            gts = [as_binary_map(a, name)]
    for g in gts:
        if g.shape != shape:
            raise ValueError(f"{name} has shape {g.shape} but the prediction has shape {shape}")
    return gts


class BoundarySweep(TypedDict, total=False):
    """Keyword arguments of :func:`boundary_counts` and :func:`evaluate_boundaries`.

    Attributes:
        thresholds: a count (BSDS grid) or explicit values in ``(0, 1]``, see
            :func:`bsds_thresholds` (default 99).
        max_dist: tolerance, a fraction of the image diagonal when ``< 1`` (BSDS 0.0075, the
            default), else pixels.
        thin: thin each binarised prediction (default ``True``, as BSDS; turn off only for maps
            already one pixel wide at every threshold).
        matching: ``"auto"`` (the default: maximum cardinality for one ground truth, min cost for
            several), ``"max_cardinality"`` or ``"min_cost"`` (see
            :func:`cnnconv.evaluation.matching.match_boundaries`).
    """

    thresholds: int | Sequence[float] | np.ndarray | torch.Tensor
    max_dist: float
    thin: bool
    matching: str


class _Sweep(NamedTuple):
    """The checked :class:`BoundarySweep` arguments, thresholds as a grid."""

    thresholds: np.ndarray
    max_dist: float
    thin: bool
    matching: str


def _sweep(
    thresholds: int | Sequence[float] | np.ndarray | torch.Tensor = 99,
    max_dist: float = 0.0075,
    thin: bool = True,
    matching: str = "auto",
) -> _Sweep:
    """Checks the sweep arguments; the defaults of :class:`BoundarySweep` live here."""
    if not isinstance(thin, bool):
        raise TypeError(f"thin must be a bool, got {type(thin).__name__}")
    check_choice(matching, "matching", ("auto", "max_cardinality", "min_cost"))
    resolve_max_dist(max_dist, (1, 1))
    return _Sweep(bsds_thresholds(thresholds), max_dist, thin, matching)


def boundary_counts(prediction: Any, ground_truth: Any, **sweep: Unpack[BoundarySweep]) -> np.ndarray:
    """BSDS counts of one image over the threshold sweep.

    Args:
        prediction: soft boundary map in ``[0, 1]``, shape ``(H, W)``.
        ground_truth: a binary ``(H, W)`` map, a ``(K, H, W)`` stack or a list of ``K`` maps.
        **sweep: ``thresholds``, ``max_dist``, ``thin``, ``matching``, see
            :class:`BoundarySweep`.

    Returns:
        float64 array ``(T, 4)`` with columns ``cnt_r, sum_r, cnt_p, sum_p``.

    Example:
        >>> import numpy as np
        >>> gt = np.zeros((16, 16), bool); gt[8, 2:14] = True
        >>> boundary_counts(gt * 0.7, gt, thresholds=[0.5, 0.9], max_dist=1).tolist()
        [[12.0, 12.0, 12.0, 12.0], [0.0, 12.0, 0.0, 0.0]]
    """
    return _image_counts(_as_prediction(prediction, 0), ground_truth, 0, _sweep(**sweep))


def _image_counts(pred: np.ndarray, gt_any: Any, i: int, sweep: _Sweep) -> np.ndarray:
    """Counts ``(T, 4)`` of image ``i``: the checked prediction against its ground truth(s)."""
    gts = _gt_list(gt_any, i, pred.shape)
    matching = sweep.matching
    if matching == "auto":
        matching = "max_cardinality" if len(gts) == 1 else "min_cost"
    thr = sweep.thresholds
    radius = resolve_max_dist(sweep.max_dist, pred.shape)
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
        if sweep.thin and n_above[t_i] > 0:
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


def _rpf(cnt_r: Any, sum_r: Any, cnt_p: Any, sum_p: Any) -> tuple[Any, Any, Any]:
    """Recall, precision and F from counts (arrays or scalars), 0 where a denominator is 0."""
    r = cnt_r / (sum_r + (sum_r == 0))
    p = cnt_p / (sum_p + (sum_p == 0))
    f = 2 * p * r / (p + r + ((p + r) == 0))
    return r, p, f


def _best_interpolated(t: np.ndarray, r: np.ndarray, p: np.ndarray) -> tuple[float, float, float, float]:
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


def _average_precision(r: np.ndarray, p: np.ndarray) -> float:
    """BSDS AP: precision interpolated over recall ``0, 0.01, ..., 1``, summed, times 0.01."""
    ru = np.unique(r)
    if ru.size < 2:
        return 0.0
    pu = np.array([p[r == v].max() for v in ru])
    grid = np.arange(101) / 100.0
    pi = np.interp(grid, ru, pu, left=0.0, right=0.0)
    return float(pi.sum() * 0.01)


def _r50(r: np.ndarray, p: np.ndarray) -> float:
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


def summarize_counts(image_counts: np.ndarray, thresholds: np.ndarray, max_dist: float = 0.0075) -> BoundaryEvaluation:
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
        raise ValueError(f"image_counts must have shape (N>0, T={thr.size}, 4), got {tuple(c.shape)}")
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


def evaluate_boundaries(predictions: Any, ground_truths: Any, **sweep: Unpack[BoundarySweep]) -> BoundaryEvaluation:
    """Scores soft boundary maps against ground truth by the BSDS protocol.

    Every detector must be given to this function the same way: a response already passed
    through the same non-maximum suppression and normalised to ``[0, 1]``. For each threshold the
    map is binarised (``>= t``), thinned, and matched one-to-one to each ground truth within
    ``max_dist`` (see the module docstring and :mod:`cnnconv.evaluation.matching` for the exact
    protocol and its deviations from BSDS).

    Args:
        predictions: ``(N, H, W)`` or ``(N, 1, H, W)`` tensor/array, or a list of ``(H, W)`` maps
            (sizes may differ between images), values in ``[0, 1]``.
        ground_truths: one entry per image: a binary ``(H, W)`` map, a ``(K, H, W)`` stack or a
            list of ``K`` maps (several annotators); or an ``(N, H, W)`` tensor/array.
        **sweep: ``thresholds``, ``max_dist``, ``thin``, ``matching``, see
            :class:`BoundarySweep`.

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
            f"predictions and ground_truths must hold the same number of images, got {len(preds)} and {len(gts)}"
        )
    if not preds:
        raise ValueError("predictions must hold at least one image, got 0")
    args = _sweep(**sweep)
    counts = np.stack([_image_counts(_as_prediction(p, i), g, i, args) for i, (p, g) in enumerate(zip(preds, gts))])
    return summarize_counts(counts, args.thresholds, args.max_dist)
