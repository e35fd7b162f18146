"""Tests of the command line's usability: version, calibrate summary and progress, kernel plots,
help texts, compact JSON, absolute paths and device errors."""

import importlib
import io
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import cnnconv
from cnnconv import cli, kernels, planner
from cnnconv._utils import calibration
from cnnconv.cli import progress as cli_progress
from cnnconv.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "cnnconv", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_version_names_cnnconv_and_torch():
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cnnconv {cnnconv.__version__} (torch {torch.__version__})"


def test_no_command_prints_help_and_exits_2():
    result = run_cli()
    assert result.returncode == 2
    assert "usage: cnnconv" in result.stderr and "commands:" in result.stderr
    for command in ("inspect", "kernels", "calibrate"):
        assert command in result.stderr


@pytest.mark.parametrize("command", ["inspect", "kernels", "calibrate"])
def test_every_command_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text.lower() and f"cnnconv {command}" in text.split("xample", 1)[1]
    if command in ("inspect", "calibrate"):  # can take long: the help says how long
        assert re.search(r"\d+ s on a 2-core CPU", text), text


def test_missing_required_argument_is_named(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: path" in capsys.readouterr().err


# --------------------------------------------------------------------------- calibrate


def _fake_constants():
    """Constants shaped like planner.calibrate's result, with known values."""
    consts = json.loads(json.dumps(planner.DEFAULT_CONSTANTS["cpu"]))
    consts["fft"] = 4.0e-10
    consts["matmul"] = 7.0e-10
    consts["t0_fft"] = 6.0e-4
    consts["t0_direct"] = 3.0e-5
    return consts


def _fake_calibrate(consts):
    """Stands in for planner.calibrate: writes ``consts`` where asked, as the real one does."""

    def calibrate(path=None, quick=False, device=None):
        target = planner.calibration_path(path)
        target.write_text(json.dumps({"cpu": consts}))
        calibration.forget_loaded()
        return consts

    return calibrate


def _planner_crossover(shape, weight, groups):
    """Smallest odd kernel size for which planner.choose_method picks the FFT."""
    for k in range(3, 64, 2):
        if planner.choose_method(shape, (*weight, k, k), groups=groups) == "fft":
            return k
    return None


def test_calibrate_prints_a_short_summary_with_units(monkeypatch, tmp_path, capsys):
    consts = _fake_constants()
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(planner, "calibrate", _fake_calibrate(consts))
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", "--quick"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert 4 <= len(lines) <= 10
    assert "0.4 ns per point x log2(points)" in out  # fft constant, 4e-10 s
    assert "0.7 ns per complex multiply-add" in out  # matmul constant
    assert "0.6 ms" in out and "30 us" in out  # start-up times
    assert "ns per multiply-add" in out
    # The crossovers are those the planner now picks with the fitted constants.
    depthwise = _planner_crossover((1, 3, 512, 512), (3, 1), 3)
    dense = _planner_crossover((1, 64, 56, 56), (64, 64), 1)
    assert depthwise and dense and depthwise != dense
    assert f"3x512x512 image, depthwise: the planner picks the FFT from {depthwise}x{depthwise} kernels" in out
    assert f"64->64 channels, 56x56: the planner picks the FFT from {dense}x{dense} kernels" in out
    assert lines[-1] == f"written to {tmp_path / 'calibration.json'}"
    calibration.forget_loaded()


def test_calibrate_elsewhere_says_the_planner_does_not_use_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(planner, "calibrate", _fake_calibrate(_fake_constants()))
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", "--path", "cal.json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"not in use: the planner reads {tmp_path / 'cache' / 'calibration.json'}" in lines[-2]
    assert lines[-1] == f"written to {tmp_path / 'cal.json'}"  # absolute, whatever was given
    calibration.forget_loaded()


def test_calibrate_json_is_the_raw_data(monkeypatch, capsys):
    consts = _fake_constants()
    consts["fft"] = float("nan")
    monkeypatch.setattr(planner, "calibrate", lambda path=None, quick=False, device=None: consts)
    assert main(["calibrate", "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1  # compact by default
    data = json.loads(out)
    assert data["fft"] is None and data["matmul"] == 7.0e-10
    assert data["direct_dense_by_ch"] == consts["direct_dense_by_ch"]
    assert main(["calibrate", "--json", "--indent", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["t0_fft"] == 6.0e-4


def test_calibrate_shows_progress_on_stderr(monkeypatch, capsys):
    """Without a terminal, progress lines with the elapsed time go to stderr while it runs."""
    monkeypatch.setattr(cli_progress, "PROGRESS_EVERY", 0.05)
    seen = []

    def slow_calibrate(path=None, quick=False, device=None):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "elapsed" not in sys.stderr.getvalue():
            time.sleep(0.01)
        seen.append(sys.stderr.getvalue())
        return _fake_constants()

    monkeypatch.setattr(planner, "calibrate", slow_calibrate)
    assert main(["calibrate", "--quick"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"cnnconv: calibrating cpu: \d+ s elapsed", seen[0]), seen[0]
    assert "written to" not in err


def test_progress_uses_tqdm_on_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    with cli_progress.Progress("reading", unit="kernels") as progress:
        progress.stage("inspecting", 3)
        for _ in range(3):
            progress.update()
        progress.stage("drawing the figure")
    text = stream.getvalue()
    assert "inspecting:" in text and "/3 [" in text and "kernels/s" in text  # a tqdm bar
    assert "s elapsed" not in text  # not the plain progress lines


# --------------------------------------------------------------------------- kernels


def test_kernels_plot_one_and_several(tmp_path, capsys, monkeypatch):
    import cnnconv.analysis.plotting as plotting

    figures = []
    original = plotting.plot_kernels
    monkeypatch.setattr(plotting, "plot_kernels", lambda *a, **kw: figures.append(original(*a, **kw)))
    one = tmp_path / "sobel.png"
    assert main(["kernels", "sobel_x", "--plot", str(one)]) == 0
    out = capsys.readouterr().out
    assert f"plot written to {one}" in out
    assert one.read_bytes()[:8] == PNG_SIGNATURE
    several = tmp_path / "several.png"
    assert main(["kernels", "sobel_x", "gaussian:sigma=1.5,size=7", "laplacian4", "--plot", str(several)]) == 0
    out = capsys.readouterr().out
    assert several.read_bytes()[:8] == PNG_SIGNATURE
    assert "gaussian:sigma=1.5,size=7  7x7" in out
    # Bank kernels differ in amplitude (Sobel 2, Gaussian 0.03): each is drawn on its own scale.
    expected = [2.0, float(kernels.gaussian(1.5, 7).max()), 4.0]
    limits = [ax.images[0].get_clim()[1] for ax in figures[-1].axes if ax.images]
    assert limits == pytest.approx(expected)


def test_kernels_named_prints_values_and_json(capsys):
    assert main(["kernels", "sobel_x", "gaussian:sigma=1.0,size=5", "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    data = json.loads(out)
    np.testing.assert_allclose(data["sobel_x"]["values"], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    x = np.arange(5) - 2.0
    g = np.exp(-(x**2) / 2)
    np.testing.assert_allclose(data["gaussian:sigma=1.0,size=5"]["values"], np.outer(g, g) / np.outer(g, g).sum(),
                               rtol=1e-6)
    assert main(["kernels", "sobel_x"]) == 0
    out = capsys.readouterr().out
    assert "-2.0000" in out and "sobel_x" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["kernels", "nosuch"], "unknown kernel name, got 'nosuch'"),
        (["kernels", "gaussian"], "kernel 'gaussian' needs arguments"),
        (["kernels", "gaussian:sigma"], "kernel arguments must be key=value"),
        (["kernels", "--plot", "k.png"], "--plot needs kernel names"),
        (["kernels", "sobel_x", "--plot", "k.txt"], "--plot: path must end in one of the extensions"),
    ],
)
def test_kernels_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_kernels_plot_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "k.png"
    path.write_bytes(b"keep")
    assert main(["kernels", "sobel_x", "--plot", str(path)]) == 2
    assert f"refusing to overwrite existing file '{path}'" in capsys.readouterr().err
    assert path.read_bytes() == b"keep"


# --------------------------------------------------------------------------- inspect


def _checkpoint(path, n=4):
    torch.manual_seed(5)
    conv = nn.Conv2d(1, n, 3)
    torch.save(conv.state_dict(), path)
    return path


def test_inspect_json_compact_by_default_indent_on_request(tmp_path, capsys, monkeypatch):
    _checkpoint(tmp_path / "ck.pt")
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", "ck.pt", "--json", "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    report = json.loads(out)
    assert report["path"] == str(tmp_path / "ck.pt")  # absolute, as every printed path
    assert main(["inspect", "ck.pt", "--json", "--top", "1", "--indent", "2"]) == 0
    pretty = capsys.readouterr().out
    assert json.loads(pretty) == report and len(pretty.splitlines()) > 20 and '\n  "layers"' in pretty
    assert main(["inspect", "ck.pt", "--json", "--indent", "-1"]) == 2
    assert "--indent must be between 0 and 8, got -1" in capsys.readouterr().err


def test_inspect_prints_absolute_paths(tmp_path, capsys, monkeypatch):
    _checkpoint(tmp_path / "ck.pt")
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", "ck.pt", "--top", "1", "--plot", "k.png"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == str(tmp_path / "ck.pt")
    assert out.strip().splitlines()[-1] == f"plot written to {tmp_path / 'k.png'}"


def test_inspect_plot_shows_progress(tmp_path, monkeypatch, capsys):
    """Progress lines count the kernels while a run goes on (elapsed-time lines off a terminal)."""
    monkeypatch.setattr(cli_progress, "PROGRESS_EVERY", 0.02)
    import cnnconv.analysis as inspect_module

    original = inspect_module.match_kernel

    def slow_match(kernel, top=3):
        deadline = time.monotonic() + 20
        start = sys.stderr.getvalue().count("elapsed")
        while time.monotonic() < deadline and sys.stderr.getvalue().count("elapsed") == start:
            time.sleep(0.005)
        return original(kernel, top=top)

    monkeypatch.setattr(inspect_module, "match_kernel", slow_match)
    path = _checkpoint(tmp_path / "ck.pt", n=3)
    assert main(["inspect", str(path), "--top", "1", "--plot", str(tmp_path / "k.png")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"cnnconv: inspecting: 1/3 kernels, \d+ s elapsed", err), err
    assert re.search(r"cnnconv: inspecting: 2/3 kernels, \d+ s elapsed", err), err


# --------------------------------------------------------------------------- devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_one_line(spec, capsys, monkeypatch):
    monkeypatch.setattr(planner, "calibrate", lambda **kw: pytest.fail("must not calibrate"))
    assert main(["calibrate", "--device", spec]) == 2
    err = capsys.readouterr().err
    assert err == f"cnnconv: error: --device '{spec}': CUDA is not available on this machine\n"


@pytest.mark.parametrize("spec", ["meta", "gpu", "cuda:-1"])
def test_devices_without_kernels_are_refused(spec, capsys, monkeypatch):
    monkeypatch.setattr(planner, "calibrate", lambda **kw: pytest.fail("must not calibrate"))
    assert main(["calibrate", "--device", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: --device") and spec in err and len(err.splitlines()) == 1


def test_inspect_plot_draws_at_most_64_kernels(tmp_path, capsys, monkeypatch):
    import cnnconv.analysis.plotting as plotting

    drawn = []
    monkeypatch.setattr(plotting, "plot_side_by_side", lambda learned, *a, **kw: drawn.append(len(learned)))
    path = _checkpoint(tmp_path / "ck.pt", n=70)
    assert main(["inspect", str(path), "--top", "1", "--max-kernels", "70", "--plot", str(tmp_path / "k.png")]) == 0
    assert drawn == [64]
    err = capsys.readouterr().err
    assert "cnnconv: note: --plot draws the first 64 of 70 kernels" in err


def test_bench_lists_runs_and_refuses(capsys, monkeypatch):
    from cnnconv.cli import runner

    assert cli.main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in runner.BENCHMARKS)
    assert cli.main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    # the options after the name reach the benchmark's own parser
    seen = []
    module = importlib.import_module(f"{runner.experiments_package()}.bench_filters")
    monkeypatch.setattr(module, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "filters", "--quick"]) == 0
    assert seen == [["--quick"]]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--help"])
    assert exit_.value.code == 0 and "cnnconv bench filters --quick" in capsys.readouterr().out
