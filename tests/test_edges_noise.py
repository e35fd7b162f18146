"""Tests of experiment 2 (edges under noise) and the demo: pipeline, report, ranking, config errors."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from cnnconv.training import load_config
from experiments import edges_noise as en

TINY = [
    "image_size=48", "n_train=4", "n_test=2", "noise_levels=[0.0, 0.3]", "seeds=[0, 1]",
    "kernel_sizes=[3]", "inits=[sobel]", "zero_sum=[true]", "sigma_grid=[1.0]",
    "canny_sigmas=[1.5]", "steps=6", "batch_size=2", "n_thresholds=5", "max_dist=1.5",
]


def _sets(items):
    out = []
    for item in items:
        out += ["--set", item]
    return out


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_dir = en.main([*_sets(TINY), "--out", str(out), "--name", "tiny", "--quiet", "--device", "cpu"])
    return run_dir


# --------------------------------------------------------------------------- end to end


def test_tiny_config_writes_report_figures_and_table(tiny_run):
    for name in ("config.yaml", "metrics.csv", "results.csv", "results.json", "report.md",
                 "ods_vs_noise.png", "kernels.png"):
        assert (tiny_run / name).is_file(), name
    for png in ("ods_vs_noise.png", "kernels.png"):
        assert (tiny_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _read_csv(tiny_run / "results.csv")
    # 2 seeds x 2 noise levels x (sobel, prewitt, scharr, dog-s1, canny-s1.5, learned 3x3, learnable sigma)
    assert len(rows) == 2 * 2 * 7
    assert {r["detector"] for r in rows} == {
        "sobel", "prewitt", "scharr", "dog-s1", "canny-s1.5", "learned-3x3-sobel-zerosum",
        "dog-learned-sigma"}
    for r in rows:
        for key in ("ods", "ois", "ap", "r50"):
            assert 0.0 <= float(r[key]) <= 1.0
    # A checkpoint per learned detector, seed and noise level.
    assert len(list((tiny_run / "checkpoints").glob("*.pt"))) == 2 * 2 * 2
    report = (tiny_run / "report.md").read_text()
    assert "## ODS against noise" in report and "![ODS against noise](ods_vs_noise.png)" in report
    assert "**Acceptance**" in report and "learnable sigma" in report
    # Verdicts in the report are the ones computed from the numbers.
    verdicts = json.loads((tiny_run / "results.json").read_text())["verdicts"]
    assert verdicts
    for v in verdicts:
        assert v["n"] == 2 and v["verdict"] == "none"  # two seeds: no significance claim
        assert f"`{v['learned']}` vs `{v['reference']}`" in report
    assert "no verdict (needs at least 3 seeds)" in report


def test_report_numbers_match_results(tiny_run):
    rows = _read_csv(tiny_run / "results.csv")
    sobel = [float(r["ods"]) for r in rows if r["detector"] == "sobel" and float(r["noise"]) == 0.3]
    mean, std = float(np.mean(sobel)), float(np.std(sobel, ddof=1))
    assert f"{mean:.3f} ± {std:.3f}" in (tiny_run / "report.md").read_text()


def test_resume_skips_finished_work_and_gives_the_same_results(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    (copy / "units" / "s1_n1.json").unlink()  # as if killed during the last unit
    for png in ("ods_vs_noise.png", "kernels.png", "pr_curves.png"):
        (copy / png).unlink(missing_ok=True)
    en.main(["--resume", str(copy), "--quiet", "--device", "cpu"])
    before = _read_csv(tiny_run / "results.csv")
    after = _read_csv(copy / "results.csv")
    key = ("seed", "noise", "detector", "ods", "ois", "ap", "fitted_sigma", "learned_sigma")
    assert [tuple(r[k] for k in key) for r in before] == [tuple(r[k] for k in key) for r in after]
    assert (copy / "ods_vs_noise.png").is_file()


def test_existing_run_folder_is_not_overwritten(tiny_run):
    with pytest.raises(SystemExit):
        en.main([*_sets(TINY), "--out", str(tiny_run.parent.parent), "--name", "tiny", "--quiet"])
    assert (tiny_run / "report.md").is_file()


# --------------------------------------------------------------------------- config errors


def test_unknown_config_key_fails_fast(tmp_path, capsys):
    with pytest.raises(SystemExit):
        en.main(["--set", "kernel_size=[5]", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "unknown config key 'kernel_size'" in err and "kernel_sizes" in err
    assert not (tmp_path / "edges_noise").exists()  # nothing was started


@pytest.mark.parametrize(
    "override, exc, match",
    [
        ("inits=[gaussian]", ValueError, r"inits must be among \['random', 'sobel'\], got \['gaussian'\]"),
        ("kernel_sizes=[4]", ValueError, r"kernel_sizes must hold odd integers >= 3, got \[4\]"),
        ("steps=many", TypeError, r"config key 'steps' must be int, got 'many'"),
        ("noise_levels=0.1", TypeError, r"config key 'noise_levels' must be a list"),
        ("sigma_grid=[1.0, -2.0]", ValueError, r"sigma_grid must hold positive sigmas"),
        ("max_dist=-0.1", ValueError, r"max_dist must be positive, got -0.1"),
        ("hand_designed=[roberts]", ValueError, r"hand_designed must be among"),
        ("seeds=[]", ValueError, r"seeds must not be empty"),
    ],
)
def test_bad_config_values_name_the_key(override, exc, match):
    with pytest.raises(exc, match=match):
        load_config(en.EdgesNoiseConfig, overrides=[override])


def test_shipped_configs_load():
    from experiments.common import config_file

    root = config_file("edges_noise").parent
    full = load_config(en.EdgesNoiseConfig, root / "edges_noise.yaml")
    assert full.noise_levels == [0.0, 0.05, 0.1, 0.2, 0.4] and len(full.seeds) >= 3
    assert full.kernel_sizes == [3, 5, 7] and set(full.inits) == {"random", "sobel"}
    assert set(full.zero_sum) == {False, True} and full.parametric
    demo = load_config(en.EdgesNoiseConfig, root / "demo.yaml")
    assert demo.kernel_sizes == [5] and len(demo.seeds) == 1 and len(demo.noise_levels) <= 2


# --------------------------------------------------------------------------- ranking and parts


def test_known_better_detector_ranks_above_worse():
    """On noisy scenes the pipeline ranks (1) the gradient of the clean image above Sobel on the
    noisy one and (2) a derivative of Gaussian with sigma 2 above Sobel (per-pixel SNR 3.9 vs 1.15)."""
    scenes = en.make_scenes(6, 64, 0.5, seed=123, device="cpu")
    thr = en.thresholds_for(11)
    noisy = en.evaluate_detector(*en.hand_designed_gradients(scenes["image"], "sobel"), scenes, thr, 1.5)
    clean = en.evaluate_detector(*en.hand_designed_gradients(scenes["clean"], "sobel"), scenes, thr, 1.5)
    dog = en.evaluate_detector(*en.hand_designed_gradients(scenes["image"], "dog", sigma=2.0), scenes, thr, 1.5)
    assert clean["ods"] > noisy["ods"] + 0.1
    assert dog["ods"] > noisy["ods"] + 0.05
    assert dog["orientation_error"] < noisy["orientation_error"]


def test_hand_designed_gradients_match_scipy():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    img = rng.standard_normal((2, 1, 20, 23))
    x = torch.from_numpy(img)
    for name, sigma in (("sobel", None), ("scharr", None), ("dog", 1.5)):
        kx, ky = en.hand_designed_kernels(name, sigma=sigma, dtype=torch.float64)
        gx, gy = en.hand_designed_gradients(x, name, sigma=sigma)
        for n in range(2):
            ref_x = ndimage.correlate(img[n, 0], kx.numpy(), mode="mirror")
            ref_y = ndimage.correlate(img[n, 0], ky.numpy(), mode="mirror")
            np.testing.assert_allclose(gx[n].numpy(), ref_x, atol=1e-12)
            np.testing.assert_allclose(gy[n].numpy(), ref_y, atol=1e-12)


def test_conv_gradients_equal_the_reflect_pad_conv2d_formula():
    """The gradient pair goes through cnnconv.functional; it equals the explicit reflect padding
    followed by F.conv2d with the stacked (kx, ky) weight that the experiment used before."""
    import torch.nn.functional as F

    from experiments.edges_noise.detectors import _conv_gradients

    g = torch.Generator().manual_seed(int(np.random.default_rng().integers(2**31)))
    for kh, kw in ((3, 3), (5, 5), (9, 9), (7, 3)):
        x = torch.randn(3, 1, 24, 19, generator=g)
        kx, ky = torch.randn(kh, kw, generator=g), torch.randn(kh, kw, generator=g)
        weight = torch.stack([kx, ky]).unsqueeze(1)
        ref = F.conv2d(F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect"), weight)
        gx, gy = _conv_gradients(x, kx, ky)
        assert gx.dtype == torch.float32 and gx.shape == (3, 24, 19)
        torch.testing.assert_close(gx, ref[:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(gy, ref[:, 1], atol=1e-6, rtol=0)


def test_package_runs_as_a_module_and_its_files_stay_short():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "experiments.edges_noise", "--help"], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: python -m experiments.edges_noise" in out.stdout and "kernel_sizes" in out.stdout
    for path in sorted((root / "experiments").rglob("*.py")):
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(root)} has {lines} lines (at most 400)"


def test_package_reexports_the_public_names_of_its_modules():
    from experiments.edges_noise import config, detectors, evaluate, figures, report, stats, train

    for module in (config, detectors, evaluate, figures, report, stats, train):
        missing = set(module.__all__) - set(en.__all__)
        assert not missing, f"{module.__name__}: {sorted(missing)} not re-exported"
        for name in module.__all__:
            assert getattr(en, name) is getattr(module, name)


def test_canny_score_map_reproduces_canny_at_every_threshold():
    from skimage.feature import canny

    rng = np.random.default_rng(3)
    imgs = np.zeros((2, 40, 40))
    imgs[:, 10:30, 12:28] = 1.0
    imgs[1, 5:15, 5:35] = 0.5
    imgs += 0.2 * rng.standard_normal(imgs.shape)
    thr = en.thresholds_for(9)
    scores = en.canny_scores(imgs, 1.5, thr, 0.4)
    from scipy import ndimage

    scale = max(np.hypot(ndimage.sobel(ndimage.gaussian_filter(i, 1.5, mode="mirror"), 0),
                         ndimage.sobel(ndimage.gaussian_filter(i, 1.5, mode="mirror"), 1)).max() for i in imgs)
    fired = 0
    for n in range(2):
        for t in thr:
            ref = canny(imgs[n], sigma=1.5, low_threshold=0.4 * t * scale, high_threshold=t * scale, mode="mirror")
            np.testing.assert_array_equal(scores[n] >= t, ref)
            fired += int(ref.any())
    assert fired >= 4  # the sweep is not trivially empty


def test_alignment_recovers_a_rotation_and_reflection():
    g = torch.Generator().manual_seed(5)
    rx, ry = torch.randn(500, generator=g), torch.randn(500, generator=g)
    mask = torch.rand(500, generator=g) > 0.3
    for angle, reflect in ((0.9, False), (-2.0, True), (0.0, True)):
        # (gx, gy) is the reference rotated by -angle and then reflected: alignment must undo it.
        c, s = math.cos(-angle), math.sin(-angle)
        gx, gy = c * rx - s * ry, s * rx + c * ry
        if reflect:
            gy = -gy
        a, r = en.align_orientation(gx, gy, rx, ry, mask)
        ax, ay = en.apply_alignment(gx, gy, a, r)
        assert r == reflect
        # Equal up to the sign of the whole pair (orientations modulo 180 degrees).
        err = min(float((ax - rx).abs().max() + (ay - ry).abs().max()),
                  float((ax + rx).abs().max() + (ay + ry).abs().max()))
        assert err < 1e-5


def test_parametric_layer_gradients_match_its_own_2d_filter():
    """The separable (1-D pass) gradients of the learnable-sigma layer equal the layer's 2-D
    ``gradient`` (oracle), values and the gradient with respect to sigma."""
    layer = en.make_parametric(1.3, 2.0).double()
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 1, 23, 30, generator=g, dtype=torch.float64)
    gx, gy = en.learned_gradients(layer, x)
    ref = layer.gradient(x)
    torch.testing.assert_close(gx, ref[:, 0])
    torch.testing.assert_close(gy, ref[:, 1])
    w = torch.randn(2, 23, 30, generator=g, dtype=torch.float64)
    (grad_sep,) = torch.autograd.grad((w * gx + w.flip(0) * gy).sum(), layer.log_sigma)
    (grad_ref,) = torch.autograd.grad((w * ref[:, 0] + w.flip(0) * ref[:, 1]).sum(), layer.log_sigma)
    torch.testing.assert_close(grad_sep, grad_ref)
    assert en.learned_kernels(layer).shape == (2, layer.kernel_size, layer.kernel_size)
    assert abs(en.learned_sigma(layer) - 1.3) < 1e-6  # stored in float32, then cast


def test_demo_runs_and_prints_the_report_path(tmp_path, capsys):
    from experiments import demo

    tiny = [t for t in TINY if not t.startswith(("seeds", "noise_levels"))]
    run_dir = demo.main([*_sets(tiny), "--set", "seeds=[0]", "--set", "noise_levels=[0.3]",
                         "--out", str(tmp_path), "--quiet", "--device", "cpu"])
    assert run_dir.parent.name == "demo" and (run_dir / "report.md").is_file()
    out = capsys.readouterr().out
    assert f"Report: {(run_dir / 'report.md').resolve()}" in out
    assert "| sobel |" in out
    import yaml

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["kernel_sizes"] == [3] and saved["sigma_grid"] == [1.0]  # demo.yaml, then --set
    assert saved["canny_low_ratio"] == 0.4 and saved["image_size"] == 48


def test_balanced_bce_matches_the_hed_formula():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 9, 11, generator=g, dtype=torch.float64)
    target = torch.rand(3, 9, 11, generator=g) > 0.8
    y = target.double()
    beta = 1 - y.mean()  # weight of the positives: share of negatives
    p = 1 / (1 + torch.exp(-logits))
    ref = -(beta * y * torch.log(p) + (1 - beta) * (1 - y) * torch.log(1 - p)).mean()
    torch.testing.assert_close(en.balanced_bce(logits, target), ref)
    with pytest.raises(ValueError, match="same shape"):
        en.balanced_bce(logits, target[:, :5])


def test_compare_and_verdicts():
    assert en.compare(np.array([0.05, 0.06, 0.04]), 0.005) == "win"
    assert en.compare(np.array([-0.05, -0.06, -0.04]), 0.005) == "lose"
    assert en.compare(np.array([0.10, -0.08, 0.01]), 0.005) == "tie"  # spread too large
    assert en.compare(np.array([0.003, 0.004, 0.003]), 0.005) == "tie"  # below the tolerance
    with pytest.raises(ValueError, match="at least one"):
        en.compare(np.array([]), 0.005)
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        base = 0.5 + 0.02 * rng.standard_normal()
        for det, fam, k, ods in (("sobel", "hand", 3, base), ("learned-7x7-sobel", "learned", 7, base + 0.1),
                                 ("dog-s2", "dog", 17, base + 0.12), ("dog-learned-sigma", "parametric", 17, base + 0.05)):
            rows.append({"seed": seed, "noise": 0.4, "detector": det, "family": fam, "kernel_size": k,
                         "init": None, "zero_sum": None, "sigma": None, "ods": ods})
    out = {v["what"]: v for v in en.verdicts(rows)}
    assert out["best learned 5x5/7x7 vs Sobel"]["verdict"] == "win"
    assert out["best learned vs best hand-designed"]["reference"] == "dog-s2"
    assert out["best learned vs best hand-designed"]["verdict"] == "lose"
    assert out["learnable sigma vs best DoG of the grid"]["verdict"] == "lose"
    ok, text = en.acceptance(en.verdicts(rows))
    assert ok is True and text.startswith("met")


def test_pdc_detectors_train_and_are_recorded(tmp_path):
    base = [t for t in TINY if not t.startswith(("seeds", "noise_levels", "kernel_sizes", "inits", "steps"))]
    base += ["seeds=[0]", "noise_levels=[0.3]", "kernel_sizes=[]", "inits=[random]",
             "pdc_types=[cd, rd]", "parametric=false"]
    losses = {}
    for steps in (1, 40):
        run_dir = en.main([*_sets(base), "--set", f"steps={steps}", "--out", str(tmp_path),
                           "--name", f"pdc{steps}", "--quiet", "--device", "cpu"])
        rows = {r["detector"]: r for r in _read_csv(run_dir / "results.csv") if r["family"] == "pdc"}
        assert sorted(rows) == ["pdc-cd-3x3-random", "pdc-rd-3x3-random"]
        for name, row in rows.items():
            assert 0 < float(row["ods"]) <= 1
            losses.setdefault(name, []).append(float(row["train_loss"]))
    kernels_json = json.loads((run_dir / "results.json").read_text())
    assert "pdc" in json.dumps(kernels_json)
    for name, (first, last) in losses.items():
        assert last < 0.95 * first, (name, first, last)


def test_pdc_config_errors():
    with pytest.raises(ValueError, match="pdc_types must be among"):
        en.EdgesNoiseConfig(pdc_types=["xx"])
    with pytest.raises(ValueError, match="pdc_types 'rd' cannot start from a hand-designed pair"):
        en.EdgesNoiseConfig(pdc_types=["rd"], inits=["sobel"])
    assert en.EdgesNoiseConfig().pdc_types == []
