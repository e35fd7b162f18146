"""Smoke runs of the experiments with tiny configs, plus their configs and building blocks."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnnconv.training import load_config, read_metrics
from experiments import cnn_kernels, fft_benchmark, kernel_recovery, large_kernels

ROOT = Path(__file__).resolve().parents[1]


def _check_report(run_dir: Path) -> str:
    """The run folder has its config, metrics, a report and every PNG the report embeds."""
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "metrics.csv").is_file()
    text = (run_dir / "report.md").read_text()
    assert text.startswith("# ")
    assert "|---|" in text  # at least one table
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images, "no embedded figure"
    for rel in images:
        path = run_dir / rel
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel
    return text


@pytest.mark.parametrize("module, cls", [
    (kernel_recovery, kernel_recovery.KernelRecoveryConfig),
    (large_kernels, large_kernels.LargeKernelsConfig),
    (cnn_kernels, cnn_kernels.CNNKernelsConfig),
    (fft_benchmark, fft_benchmark.FFTBenchmarkConfig),
])
def test_config_files_match_defaults(module, cls):
    # The shipped YAML file is the documented default: it validates and equals the class defaults.
    assert load_config(cls, ROOT / "configs" / f"{module.NAME}.yaml") == cls()


@pytest.mark.parametrize("cls, override, match", [
    (kernel_recovery.KernelRecoveryConfig, "kernel_sizes=[4]", "odd and >= 3, got 4"),
    (kernel_recovery.KernelRecoveryConfig, "datasets=[faces]", "'faces'"),
    (kernel_recovery.KernelRecoveryConfig, "dtype=float16", "'float16'"),
    (large_kernels.LargeKernelsConfig, "blurs=[disk]", "'disk'"),
    (large_kernels.LargeKernelsConfig, "box_size=41", "box_size must be in"),
    (large_kernels.LargeKernelsConfig, "crop=40", "crop must be at least"),
    (cnn_kernels.CNNKernelsConfig, "grating_fraction=1.5", "grating_fraction must be in"),
    (cnn_kernels.CNNKernelsConfig, "kernel_size=4", "odd and positive, got 4"),
])
def test_experiment_configs_reject_bad_values(cls, override, match):
    with pytest.raises(ValueError, match=match):
        load_config(cls, overrides=[override])


def test_sobel_target_matches_independent_filter():
    # The regression target is Sobel applied by correlation (scipy.ndimage as the oracle).
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(2, 1, 20, 24, dtype=torch.float64)
    y = kernel_recovery.sobel_target(x, 5)  # valid for a 5x5 layer: 16 x 20
    assert y.shape == (2, 2, 16, 20)
    ref_x = ndimage.correlate(x[0, 0].numpy(), kernel_recovery.sobel_pair()[0, 0].numpy())
    ref_y = ndimage.correlate(x[0, 0].numpy(), kernel_recovery.sobel_pair()[1, 0].numpy())
    torch.testing.assert_close(y[0, 0], torch.from_numpy(ref_x[2:-2, 2:-2]))
    torch.testing.assert_close(y[0, 1], torch.from_numpy(ref_y[2:-2, 2:-2]))
    # Sobel x is positive where intensity grows to the right.
    ramp = torch.arange(10.0, dtype=torch.float64).expand(1, 1, 10, 10)
    assert (kernel_recovery.sobel_target(ramp, 3)[0, 0] > 0).all()


def test_energy_shares():
    w = torch.zeros(2, 1, 5, 5, dtype=torch.float64)
    w[:, :, 1:4, 1:4] = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    assert kernel_recovery.outer_energy(w) == 0.0
    w[0, 0, 0, 0] = 3.0
    total = float(w.pow(2).sum())
    assert math.isclose(kernel_recovery.outer_energy(w), 9.0 / total)
    assert math.isclose(kernel_recovery.ring_energy(w), 9.0 / total)
    assert kernel_recovery.relative_error(F.pad(kernel_recovery.sobel_pair(), (1,) * 4)) == 0


def test_kernel_recovery_smoke(tmp_path):
    run_dir = kernel_recovery.main([
        "--out", str(tmp_path), "--name", "smoke", "--device", "cpu", "--quiet",
        "--set", "kernel_sizes=[3, 5]", "--set", "datasets=[noise, natural]",
        "--set", "photos=[camera]", "--set", "batch_size=4", "--set", "crop=24",
        "--set", "adam_steps=10", "--set", "lbfgs_steps=2", "--set", "lbfgs_iter=10",
        "--set", "eval_every=5"])
    text = _check_report(run_dir)
    assert "Acceptance" in text
    rows = (run_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    metrics = read_metrics(run_dir / "metrics.csv")
    steps, errors = metrics["noise_k3_adam"]["rel_error"]
    assert steps == [0, 5, 10]
    # On noise images even 2 short L-BFGS steps recover Sobel almost exactly.
    final = metrics["noise_k3_lbfgs"]["rel_error"][1][-1]
    assert final < 1e-3 < errors[0]
    assert metrics["noise_k5_lbfgs"]["outer_energy"][1][-1] < 1e-3

    # Resuming the finished run leaves every file as it was and says so.
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert kernel_recovery.main(["--resume", str(run_dir), "--quiet", "--device", "cpu"]) == run_dir
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_motion_kernel_is_a_normalised_streak():
    k = large_kernels.motion_kernel(15, 10.0, 0.0)
    assert math.isclose(float(k.sum()), 1.0)
    rows = k.sum(1)
    assert float(rows[6:9].sum()) == pytest.approx(1.0)  # horizontal: in the middle rows
    k45 = large_kernels.motion_kernel(15, 10.0, 90.0)
    torch.testing.assert_close(k45, k.T, atol=1e-12, rtol=0)


def test_large_kernels_smoke(tmp_path):
    run_dir = large_kernels.main([
        "--out", str(tmp_path), "--name", "smoke", "--device", "cpu", "--quiet",
        "--set", "kernel_size=9", "--set", "box_size=5", "--set", "motion_length=6",
        "--set", "crop=24", "--set", "photos=[camera, brick]", "--set", "steps=2",
        "--set", "lbfgs_iter=10", "--set", "gaussian_sigma=1.5"])
    _check_report(run_dir)
    import csv

    with open(run_dir / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["blur"] for r in rows] == ["gaussian", "box", "motion"]
    for r in rows:
        # FFTConv2d and nn.Conv2d ran the same training: the same kernel to float rounding.
        assert float(r["fft_vs_direct"]) < 1e-3
        assert float(r["fft_error"]) < 0.5
    metrics = read_metrics(run_dir / "metrics.csv")
    errors = metrics["gaussian_fft"]["rel_error"][1]
    assert errors[0] == pytest.approx(1.0)  # zero start
    assert errors[-1] < 0.1


def test_oriented_batch_labels_follow_orientation():
    cfg = cnn_kernels.CNNKernelsConfig(noise=0.0, jitter=0.0, grating_fraction=0.0)
    x, y = cnn_kernels.oriented_batch(cfg, 64, torch.Generator().manual_seed(3))
    assert x.shape == (64, 1, 32, 32) and set(y.tolist()) <= {0, 1, 2, 3}
    # The mean gradient of a noise-free edge points along its class angle (mod 180).
    gx = (x[..., :, 1:] - x[..., :, :-1]).mean(dim=(1, 2, 3))
    gy = (x[..., 1:, :] - x[..., :-1, :]).mean(dim=(1, 2, 3))
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    diff = (angle - y * 45.0).abs()
    assert torch.minimum(diff, 180 - diff).max() < 5.0


def test_cnn_kernels_smoke(tmp_path):
    run_dir = cnn_kernels.main([
        "--out", str(tmp_path), "--name", "smoke", "--device", "cpu", "--quiet",
        "--set", "steps=25", "--set", "batch_size=32", "--set", "image_size=20",
        "--set", "test_size=200", "--set", "eval_every=25", "--set", "width=8",
        "--set", "kernel_size=5", "--set", "noise=0.2"])
    text = _check_report(run_dir)
    assert "best_match" in text
    acc = read_metrics(run_dir / "metrics.csv")["train"]["test_acc"][1]
    assert acc[-1] > 0.4  # chance is 0.25; 0.4 on 200 test images is 5 standard errors above
    rows = (run_dir / "kernels.csv").read_text().splitlines()
    assert len(rows) == 1 + 8  # one row per first-layer kernel


# A stand-in for bench_fft with its command line.
FAKE_BENCH = (
    "import argparse, pathlib, sys\n"
    "p = argparse.ArgumentParser()\n"
    "p.add_argument('--sections'); p.add_argument('--out', type=pathlib.Path)\n"
    "p.add_argument('--quick', action='store_true'); p.add_argument('--threads', type=int)\n"
    "p.add_argument('--skip-slow-direct', action='store_true')\n"
    "a = p.parse_args()\n"
    "a.out.mkdir(parents=True, exist_ok=False)\n"
    "from matplotlib.figure import Figure\n"
    "fig = Figure(); fig.add_subplot().plot([1, 2]); fig.savefig(a.out / 'sweep.png')\n"
    "print('args', a.sections, a.quick, a.threads, a.skip_slow_direct)\n"
    "print('dense 16->16, fwd+bwd')\n"
    "print('| k | direct ms | fft ms | direct / fft |')\n"
    "print('|---|---|---|---|')\n"
    "print('| 15 | 240.0 | 60.0 | 4.00 |')\n"
    "print('| 31 | 1040.0 | 109.0 | 9.54 |')\n")


def _fake_bench(tmp_path, monkeypatch):
    (tmp_path / "fake_bench.py").write_text(FAKE_BENCH)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(fft_benchmark, "BENCHMARKS", (*fft_benchmark.BENCHMARKS, "fake_bench"))


def test_fft_benchmark_wraps_a_benchmark_module(tmp_path, monkeypatch):
    # The wrapper must pass the configured options, collect the figures written to --out and
    # turn the printed tables into the report.
    _fake_bench(tmp_path, monkeypatch)
    run_dir = fft_benchmark.main([
        "--out", str(tmp_path / "runs"), "--name", "smoke", "--device", "cpu", "--quiet",
        "--set", "module=fake_bench", "--set", "sections=[seed, cases2d]",
        "--set", "quick=true", "--set", "num_threads=1"])
    text = _check_report(run_dir)
    assert "## dense 16->16, fwd+bwd" in text and "| 31 | 1040.0 | 109.0 | 9.54 |" in text
    assert "figures/sweep.png" in text
    assert "args seed,cases2d True 1 False" in (run_dir / "bench_output.txt").read_text()
    assert (run_dir / "table1.csv").read_text().splitlines()[2] == "31,1040.0,109.0,9.54"
    assert "table1_direct_fft.png" in text
    for bad in ("module=rm -rf", "sections=[everything]"):  # rejected before anything runs
        with pytest.raises(SystemExit):
            fft_benchmark.main(["--out", str(tmp_path / "runs"), "--set", bad])


def test_fft_benchmark_resumes_a_run_killed_while_writing_its_report(tmp_path, monkeypatch):
    _fake_bench(tmp_path, monkeypatch)
    run_dir = fft_benchmark.main([
        "--out", str(tmp_path / "runs"), "--name", "k", "--device", "cpu", "--quiet",
        "--set", "module=fake_bench", "--set", "sections=[sweep1d]"])
    table = (run_dir / "table1.csv").read_text()
    (run_dir / "report.md").unlink()  # killed after the tables and figures, before the report
    assert fft_benchmark.main(["--resume", str(run_dir), "--quiet", "--device", "cpu"]) == run_dir
    assert "figures/sweep.png" in _check_report(run_dir)
    assert (run_dir / "table1.csv").read_text() == table


# --------------------------------------------------------------------------- optional packages, benchmarks


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


HIDE = "import sys; sys.modules.update({{m: None for m in {mods!r}}}); import runpy; " \
       "sys.argv = ['x', *sys.argv[1:]]; runpy.run_module({module!r}, run_name='__main__')"


def test_bench_filters_names_the_dev_extra_for_kornia_and_opencv():
    proc = _python(HIDE.format(mods=["kornia"], module="experiments.bench_filters"), "--quick")
    assert proc.returncode != 0
    assert "kornia is missing" in proc.stderr and "pip install 'cnnconv[dev]'" in proc.stderr
    assert "cnnconv[experiments]" not in proc.stderr


def test_compare_bsds_reference_help_needs_no_optional_package():
    hide = HIDE.format(mods=["pyEdgeEval", "networkx"], module="experiments.compare_bsds_reference")
    proc = _python(hide, "--help")
    assert proc.returncode == 0 and "usage: python -m experiments.compare_bsds_reference" in proc.stdout
    assert "pip install pyedgeeval==0.2.8" in proc.stdout
    proc = _python(hide)
    assert proc.returncode == 1 and "cannot run without pyEdgeEval" in proc.stderr


def test_tensorboard_option_names_the_package(tmp_path, capsys):
    import sys as _sys

    saved = _sys.modules.get("torch.utils.tensorboard")
    _sys.modules["torch.utils.tensorboard"] = None  # as if tensorboard were not installed
    try:
        with pytest.raises(SystemExit):
            kernel_recovery.main(["--out", str(tmp_path), "--tensorboard"])
    finally:
        if saved is None:
            del _sys.modules["torch.utils.tensorboard"]
        else:
            _sys.modules["torch.utils.tensorboard"] = saved
    assert "pip install tensorboard" in capsys.readouterr().err


def test_bench_filters_busy_machine_is_not_judged():
    from experiments.bench_filters import busy

    assert busy(1.5, 2) is None
    text = busy(8.86, 2)
    assert "busy (load average 8.9 on 2 cores)" in text and "not judged" in text


@pytest.mark.parametrize("module", ["bench_filters", "bench_overhead"])
def test_bench_thread_and_clock_options(module, capsys):
    import argparse
    import importlib
    import time

    import torch

    bench = importlib.import_module(f"experiments.{module}")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--threads", "0"])
    assert exc.value.code == 2
    assert "--threads must be positive, got 0" in capsys.readouterr().err

    from experiments.timing import add_clock_options, use_clock_options

    parser = argparse.ArgumentParser()
    add_clock_options(parser, "threads")
    threads = torch.get_num_threads()
    try:
        args = parser.parse_args(["--threads", "1", "--clock", "process"])
        assert use_clock_options(parser, args) is time.process_time and torch.get_num_threads() == 1
        assert use_clock_options(parser, parser.parse_args([])) is time.perf_counter
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_bench_filters_quick_states_targets_for_the_default_size_only(capsys):
    from experiments import bench_filters

    assert bench_filters.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "(1, 3, 128, 128)" in out
    assert "targets are stated for --size 512 --batch 4 only" in out
    assert "FAIL" not in out and "PASS" not in out and "targets not met" not in out
    assert out.count("not judged (kornia >=") == 7


def test_every_experiment_has_a_num_threads_setting():
    import dataclasses

    from experiments import cnn_kernels, edges_noise, fft_benchmark, kernel_recovery, large_kernels

    for cls in (cnn_kernels.CNNKernelsConfig, edges_noise.EdgesNoiseConfig, fft_benchmark.FFTBenchmarkConfig,
                kernel_recovery.KernelRecoveryConfig, large_kernels.LargeKernelsConfig):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert "num_threads" in fields, cls.__name__
        assert fields["num_threads"].type in (int, "int"), cls.__name__
