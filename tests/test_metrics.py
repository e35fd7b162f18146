"""Tests of cnnconv.evaluation.metrics: BSDS boundary evaluation and orientation error.

Oracles: hand-checked small maps; an exact maximum matching from networkx and a brute-force
augmenting-path matcher; a dense min-cost assignment from scipy.optimize.linear_sum_assignment;
skimage.morphology.thin; and a literal loop port of the BSDS summary code (collect_eval_bdry.m /
findBestRPF / Dollar's AP and R50).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnconv.evaluation.metrics import (
    BoundaryEvaluation,
    boundary_counts,
    bsds_thresholds,
    evaluate_boundaries,
    match_boundaries,
    orientation_error,
    resolve_max_dist,
    summarize_counts,
    thin_boundaries,
)

nx = pytest.importorskip("networkx")
linear_sum_assignment = pytest.importorskip("scipy.optimize").linear_sum_assignment
sk_thin = pytest.importorskip("skimage.morphology").thin

# ------------------------------------------------------------------------------------------
# Independent references
# ------------------------------------------------------------------------------------------


def _candidate_graph(pred, gt, radius):
    p = [tuple(x) for x in np.argwhere(pred)]
    g = [tuple(x) for x in np.argwhere(gt)]
    adj = {
        i: [j for j, (gr, gc) in enumerate(g) if (pr - gr) ** 2 + (pc - gc) ** 2 <= radius**2 + 1e-9]
        for i, (pr, pc) in enumerate(p)
    }
    return p, g, adj


def brute_force_matching(pred, gt, radius) -> int:
    """Maximum matching by Kuhn's augmenting paths on the explicit candidate graph."""
    p, g, adj = _candidate_graph(pred, gt, radius)
    owner = [-1] * len(g)

    def augment(i, seen):
        for j in adj[i]:
            if not seen[j]:
                seen[j] = True
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, [False] * len(g)) for i in range(len(p)))


def networkx_matching(pred, gt, radius) -> int:
    p, g, adj = _candidate_graph(pred, gt, radius)
    graph = nx.Graph()
    top = [("p", i) for i in range(len(p))]
    graph.add_nodes_from(top)
    graph.add_nodes_from(("g", j) for j in range(len(g)))
    graph.add_edges_from((("p", i), ("g", j)) for i, js in adj.items() for j in js)
    return len(nx.bipartite.hopcroft_karp_matching(graph, top_nodes=top)) // 2


def dense_min_cost(pred, gt, radius) -> tuple[int, float]:
    """Max-cardinality min-cost matching by a dense assignment with a big-M non-edge cost."""
    p, g, adj = _candidate_graph(pred, gt, radius)
    if not p or not g:
        return 0, 0.0
    big = 1e6
    cost = np.full((len(p), len(g)), big)
    for i, js in adj.items():
        for j in js:
            cost[i, j] = math.dist(p[i], g[j])
    r, c = linear_sum_assignment(cost)
    real = cost[r, c] < big
    return int(real.sum()), float(cost[r, c][real].sum())


