"""Run: python -m experiments.compare_bsds_reference

Compare cnnconv.evaluation.metrics with pyEdgeEval 0.2.8 (the BSDS correspondPixels C++ through Cython)
and with an exact maximum matching from networkx."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cnnconv.evaluation.data import make_scene
from cnnconv.evaluation.metrics import (boundary_counts, match_boundaries, resolve_max_dist,
                                        summarize_counts, thin_boundaries)
from cnnconv.functional import correlate2d

NEEDS = "Needs pyEdgeEval 0.2.8 (pip install pyedgeeval==0.2.8) and networkx (in the dev extra)."


def nx_max_matching(a: np.ndarray, b: np.ndarray, radius: float) -> int:
    """Size of an exact maximum matching of the pixels of ``a`` and ``b`` within ``radius``."""
    import networkx as nx

    g = nx.Graph(); P = list(map(tuple, np.argwhere(a))); G = list(map(tuple, np.argwhere(b)))
    g.add_nodes_from([("p",) + p for p in P]); g.add_nodes_from([("g",) + q for q in G])
    gs = set(G); r = int(np.floor(radius))
    for (i, j) in P:
        for di in range(-r, r + 1):
            for dj in range(-r, r + 1):
                if di * di + dj * dj <= radius * radius + 1e-9 and (i + di, j + dj) in gs:
                    g.add_edge(("p", i, j), ("g", i + di, j + dj))
    m = nx.bipartite.hopcroft_karp_matching(g, top_nodes=[("p",) + p for p in P])
    return len(m) // 2


def compare_matching(rng: np.random.Generator) -> None:
    """1. Matched counts on random binary maps: BSDS, cnnconv (both matchings) and the exact one."""
    from pyEdgeEval._lib import correspond_pixels

    stats = dict(n=0, bsds_eq=0, bsds_less=0, bsds_more=0, mine_eq=0, mc_eq=0)
    for trial in range(120):
        h, w = rng.integers(10, 50, 2)
        a = rng.uniform(size=(h, w)) < rng.uniform(0.01, 0.3)
        b = rng.uniform(size=(h, w)) < rng.uniform(0.01, 0.3)
        md = float(rng.choice([0.0075, 0.02, 0.05]))
        m1, m2, cost, oc = correspond_pixels(a.astype(float), b.astype(float), max_dist=md)
        ref = int((m1 > 0).sum())
        exact = nx_max_matching(a, b, resolve_max_dist(md, (h, w)))
        mine = int(match_boundaries(a, b, md)[0].sum())
        mc = int(match_boundaries(a, b, md, matching="min_cost")[0].sum())
        stats["n"] += 1; stats["bsds_eq"] += ref == exact; stats["bsds_less"] += ref < exact
        stats["bsds_more"] += ref > exact; stats["mine_eq"] += mine == exact; stats["mc_eq"] += mc == exact
    print(time.ctime(), flush=True); print("1. random binary maps (120 pairs, 10..50 px, tolerance 0.0075/0.02/0.05 of the diagonal):")
    print("  ", stats)


def thin_fixed(x: np.ndarray) -> np.ndarray:
    """pyEdgeEval's tables with the MATLAB/skimage loop (both subiterations each pass)."""
    from pyEdgeEval.preprocess.thin.thin import (_thin_iter_1_lut, _thin_iter_2_lut,
                                                 binary_image_to_lut_indices)

    t1, t2 = _thin_iter_1_lut(), _thin_iter_2_lut()
    while True:
        y = t1[binary_image_to_lut_indices(x)]; y = t2[binary_image_to_lut_indices(y)]
        if np.array_equal(x, y): return y
        x = y


