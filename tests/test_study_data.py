"""Tests of the edge-study data: thin scene boundaries, absolute noise, dead-leaves scenes,
real-image boundary datasets and paired t-intervals.

Oracles: the BSDS protocol of :func:`cnnconv.evaluation.metrics.evaluate_boundaries` (ground truth scored
as its own prediction gives F = 1 exactly), loop definitions of label changes, scipy.stats for
the t-interval, and scipy.io for the BSDS file format.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnconv.evaluation.data import SyntheticScenes, make_dead_leaves, make_scene
from cnnconv.edges import non_max_suppression
from cnnconv.functional import sobel
from cnnconv.evaluation.metrics import evaluate_boundaries, thin_boundaries

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
    [
        {},
        {"texture": True},
        {"texture": 0.8, "texture_kind": "noise", "colour": True},
        {"shapes": ("disc",), "antialias": False},
    ],
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


def test_noise_texture_has_the_rms_of_a_grating_and_more_orientations():
    kw = {"seed": 25, "antialias": False, "contrast": 0.1, "texture": 1.0}
    flat = make_dead_leaves(96, texture=False, **{k: v for k, v in kw.items() if k != "texture"})
    base = flat["clean"][0].double()
    grating = make_dead_leaves(96, **kw)["clean"][0].double() - base
    noise = make_dead_leaves(96, texture_kind="noise", **kw)["clean"][0].double() - base
    expected = 0.5 * 0.1 / np.sqrt(2)  # RMS of a sinusoid of peak-to-peak texture * contrast
    assert float(grating.std()) == pytest.approx(expected, rel=0.1)
    assert float(noise.std()) == pytest.approx(expected, rel=0.25)
    # a grating is one frequency per region: its Fourier spectrum over the largest region is
    # concentrated on one peak pair, the noise texture's is spread out
    lab = flat["labels"]
    k = int(torch.bincount(lab.flatten()).argmax())
    peak = []
    for tex in (grating, noise):
        spec = torch.fft.fft2(torch.where(lab == k, tex, 0.0)).abs() ** 2
        peak.append(float(spec.flatten().topk(2).values.sum() / spec.sum()))
    assert peak[0] > 2 * peak[1]


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
# Real images: occlusion boundaries of the Motorcycle pair, BSDS500 from disk
# ------------------------------------------------------------------------------------------


def _jump_marks(disp: np.ndarray, threshold: float) -> np.ndarray:
    """Loop definition: upper/left pixel of each known 4-neighbour pair differing by more."""
    h, w = disp.shape
    marks = np.zeros((h, w), dtype=bool)
    for r in range(h):
        for c in range(w):
            for r2, c2 in ((r, c + 1), (r + 1, c)):
                if r2 < h and c2 < w and np.isfinite(disp[r, c]) and np.isfinite(disp[r2, c2]):
                    marks[r, c] |= abs(disp[r, c] - disp[r2, c2]) > threshold
    return marks


def _disc_disparity(seed: int) -> np.ndarray:
    # a slanted background plane (0.1 px of disparity per pixel: no jump) and a raised disc
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:40, 0:50]
    disp = 10.0 + 0.1 * xx + rng.uniform(-0.05, 0.05, (40, 50))
    disp[(yy - 20) ** 2 + (xx - 24) ** 2 < 12**2] += 8.0
    return disp


def test_occlusion_boundaries_match_the_loop_definition_and_mask_unknown_disparity():
    from skimage.morphology import thin as sk_thin

    from cnnconv.evaluation.datasets import occlusion_boundaries

    disp = _disc_disparity(31)
    disp[2:6, 3:9] = np.nan
    disp[30:34, 40:46] = np.inf
    out = occlusion_boundaries(torch.from_numpy(disp).float(), threshold=2.0, fill=False)
    assert out.dtype == torch.bool
    np.testing.assert_array_equal(out.numpy(), sk_thin(_jump_marks(disp.astype(np.float32), 2.0)))
    assert int(out.sum()) > 60  # the disc's rim, about 2 * pi * 12 pixels
    assert not out[:8, :10].any() and not out[28:36, 38:48].any()  # unknown disparity: no marks
    with pytest.raises(ValueError, match="threshold.*-1"):
        occlusion_boundaries(disp, threshold=-1)
    with pytest.raises(ValueError, match="disparity.*\\(3, 40, 50\\)"):
        occlusion_boundaries(np.stack([disp] * 3))


def test_occlusion_boundaries_fill_half_occlusions_with_the_background():
    from skimage.morphology import thin as sk_thin

    from cnnconv.evaluation.datasets import occlusion_boundaries

    full = _disc_disparity(32)
    # a half-occluded strip: background pixels left of the disc's left rim, unknown to the
    # stereo ground truth; and a row without any known disparity
    disp = full.copy()
    rows, cols = np.nonzero(full > 15)
    for r in np.unique(rows):
        left = cols[rows == r].min()
        disp[r, max(left - 4, 0) : left] = np.inf
    disp[38] = np.nan
    truth = sk_thin(_jump_marks(np.where(np.isnan(disp), np.nan, full), 2.0))
    filled = occlusion_boundaries(disp, 2.0).numpy()
    np.testing.assert_array_equal(filled, truth)
    masked = occlusion_boundaries(disp, 2.0, fill=False).numpy()
    assert masked.sum() < filled.sum() - 10  # masking loses the rim beside the strip


def test_motorcycle_occlusions_load_offline_with_their_disparity():
    import skimage.data

    from cnnconv.evaluation.datasets import MotorcycleOcclusions, occlusion_boundaries

    ds = MotorcycleOcclusions(threshold=3.0)
    assert len(ds) == 1
    item = ds[0]
    left, _, disp = skimage.data.stereo_motorcycle()
    assert item["image"].shape == (1, 500, 741)
    luma = (left[..., :3].astype(np.float64) / 255) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(item["image"][0].numpy(), luma, atol=1e-6)
    np.testing.assert_array_equal(item["disparity"].numpy(), disp.astype(np.float32))
    (b,) = item["boundaries"]
    assert torch.equal(b, occlusion_boundaries(disp, 3.0))
    assert 0.002 < float(b.float().mean()) < 0.05
    colour = MotorcycleOcclusions(gray=False)[0]["image"]
    np.testing.assert_allclose(colour.permute(1, 2, 0).numpy(), left[..., :3] / 255.0, atol=1e-6)
    # the ground truth scores 1 as its own prediction; Sobel finds most occlusions (precision is
    # only a lower bound: texture edges are unlabelled)
    res = evaluate_boundaries([b.float()], [item["boundaries"]], thresholds=9)
    assert res.ods == 1.0
    sob = evaluate_boundaries(_sobel_nms_scores(item["image"][None]), [item["boundaries"]], thresholds=THRESHOLDS)
    assert sob.ods_recall > 0.5 and sob.ods_precision < 0.9


def _write_bsds(root, split, scenes, annotators, quality=95):
    """Writes ``scenes`` in the BSDS500 layout: ``images/<split>/<id>.jpg`` and
    ``groundTruth/<split>/<id>.mat`` holding a 1 x K cell array of structs with ``Segmentation``
    (uint16, 1-based labels) and ``Boundaries`` (logical)."""
    from PIL import Image
    from scipy.io import savemat

    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "groundTruth" / split).mkdir(parents=True, exist_ok=True)
    for name, s in scenes.items():
        rgb = (s["image"].permute(1, 2, 0).squeeze(2).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(rgb).save(root / "images" / split / f"{name}.jpg", quality=quality)
        cell = np.empty((1, len(annotators[name])), dtype=object)
        for k, (seg, bnd) in enumerate(annotators[name]):
            cell[0, k] = {"Segmentation": seg.astype(np.uint16), "Boundaries": bnd.astype(bool)}
        savemat(root / "groundTruth" / split / f"{name}.mat", {"groundTruth": cell})


def test_bsds500_reads_the_official_layout_and_scores_several_annotators(tmp_path):
    from PIL import Image
    from scipy.io import loadmat

    from cnnconv.evaluation.datasets import BSDS500

    scenes = {f"{100 + i}": make_scene((48, 64), seed=(41, i), colour=True) for i in range(3)}
    annotators, predictions, expected = {}, {}, []
    for name, s in scenes.items():
        full = s["boundary"].numpy()
        partial = full.copy()
        partial[:, : 20 + int(name) % 7] = False  # a second annotator who drew less
        seg = s["labels"].numpy() + 1
        annotators[name] = [(seg, full), (seg, partial)]
        predictions[name] = torch.from_numpy(partial).float()
        expected.append((full.sum(), partial.sum()))
    _write_bsds(tmp_path, "val", scenes, annotators)
    (tmp_path / "images" / "val" / "Thumbs.db").write_bytes(b"x")  # ignored, as in the archive
    # the fixture really has the BSDS struct layout: gt['groundTruth'][0][k]['Boundaries'][0][0]
    m = loadmat(tmp_path / "groundTruth" / "val" / "101.mat")
    assert m["groundTruth"].shape == (1, 2)
    assert m["groundTruth"][0][1]["Boundaries"][0][0].shape == (48, 64)

    ds = BSDS500(tmp_path, "val", gray=False, segmentations=True)
    assert len(ds) == 3 and [ds[i]["name"] for i in range(3)] == ["100", "101", "102"]
    for i, name in enumerate(scenes):
        item = ds[i]
        ref = np.asarray(Image.open(tmp_path / "images" / "val" / f"{name}.jpg").convert("RGB"))
        np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), ref / 255.0, atol=1e-6)
        assert len(item["boundaries"]) == 2
        for (seg, bnd), got_b, got_s in zip(annotators[name], item["boundaries"], item["segmentations"]):
            np.testing.assert_array_equal(got_b.numpy(), bnd)
            np.testing.assert_array_equal(got_s.numpy(), seg)
    assert BSDS500(tmp_path, "val")[0]["image"].shape == (1, 48, 64)

    # the whole pipeline: the prediction is the partial annotation, a subset of the full one,
    # so every predicted pixel is matched (precision 1) and each annotator recovers exactly the
    # predicted pixels: recall = 2 |partial| / (|full| + |partial|), summed over images
    items = [ds[i] for i in range(len(ds))]
    res = evaluate_boundaries([predictions[it["name"]] for it in items], [it["boundaries"] for it in items])
    full_n, part_n = np.sum(expected, axis=0)
    recall = 2 * part_n / (full_n + part_n)
    assert res.ods_precision == pytest.approx(1.0)
    assert res.ods_recall == pytest.approx(recall, rel=1e-12)
    assert res.ods == pytest.approx(2 * recall / (1 + recall), rel=1e-12)
    assert recall < 0.95


def test_bsds500_errors(tmp_path):
    from cnnconv.evaluation.datasets import BSDS500

    with pytest.raises(ValueError, match="split.*'validation'"):
        BSDS500(tmp_path, "validation")
    with pytest.raises(FileNotFoundError, match="images"):
        BSDS500(tmp_path, "test")
    s = make_scene(32, seed=1)
    b = s["boundary"].numpy()
    _write_bsds(tmp_path, "train", {"7": s}, {"7": [(s["labels"].numpy() + 1, b)]})
    (tmp_path / "images" / "train" / "7.jpg").rename(tmp_path / "images" / "train" / "8.jpg")
    with pytest.raises(ValueError, match="without an image.*7.mat"):
        BSDS500(tmp_path, "train")
    _write_bsds(tmp_path, "test", {"9": s}, {"9": [(np.ones((20, 32)), np.zeros((20, 32)))]})
    with pytest.raises(ValueError, match="9.mat.*\\(20, 32\\).*\\(32, 32\\)"):
        BSDS500(tmp_path, "test")[0]


# ------------------------------------------------------------------------------------------
# Paired t-intervals
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 12])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_paired_t_interval_matches_scipy(n, confidence):
    from scipy import stats

    from cnnconv.evaluation.metrics import paired_t_interval

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

    from cnnconv.evaluation.metrics import paired_t_interval

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
    from cnnconv.evaluation.metrics import paired_t_interval

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