def bsds_summary_reference(image_counts, thresholds):
    """Literal loop port of the BSDS summary formulas (MATLAB semantics) and of R50 as defined in
    cnnconv.evaluation.metrics (the largest recall with precision >= 0.5)."""

    def rpf(cr, sr, cp, sp):
        r = cr / (sr + (sr == 0))
        p = cp / (sp + (sp == 0))
        f = 2 * p * r / (p + r + ((p + r) == 0))
        return r, p, f

    tot = image_counts.sum(axis=0)
    R, P, F = [], [], []
    for t in range(len(thresholds)):
        r, p, f = rpf(*tot[t])
        R.append(r)
        P.append(p)
        F.append(f)
    # findBestRPF
    best_f = -1.0
    best_t = None
    for i in range(1, len(thresholds)):
        for k in range(101):
            a = k / 100
            rt = a * R[i] + (1 - a) * R[i - 1]
            pt = a * P[i] + (1 - a) * P[i - 1]
            ft = 2 * pt * rt / (pt + rt) if pt + rt > 0 else 0.0
            if ft > best_f:
                best_f, best_t = ft, a * thresholds[i] + (1 - a) * thresholds[i - 1]
    # OIS: per image, the first threshold with the highest F
    sel = np.zeros(4)
    for img in image_counts:
        fs = [rpf(*img[t])[2] for t in range(len(thresholds))]
        sel += img[int(np.argmax(fs))]
    ois = rpf(*sel)[2]
    # AP: precision at each distinct recall (the highest), interp1 on 0:0.01:1, NaN -> 0
    pts = {}
    for r, p in zip(R, P):
        pts[r] = max(pts.get(r, -1.0), p)
    ru = sorted(pts)
    ap = 0.0
    if len(ru) > 1:
        for k in range(101):
            x = k / 100
            for a, b in zip(ru[:-1], ru[1:]):
                if a <= x <= b:
                    ap += pts[a] + (pts[b] - pts[a]) * (x - a) / (b - a)
                    break
        ap *= 0.01
    # R50: the largest recall with precision >= 0.5 along the polyline in threshold order
    r50 = 0.0
    for i in range(len(R)):
        if P[i] >= 0.5:
            r50 = max(r50, R[i])
        if i > 0 and (P[i - 1] - 0.5) * (P[i] - 0.5) < 0:
            a = (0.5 - P[i - 1]) / (P[i] - P[i - 1])
            r50 = max(r50, R[i - 1] + a * (R[i] - R[i - 1]))
    return best_f, best_t, ois, ap, r50


def _random_maps(rng, h, w, dens_p, dens_g):
    return rng.uniform(size=(h, w)) < dens_p, rng.uniform(size=(h, w)) < dens_g


# ------------------------------------------------------------------------------------------
# Thinning
# ------------------------------------------------------------------------------------------


def test_thinning_equals_skimage_on_random_maps():
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = rng.integers(1, 40, size=2)
        m = rng.uniform(size=(h, w)) < rng.uniform(0.05, 0.95)
        np.testing.assert_array_equal(thin_boundaries(m), sk_thin(m))


def test_thinning_equals_skimage_on_thick_blobs():
    rng = np.random.default_rng(1)
    m = np.zeros((60, 70), dtype=bool)
    for _ in range(6):
        r, c = rng.integers(5, 55, size=2)
        m[r - 4 : r + rng.integers(2, 6), c - 3 : c + rng.integers(2, 9)] = True
    out = thin_boundaries(torch.from_numpy(m))
    np.testing.assert_array_equal(out, sk_thin(m))
    assert out.sum() < m.sum()


def test_thinning_keeps_one_pixel_lines():
    m = np.zeros((10, 12), dtype=bool)
    m[4, 1:11] = True
    m[8, 3] = True
    np.testing.assert_array_equal(thin_boundaries(m), m)


# ------------------------------------------------------------------------------------------
# Matching: hand-checked cases
# ------------------------------------------------------------------------------------------


def _line(h=20, w=20, row=10, c0=3, c1=17):
    m = np.zeros((h, w), dtype=bool)
    m[row, c0:c1] = True
    return m


def test_shift_within_tolerance_matches_fully():
    gt = _line()
    pred = np.roll(gt, 1, axis=0)  # one pixel down
    mp, mg = match_boundaries(pred, gt, max_dist=1.0)
    assert mp.sum() == mg.sum() == gt.sum()
    np.testing.assert_array_equal(mp, pred)
    np.testing.assert_array_equal(mg, gt)


def test_shift_beyond_tolerance_does_not_match():
    gt = _line()
    pred = np.roll(gt, 2, axis=0)  # two pixels down
    mp, mg = match_boundaries(pred, gt, max_dist=1.9)
    assert mp.sum() == 0 and mg.sum() == 0
    mp, mg = match_boundaries(pred, gt, max_dist=2.0)  # the tolerance is inclusive
    assert mp.sum() == gt.sum()