def compare_thinning(rng: np.random.Generator) -> None:
    """2. Thinning of random maps: cnnconv against pyEdgeEval's, as shipped and as fixed."""
    from pyEdgeEval.preprocess import binary_thin

    same = same_fixed = 0
    for trial in range(200):
        h, w = rng.integers(5, 60, 2)
        m = rng.uniform(size=(h, w)) < rng.uniform(0.05, 0.9)
        same += np.array_equal(binary_thin(m), thin_boundaries(m))
        same_fixed += np.array_equal(thin_fixed(m), thin_boundaries(m))
    print(f"2. thinning, 200 random maps: identical to pyEdgeEval binary_thin {same}/200; "
          f"to its tables with both subiterations per pass {same_fixed}/200")


def compare_scenes() -> None:
    """3. Counts and ODS/OIS/AP/R50 of a Sobel magnitude on noisy synthetic scenes."""
    from pyEdgeEval._lib import correspond_pixels
    from pyEdgeEval.common.binary_label.evaluate_boundaries import evaluate_boundaries_threshold

    sob = torch.tensor([[-1., 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64)
    thr = np.linspace(0.01, 0.99, 99)
    ref_counts, my_counts, pe_counts = [], [], []
    t_ref = t_me = 0.0
    for seed in range(8):
        s = make_scene(96, seed=seed, noise=0.3)
        img = s["image"][0].double()
        gx = correlate2d(img, sob, "same", border="replicate", method="direct")
        gy = correlate2d(img, sob.T, "same", border="replicate", method="direct")
        mag = torch.hypot(gx, gy).numpy(); mag /= mag.max()
        gt = s["boundary"].numpy()
        t0 = time.time()
        rows = []
        for t in thr:  # BSDS matching on cnnconv's (MATLAB-equivalent) thinning
            bm = thin_boundaries(mag >= t)
            m1, m2, _, _ = correspond_pixels(bm.astype(float), gt.astype(float), max_dist=0.0075)
            rows.append(((m2 > 0).sum(), gt.sum(), (m1 > 0).sum(), bm.sum()))
        t1 = time.time()
        mine = boundary_counts(mag, gt, thresholds=thr, max_dist=0.0075)
        t2 = time.time(); t_ref += t1 - t0; t_me += t2 - t1
        cr, sr, cp, sp = evaluate_boundaries_threshold(thr, mag, gt, max_dist=0.0075)
        ref_counts.append(np.array(rows, float)); my_counts.append(mine); pe_counts.append(np.stack([cr, sr, cp, sp], 1))
    R, M, P = np.stack(ref_counts), np.stack(my_counts), np.stack(pe_counts)
    d = M - R
    print("3. 8 noisy synthetic scenes (96x96, noise 0.3), Sobel magnitude, 99 thresholds, tolerance 0.0075:")
    print(f"   same thinning, BSDS correspondPixels vs cnnconv matching: counts equal at {np.mean(np.all(d == 0, axis=2)):.4f} of (image, threshold);"
          f" cnnconv - BSDS matched counts: min {d[..., [0, 2]].min():.0f}, max {d[..., [0, 2]].max():.0f}")
    for name, C in (("BSDS matching + cnnconv thinning", R), ("pyEdgeEval end to end", P), ("cnnconv", M)):
        e = summarize_counts(C, thr, 0.0075)
        print(f"   {name:34s} ODS {e.ods:.4f}  OIS {e.ois:.4f}  AP {e.ap:.4f}  R50 {e.r50:.4f}")
    print(f"   time for the sweep: BSDS C++ matching loop {t_ref:.2f} s, cnnconv {t_me:.2f} s")


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="python -m experiments.compare_bsds_reference", epilog=NEEDS,
                            description=__doc__.split("\n", 2)[2]).parse_args(argv)
    try:
        import pyEdgeEval  # noqa: F401  (the BSDS C++ correspondPixels, through Cython)
        import networkx  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"this comparison cannot run without {exc.name}. {NEEDS}") from exc
    rng = np.random.default_rng(0)
    compare_matching(rng)
    compare_thinning(rng)
    compare_scenes()


if __name__ == "__main__":
    main()
