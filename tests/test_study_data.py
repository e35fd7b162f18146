"""Tests of the edge-study data: thin scene boundaries, absolute noise, dead-leaves scenes,
real-image boundary datasets and paired t-intervals.

Oracles: the BSDS protocol of :func:`cnnconv.metrics.evaluate_boundaries` (ground truth scored
as its own prediction gives F = 1 exactly), loop definitions of label changes, scipy.stats for
the t-interval, and scipy.io for the BSDS file format.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnconv.data import SyntheticScenes, make_dead_leaves, make_scene
from cnnconv.edges import non_max_suppression
from cnnconv.functional import sobel
from cnnconv.metrics import evaluate_boundaries, thin_boundaries

THRESHOLDS = np.linspace(0.0, 1.0, 35)[1:-1]


def _label_change_pixels(lab: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (loop definition)."""
    h, w = lab.shape
    out = np.zeros((h, w), dtype=bool)
    for r in range(h):
        for c in range(w):
            if (c + 1 < w and lab[r, c] != lab[r, c + 1]) or (r + 1 < h and lab[r, c] != lab[r + 1, c]):
                out[r, c] = True
    return out


def _sobel_nms_scores(images: torch.Tensor) -> torch.Tensor:
    """The experiment's linear-detector pipeline: Sobel, NMS along the gradient, scaled to [0, 1]."""
    g = sobel(images, output="xy", normalized=True)  # (N, C, 2, H, W)
    gx, gy = g[:, :, 0].mean(1), g[:, :, 1].mean(1)
    nms = non_max_suppression(torch.hypot(gx, gy)[:, None], torch.atan2(gy, gx)[:, None])[:, 0]
    return nms / nms.max()


# ------------------------------------------------------------------------------------------
# Thin ground truth
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"colour": True}, {"texture": True}, {"antialias": False, "shapes": ("polygon",)}, {"shapes": ("ellipse",)}],
)
def test_scene_ground_truth_scores_one_as_its_own_prediction(kwargs):
    scenes = [make_scene(64, seed=(11, i), **kwargs) for i in range(4)]
    gts = [s["boundary"] for s in scenes]
    res = evaluate_boundaries(torch.stack(gts).float(), gts, thresholds=THRESHOLDS)
    assert res.ods == 1.0 and res.ois == 1.0
    for s in scenes:
        b = s["boundary"].numpy()
        # already thin: the metric's thinning leaves it unchanged
        np.testing.assert_array_equal(thin_boundaries(b), b)
        # every boundary pixel lies on a label change, and the orientation is 0 elsewhere
        assert not (b & ~_label_change_pixels(s["labels"].numpy())).any()
        assert (s["orientation"][~s["boundary"]] == 0).all()


def test_clean_sobel_scores_near_one_on_clean_scenes():
    scenes = [make_scene(96, seed=(12, i)) for i in range(6)]
    images = torch.stack([s["image"] for s in scenes])
    res = evaluate_boundaries(_sobel_nms_scores(images), [s["boundary"] for s in scenes], thresholds=THRESHOLDS)
    assert res.ods >= 0.98


# ------------------------------------------------------------------------------------------
# Absolute noise
# ------------------------------------------------------------------------------------------


def test_absolute_noise_has_the_same_std_in_every_scene():
    scenes = [make_scene(64, seed=(13, i), noise=0.4, noise_mode="absolute", contrast=0.15) for i in range(6)]
    stds = [s["noise_std"] for s in scenes]
    assert stds == pytest.approx([0.4 * 0.15] * 6, abs=1e-12)
    # the measured noise matches, while the weakest edges differ between scenes
    for s in scenes:
        z = (s["image"].double() - s["clean"].double()).flatten().numpy()
        assert abs(z.std() - 0.06) < 0.004
    assert max(s["contrast"] for s in scenes) - min(s["contrast"] for s in scenes) > 0.01
    # the relative mode (the default) still scales by each scene's weakest edge
    rel = make_scene(64, seed=(13, 0), noise=0.4, contrast=0.15)
    assert rel["noise_std"] == pytest.approx(0.4 * rel["contrast"])
    assert torch.equal(rel["clean"], scenes[0]["clean"])


def test_noise_mode_is_checked():
    with pytest.raises(ValueError, match="noise_mode.*'relateive'"):
        make_scene(16, seed=0, noise_mode="relateive")


# ------------------------------------------------------------------------------------------
# Dead leaves
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"texture": True}, {"texture": 0.8, "texture_kind": "noise", "colour": True}, {"shapes": ("disc",), "antialias": False}],
)
def test_dead_leaves_ground_truth_is_thinned_label_changes_and_scores_one(kwargs):
    from skimage.morphology import thin as sk_thin

    scenes = [make_dead_leaves(64, seed=(21, i), **kwargs) for i in range(3)]
    gts = [s["boundary"] for s in scenes]
    res = evaluate_boundaries(torch.stack(gts).float(), gts, thresholds=THRESHOLDS)
    assert res.ods == 1.0
    for s in scenes:
        lab = s["labels"].numpy()
        assert np.unique(lab).size >= 10  # many visible leaves
        changes = _label_change_pixels(lab)
        np.testing.assert_array_equal(s["boundary"].numpy(), sk_thin(changes))
        assert (s["orientation"][~s["boundary"]] == 0).all()