def test_diagonal_shift_uses_euclidean_distance():
    gt = _line()
    pred = np.roll(np.roll(gt, 1, axis=0), 1, axis=1)  # sqrt(2) away (or 1 along the line)
    # each shifted pixel is sqrt(2) from its partner but 1 from the next pixel of the line,
    # except the last one, which is 1 from nothing: 13 of 14 match at tolerance 1
    mp, _ = match_boundaries(pred, gt, max_dist=1.0)
    assert mp.sum() == gt.sum() - 1
    mp, _ = match_boundaries(pred, gt, max_dist=1.42)
    assert mp.sum() == gt.sum()


def test_one_to_one_two_predictions_one_true_pixel():
    gt = np.zeros((9, 9), dtype=bool)
    gt[4, 4] = True
    pred = np.zeros_like(gt)
    pred[4, 3] = pred[4, 5] = True  # both within 1 px of the single true pixel
    mp, mg = match_boundaries(pred, gt, max_dist=1.0)
    assert mp.sum() == 1 and mg.sum() == 1
    c = boundary_counts(pred * 0.5, gt, thresholds=[0.25], max_dist=1.0, thin=False)
    np.testing.assert_array_equal(c, [[1, 1, 1, 2]])  # recall 1, precision 1/2


def test_precision_recall_by_hand():
    # true: a line of 10 pixels; predicted: 6 pixels one row above the line (matchable) and
    # 3 pixels far away (false positives). Recall 6/10, precision 6/9.
    gt = np.zeros((16, 16), dtype=bool)
    gt[5, 2:12] = True
    pred = np.zeros((16, 16))
    pred[4, 2:8] = 0.9
    pred[13, [2, 6, 10]] = 0.6
    c = boundary_counts(pred, gt, thresholds=[0.5, 0.7, 0.95], max_dist=1.0)
    np.testing.assert_array_equal(c, [[6, 10, 6, 9], [6, 10, 6, 6], [0, 10, 0, 0]])
    res = evaluate_boundaries([pred], [gt], thresholds=[0.5], max_dist=1.0)
    np.testing.assert_allclose(res.recall, [0.6])
    np.testing.assert_allclose(res.precision, [6 / 9])
    np.testing.assert_allclose(res.ods, 2 * 0.6 * (6 / 9) / (0.6 + 6 / 9))


def test_fractional_tolerance_is_relative_to_diagonal():
    assert resolve_max_dist(0.0075, (200, 200)) == pytest.approx(0.0075 * math.hypot(200, 200))
    gt = np.zeros((200, 200), dtype=bool)
    gt[100, 50] = True
    near = np.zeros_like(gt)
    near[102, 50] = True  # 2.0 px <= 2.12
    far = np.zeros_like(gt)
    far[102, 51] = True  # 2.24 px > 2.12
    assert match_boundaries(near, gt)[0].sum() == 1
    assert match_boundaries(far, gt)[0].sum() == 0


def test_empty_maps():
    gt = np.zeros((8, 8), dtype=bool)
    pred = np.zeros((8, 8))
    c = boundary_counts(pred, gt, thresholds=3, max_dist=1)
    np.testing.assert_array_equal(c, np.zeros((3, 4)))
    mp, mg, pairs = match_boundaries(pred > 0, gt, 1.0, return_pairs=True)
    assert pairs.shape == (0, 4) and not mp.any() and not mg.any()


# ------------------------------------------------------------------------------------------
# Matching: comparison with independent implementations on random maps
# ------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(3, 24),
    w=st.integers(3, 24),
    dens_p=st.floats(0.02, 0.6),
    dens_g=st.floats(0.02, 0.6),
    radius=st.sampled_from([1.0, 1.5, 2.0, 2.9]),  # >= 1: pixels
)
def test_matching_cardinality_equals_brute_force(seed, h, w, dens_p, dens_g, radius):
    rng = np.random.default_rng(seed)
    pred, gt = _random_maps(rng, h, w, dens_p, dens_g)
    expected = brute_force_matching(pred, gt, radius)
    for matching in ("max_cardinality", "min_cost"):
        mp, mg = match_boundaries(pred, gt, radius, matching=matching)
        assert mp.sum() == mg.sum() == expected
        assert not (mp & ~pred).any() and not (mg & ~gt).any()


def test_matching_equals_networkx_on_larger_maps():
    rng = np.random.default_rng(7)
    for trial in range(9):
        h, w = rng.integers(24, 44, size=2)
        pred, gt = _random_maps(rng, h, w, rng.uniform(0.02, 0.25), rng.uniform(0.02, 0.25))
        md = [0.0075, 0.02, 0.04][trial % 3]
        radius = resolve_max_dist(md, (h, w))
        expected = networkx_matching(pred, gt, radius)
        mp, mg, pairs = match_boundaries(pred, gt, md, return_pairs=True)
        assert mp.sum() == mg.sum() == expected
        # every pair is within tolerance, and each pixel is used once
        d = np.hypot(pairs[:, 0] - pairs[:, 2], pairs[:, 1] - pairs[:, 3])
        assert (d <= radius + 1e-9).all()
        assert len({tuple(x) for x in pairs[:, :2]}) == len({tuple(x) for x in pairs[:, 2:]}) == len(pairs)


def test_min_cost_matching_equals_dense_assignment():
    rng = np.random.default_rng(3)
    for _ in range(15):
        h, w = rng.integers(8, 30, size=2)
        pred, gt = _random_maps(rng, h, w, rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4))
        radius = float(rng.choice([1.0, 1.5, 2.5]))
        n_ref, cost_ref = dense_min_cost(pred, gt, radius)
        _, _, pairs = match_boundaries(pred, gt, radius, matching="min_cost", return_pairs=True)
        cost = np.hypot(pairs[:, 0] - pairs[:, 2], pairs[:, 1] - pairs[:, 3]).sum()
        assert len(pairs) == n_ref
        assert cost == pytest.approx(cost_ref, abs=1e-6)


def _draw_225():
    """A dense 35x35 draw (radius 4) on which the sparse solver alone ran for minutes."""
    rng = np.random.default_rng(225)
    size, dens, radius = int(rng.integers(8, 40)), rng.uniform(0.05, 0.9), rng.uniform(1, 4)
    return rng.random((size, size)) < dens, rng.random((size, size)) < dens, radius


@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_min_cost_both_solvers_against_global_assignment(solver, monkeypatch):
    """Each per-component solver against one dense assignment over all pixels."""
    rng = np.random.default_rng(5)
    cases = [_random_maps(rng, s, s, d, d) + (r,) for s, d, r in ((14, 0.4, 2.0), (20, 0.15, 3.0), (12, 0.6, 1.5))]
    if solver == "sparse":
        monkeypatch.setattr("cnnconv.evaluation.matching._DENSE_PAIRS", 0)
    else:
        cases.append(_draw_225())
    for pred, gt, radius in cases:
        n_ref, cost_ref = dense_min_cost(pred, gt, radius)
        _, _, pairs = match_boundaries(pred, gt, radius, matching="min_cost", return_pairs=True)
        assert len(pairs) == n_ref
        assert np.hypot(pairs[:, 0] - pairs[:, 2], pairs[:, 1] - pairs[:, 3]).sum() == pytest.approx(cost_ref, abs=1e-6)