def test_dead_leaves_occlude_in_painters_order_and_are_deterministic():
    a = make_dead_leaves(48, seed=(22, 1), texture=True, noise=0.1)
    b = make_dead_leaves(48, seed=(22, 1), texture=True, noise=0.1)
    for k in ("image", "clean", "boundary", "orientation", "labels"):
        assert torch.equal(a[k], b[k])
    c = make_dead_leaves(48, seed=(22, 2), texture=True, noise=0.1)
    assert not torch.equal(a["labels"], c["labels"])
    # painter's order: one more leaf (the same first 30) is pasted over the others
    lab30 = make_dead_leaves(48, seed=4, n_shapes=30)["labels"]
    lab31 = make_dead_leaves(48, seed=4, n_shapes=31)["labels"]
    top = lab31 == 31
    assert 0 < int(top.sum()) < top.numel()
    assert torch.equal(lab31, torch.where(top, 31, lab30))


def test_dead_leaves_texture_varies_inside_regions_only_by_its_amplitude():
    s = make_dead_leaves(64, seed=23, texture=1.0, antialias=False, contrast=0.1)
    flat = make_dead_leaves(64, seed=23, texture=False, antialias=False, contrast=0.1)
    assert torch.equal(s["labels"], flat["labels"]) and torch.equal(s["boundary"], flat["boundary"])
    img, lab = s["clean"][0].double().numpy(), s["labels"].numpy()
    base = flat["clean"][0].double().numpy()
    tex = img - base
    assert np.abs(tex).max() <= 0.5 * 1.0 * 0.1 + 1e-6  # peak-to-peak texture * contrast
    big = [k for k in np.unique(lab) if (lab == k).sum() > 60]
    assert all(np.ptp(tex[lab == k]) > 0.03 for k in big)  # every sizeable region is textured
    for k in np.unique(lab):  # the untextured leaves are flat
        assert np.ptp(base[lab == k]) < 1e-6


def test_dead_leaves_orientation_agrees_with_sobel():
    errs = []
    for seed in range(3):
        s = make_dead_leaves(80, seed=(24, seed))
        g = sobel(s["clean"][None], output="xy")[0, 0].double()
        d = torch.atan2(g[1], g[0])
        b = s["boundary"]
        diff = torch.remainder(d - s["orientation"].double() + np.pi, 2 * np.pi) - np.pi
        errs.append(diff[b].abs())
    assert torch.cat(errs).median() < np.radians(10)


def test_dead_leaves_in_a_dataset_and_bad_arguments():
    ds = SyntheticScenes(3, 32, seed=5, kind="dead_leaves", texture=True)
    assert torch.equal(ds[1]["labels"], make_dead_leaves(32, seed=(5, 1), texture=True)["labels"])
    with pytest.raises(ValueError, match="kind.*'leaves'"):
        SyntheticScenes(3, 32, kind="leaves")
    with pytest.raises(ValueError, match="radius.*0.5, 0.1"):
        make_dead_leaves(32, seed=0, radius=(0.5, 0.1))
    with pytest.raises(ValueError, match="shapes.*'ellipse'"):
        make_dead_leaves(32, seed=0, shapes=("ellipse",))
    with pytest.raises(ValueError, match="texture_kind.*'stripes'"):
        make_dead_leaves(32, seed=0, texture=True, texture_kind="stripes")


# ------------------------------------------------------------------------------------------
# Paired t-intervals
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 12])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_paired_t_interval_matches_scipy(n, confidence):
    from scipy import stats

    from cnnconv.metrics import paired_t_interval

    rng = np.random.default_rng([n, int(confidence * 100)])
    a = rng.normal(0.8, 0.05, size=n)
    b = a - rng.normal(0.01, 0.02, size=n)
    mean, low, high = paired_t_interval(a, b, confidence=confidence)
    d = a - b
    ref_low, ref_high = stats.t.interval(confidence, n - 1, loc=d.mean(), scale=stats.sem(d))
    assert mean == pytest.approx(d.mean(), abs=1e-15)
    assert low == pytest.approx(ref_low, rel=1e-12, abs=1e-15)
    assert high == pytest.approx(ref_high, rel=1e-12, abs=1e-15)
    # the table used without scipy gives the same quantiles
    t_table = (high - mean) / stats.sem(d)
    assert t_table == pytest.approx(stats.t.ppf(0.5 + confidence / 2, n - 1), rel=1e-12)


def test_paired_t_interval_without_scipy_uses_the_table(monkeypatch):
    import sys

    from scipy import stats

    from cnnconv.metrics import paired_t_interval

    a = torch.tensor([0.91, 0.88, 0.93, 0.90], dtype=torch.float64)
    b = torch.tensor([0.89, 0.87, 0.90, 0.90], dtype=torch.float64)
    with_scipy = paired_t_interval(a, b)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import scipy.stats now fails
    without = paired_t_interval(a, b)
    assert without == pytest.approx(with_scipy, rel=1e-4)
    d = (a - b).numpy()
    assert without[2] - without[0] == pytest.approx(stats.t.ppf(0.975, 3) * stats.sem(d), rel=1e-4)
    with pytest.raises(ValueError, match="confidence.*0.8"):
        paired_t_interval(a, b, confidence=0.8)  # not in the table


def test_paired_t_interval_bad_input():
    from cnnconv.metrics import paired_t_interval

    with pytest.raises(ValueError, match="at least 2.*got 1"):
        paired_t_interval([0.5], [0.4])
    with pytest.raises(ValueError, match="same length.*3 and 2"):
        paired_t_interval([0.5, 0.6, 0.7], [0.4, 0.5])
    with pytest.raises(ValueError, match="confidence.*1.5"):
        paired_t_interval([0.5, 0.6], [0.4, 0.5], confidence=1.5)
    with pytest.raises(ValueError, match="finite"):
        paired_t_interval([0.5, float("nan")], [0.4, 0.5])
    # identical differences: a zero-width interval
    assert paired_t_interval([0.5, 0.7], [0.4, 0.6]) == pytest.approx((0.1, 0.1, 0.1))