def test_counts_equal_reference_pipeline_with_several_ground_truths():
    # reference: BSDS loop (threshold, thin with skimage, match each GT by dense min-cost,
    # union of matched predictions) written out independently
    rng = np.random.default_rng(11)
    h, w = 24, 28
    gts = [rng.uniform(size=(h, w)) < 0.08 for _ in range(3)]
    pred = rng.uniform(size=(h, w)) * (rng.uniform(size=(h, w)) < 0.3)
    thr = [0.2, 0.5, 0.8]
    radius = 1.5
    got = boundary_counts(pred, gts, thresholds=thr, max_dist=radius, matching="min_cost")
    for t_i, t in enumerate(thr):
        b = sk_thin(pred >= t)
        cnt_r, acc = 0, np.zeros_like(b)
        for g in gts:
            p, gl, adj = _candidate_graph(b, g, radius)
            big = 1e6
            cost = np.full((max(len(p), 1), max(len(gl), 1)), big)
            for i, js in adj.items():
                for j in js:
                    cost[i, j] = math.dist(p[i], gl[j])
            r, c = linear_sum_assignment(cost)
            real = cost[r, c] < big
            cnt_r += int(real.sum())
            for i in r[real]:
                acc[p[i]] = True
        expected = [cnt_r, sum(int(g.sum()) for g in gts), int(acc.sum()), int(b.sum())]
        # the union of matched predictions can depend on ties between equal-cost optima, so
        # compare the recall counts exactly and the precision count to within ties
        assert got[t_i, [0, 1, 3]].tolist() == [expected[0], expected[1], expected[3]]
        assert abs(got[t_i, 2] - expected[2]) <= 2


def test_auto_matching_single_gt_equals_max_cardinality():
    rng = np.random.default_rng(5)
    gt = rng.uniform(size=(40, 40)) < 0.1
    pred = rng.uniform(size=(40, 40)) * (rng.uniform(size=(40, 40)) < 0.3)
    a = boundary_counts(pred, gt, thresholds=9, max_dist=2, matching="auto")
    b = boundary_counts(pred, gt, thresholds=9, max_dist=2, matching="min_cost")
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------
# Summary numbers
# ------------------------------------------------------------------------------------------


def _two_image_case():
    # image A: 10 true pixels predicted at 0.8, 10 far false pixels at 0.3 (best t in (0.3, 0.8])
    # image B: 10 true pixels predicted at 0.3, 10 far false pixels at 0.5 (best F at t <= 0.3)
    gt = np.zeros((20, 20), dtype=bool)
    gt[3, 5:15] = True
    a = np.zeros((20, 20))
    a[3, 5:15] = 0.8
    a[15, 0:20:2] = 0.3
    b = np.zeros((20, 20))
    b[3, 5:15] = 0.3
    b[15, 0:20:2] = 0.5
    return [a, b], [gt, gt]


def test_ods_ois_ap_r50_by_hand():
    preds, gts = _two_image_case()
    thr = np.round(np.arange(1, 10) / 10, 10)
    res = evaluate_boundaries(preds, gts, thresholds=thr, max_dist=1.0)
    # dataset curve: t<=0.3: R=1, P=1/2; t in {0.4, 0.5}: R=1/2, P=1/2; t in 0.6..0.8: R=1/2, P=1;
    # t=0.9: R=0, P=0. The best F, also along the interpolated curve, is 2/3.
    np.testing.assert_allclose(res.recall, [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0])
    np.testing.assert_allclose(res.precision, [0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 0])
    assert res.ods == pytest.approx(2 / 3)
    # OIS: A perfect at its best threshold (10, 10, 10, 10), B at t<=0.3 (10, 10, 10, 20):
    # R = 1, P = 2/3, F = 0.8
    assert res.ois == pytest.approx(0.8)
    assert res.ois_recall == pytest.approx(1.0) and res.ois_precision == pytest.approx(2 / 3)
    np.testing.assert_allclose(res.image_thresholds, [0.4, 0.1])
    # AP: P(r) = 2r on [0, 0.5], 1.5 - r on [0.5, 1], sampled at r = 0, 0.01, ..., 1 times 0.01
    assert res.ap == pytest.approx(0.6275)
    # R50: recall at precision 0.5 is 1 (the highest recall with that precision)
    assert res.r50 == pytest.approx(1.0)
    d = res.to_dict()
    assert d["ods"] == res.ods and d["n_images"] == 2 and len(d["recall"]) == 9
    assert set(res.to_dict(curves=False)) == {
        "ods", "ods_threshold", "ods_recall", "ods_precision", "ois", "ois_recall",
        "ois_precision", "ap", "r50", "max_dist", "n_images",
    }


def test_perfect_prediction():
    gt = torch.zeros(3, 32, 32, dtype=torch.bool)
    gt[:, 10, 4:28] = True
    gt[:, 4:28, 20] = True
    res = evaluate_boundaries(gt.float() * 0.7, gt, thresholds=99, max_dist=1)
    assert res.ods == pytest.approx(1.0) and res.ois == pytest.approx(1.0)
    # the curve has only the points (R=1, P=1) and (R=0, P=0): AP = 0.505 by the BSDS formula
    assert res.ap == pytest.approx(0.505)
    # R50: precision 1 at recall 1 (Dollar's formula would give 0.5 here, pulled down by the
    # (R=0, P=0) points of the thresholds that keep no pixel)
    assert res.r50 == pytest.approx(1.0)


def test_summary_equals_literal_bsds_port_on_random_counts():
    rng = np.random.default_rng(2)
    for _ in range(10):
        n, t = int(rng.integers(1, 6)), int(rng.integers(2, 15))
        sum_r = rng.integers(0, 50, size=(n, 1)).repeat(t, axis=1).astype(float)
        cnt_r = np.sort(rng.uniform(size=(n, t)), axis=1)[:, ::-1] * sum_r
        sum_p = np.sort(rng.integers(0, 80, size=(n, t)), axis=1)[:, ::-1].astype(float)
        cnt_p = np.floor(rng.uniform(size=(n, t)) * sum_p)
        counts = np.stack([np.floor(cnt_r), sum_r, cnt_p, sum_p], axis=2)
        thr = np.sort(rng.uniform(0.01, 1, size=t))
        res = summarize_counts(counts, thr)
        ods, ods_t, ois, ap, r50 = bsds_summary_reference(counts, thr)
        assert res.ods == pytest.approx(ods, abs=1e-12)
        assert res.ods_threshold == pytest.approx(ods_t, abs=1e-12)
        assert res.ois == pytest.approx(ois, abs=1e-12)
        assert res.ap == pytest.approx(ap, abs=1e-12)
        assert res.r50 == pytest.approx(r50, abs=1e-12)


def test_evaluate_matches_per_image_counts_and_accepts_layouts():
    rng = np.random.default_rng(4)
    gts = [rng.uniform(size=(30, 30)) < 0.05 for _ in range(3)]
    preds = [rng.uniform(size=(30, 30)) ** 3 for _ in range(3)]
    res = evaluate_boundaries(preds, gts, thresholds=15, max_dist=1.5)
    assert isinstance(res, BoundaryEvaluation)
    for i in range(3):
        np.testing.assert_array_equal(
            res.image_counts[i], boundary_counts(preds[i], gts[i], thresholds=15, max_dist=1.5)
        )
    np.testing.assert_array_equal(res.counts, res.image_counts.sum(axis=0))
    stacked = evaluate_boundaries(
        torch.tensor(np.stack(preds))[:, None], torch.tensor(np.stack(gts)), thresholds=15, max_dist=1.5
    )
    np.testing.assert_array_equal(stacked.image_counts, res.image_counts)
    assert 0 <= res.ods <= 1 and 0 <= res.ap <= 1 and res.ois >= res.ods - 1e-12


def test_bsds_threshold_grid():
    np.testing.assert_allclose(bsds_thresholds(99), np.arange(1, 100) / 100)
    np.testing.assert_allclose(bsds_thresholds([0.5, 0.2, 0.5]), [0.2, 0.5])


def test_bad_inputs_raise():
    gt = np.zeros((8, 8), dtype=bool)
    with pytest.raises(ValueError, match=r"predictions\[0\] must lie in \[0, 1\].*got values from"):
        evaluate_boundaries([np.full((8, 8), 1.5)], [gt])
    with pytest.raises(ValueError, match="same number of images, got 2 and 1"):
        evaluate_boundaries([np.zeros((8, 8))] * 2, [gt])
    with pytest.raises(ValueError, match=r"has shape \(8, 8\) but the prediction has shape \(9, 9\)"):
        evaluate_boundaries([np.zeros((9, 9))], [gt])
    with pytest.raises(ValueError, match="max_dist must be positive and finite, got -1.0"):
        evaluate_boundaries([np.zeros((8, 8))], [gt], max_dist=-1.0)
    with pytest.raises(ValueError, match=r"thresholds must lie in \(0, 1\]"):
        evaluate_boundaries([np.zeros((8, 8))], [gt], thresholds=[0.0, 0.5])
    with pytest.raises(ValueError, match="matching must be"):
        evaluate_boundaries([np.zeros((8, 8))], [gt], matching="greedy")
    with pytest.raises(ValueError, match="must be binary"):
        match_boundaries(np.full((8, 8), 0.5), gt)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_boundaries([np.full((8, 8), np.nan)], [gt])
    with pytest.raises(TypeError, match="must be a tensor, an array or a list, got str"):
        evaluate_boundaries("x", [gt])


def test_counts_and_evaluation_take_the_same_checked_keywords():
    rng = np.random.default_rng()
    gt = rng.uniform(size=(12, 12)) < 0.2
    pred = rng.uniform(size=(12, 12)) * rng.integers(0, 2, size=(12, 12))
    for fn, args in ((boundary_counts, (pred, gt)), (evaluate_boundaries, ([pred], [gt]))):
        with pytest.raises(TypeError, match="thin must be a bool, got int"):
            fn(*args, thin=1)
        with pytest.raises(TypeError, match="unexpected keyword argument 'threshold'"):
            fn(*args, threshold=9)
        with pytest.raises(ValueError, match="matching must be one of"):
            fn(*args, matching="greedy")
    # the defaults: the BSDS grid, tolerance 0.0075 of the diagonal, thinning, automatic matching
    explicit = {"thresholds": 99, "max_dist": 0.0075, "thin": True, "matching": "auto"}
    np.testing.assert_array_equal(boundary_counts(pred, gt), boundary_counts(pred, gt, **explicit))
    res = evaluate_boundaries([pred], [gt])
    assert res.to_dict() == evaluate_boundaries([pred], [gt], **explicit).to_dict()
    np.testing.assert_array_equal(res.image_counts[0], boundary_counts(pred, gt))


# ------------------------------------------------------------------------------------------
# Orientation error
# ------------------------------------------------------------------------------------------


def test_orientation_error_modulo_180_by_hand():
    f64 = torch.float64
    pred = torch.tensor([0.0, math.pi, math.radians(179), math.radians(30), 1.0], dtype=f64)
    true = torch.tensor([0.0, 0.0, math.radians(1), math.radians(-60), 2.0], dtype=f64)
    mask = torch.tensor([True, True, True, True, False])
    e = orientation_error(pred, true, mask)
    # errors: 0, 0 (opposite normals), 2 (179 vs 1 modulo 180), 90
    assert e.count == 4
    assert e.mean == pytest.approx(23.0)
    assert e.median == pytest.approx(1.0)


def test_orientation_error_against_loop_reference():
    rng = np.random.default_rng(0)
    a = rng.uniform(-4 * np.pi, 4 * np.pi, size=(17, 19))
    b = rng.uniform(-np.pi, np.pi, size=(17, 19))
    m = rng.uniform(size=(17, 19)) < 0.4
    errs = []
    for x, y in zip(a[m], b[m]):
        d = math.degrees(abs(x - y)) % 180.0
        errs.append(min(d, 180.0 - d))
    e = orientation_error(a, b, m)
    assert e.mean == pytest.approx(np.mean(errs)) and e.median == pytest.approx(np.median(errs))
    assert 0 <= min(errs) and max(errs) <= 90


def test_orientation_error_bad_inputs():
    with pytest.raises(ValueError, match="at least one pixel"):
        orientation_error(np.zeros(3), np.zeros(3), np.zeros(3, dtype=bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        orientation_error(np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        orientation_error(np.zeros(3), np.zeros(4), np.ones(3, dtype=bool))
