"""Tests of the cnnconv command line.

The acceptance cases run the real command (``python -m cnnconv``) in a subprocess on
checkpoints of a plain ``nn.Conv2d`` whose weights are written here from their formulas.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from cnnconv.cli import main

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


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


def save_conv(path, kernels):
    """A plain Conv2d(1, n, k) with the given kernels, saved as torch.save(state_dict)."""
    kernels = [torch.as_tensor(k, dtype=torch.float32) for k in kernels]
    conv = nn.Conv2d(1, len(kernels), kernels[0].shape[-1], bias=True)
    with torch.no_grad():
        for i, k in enumerate(kernels):
            conv.weight[i, 0] = k
    torch.save(conv.state_dict(), path)
    return path


def np_gaussian(sigma, size):
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2 * sigma**2))
    return np.outer(g, g) / np.outer(g, g).sum()


def test_inspect_sobel_text(tmp_path):
    path = save_conv(tmp_path / "sobel.pt", [SOBEL_X])
    result = run_cli("inspect", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "shape 1x1x3x3" in out
    first = out.split("best matches:")[1].splitlines()[1]
    assert "1. sobel_x" in first and "similarity 1.0000" in first and "transform identity" in first
    # Kernel values are printed for small kernels.
    assert "-2.0000" in out and "2.0000" in out
    assert "dc_gain 0" in out and "antisymmetry 1" in out


def test_inspect_json_acceptance(tmp_path):
    """Sobel x, Sobel x rotated by 180 degrees and a sampled Gaussian, in one JSON report."""
    sigma = 1.6
    gauss = np_gaussian(sigma, 7)
    kernels = [np.pad(SOBEL_X.numpy(), 2), np.pad(np.rot90(SOBEL_X.numpy(), 2), 2), gauss]
    path = save_conv(tmp_path / "three.pt", [k.copy() for k in kernels])
    result = run_cli("inspect", path, "--json", "--top", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (layer,) = report["layers"]
    assert layer["shape"] == [3, 1, 7, 7] and layer["kernels_total"] == 3
    sobel, flipped, gaussian = layer["kernels"]
    assert len(sobel["matches"]) == 2
    assert sobel["matches"][0]["name"] == "sobel_x"
    assert sobel["matches"][0]["transform"] == "identity"
    assert sobel["matches"][0]["similarity"] == pytest.approx(1.0, abs=1e-6)
    assert flipped["matches"][0]["name"] == "sobel_x"
    assert flipped["matches"][0]["transform"] == "conv_flip"
    assert flipped["matches"][0]["similarity"] == pytest.approx(1.0, abs=1e-6)
    assert gaussian["matches"][0]["name"] == "gaussian"
    assert gaussian["matches"][0]["sigma"] == pytest.approx(sigma, rel=0.02)
    assert gaussian["properties"]["dc_gain"] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(np.array(gaussian["values"]), gauss, atol=1e-6)


def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("inspect", "kernels", "calibrate"):
        assert command in result.stdout


def test_refused_checkpoint_subprocess(tmp_path):
    """A checkpoint that runs code when unpickled: refused, not run, clean error, exit 2."""
    marker = tmp_path / "marker"
    # Built by hand so the file needs no class from this test module to exist.
    payload = {"conv.weight": torch.randn(1, 1, 3, 3)}
    evil = tmp_path / "evil.pt"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload["x"] = Payload()
    torch.save(payload, evil)
    result = run_cli("inspect", evil)
    assert result.returncode == 2
    assert result.stderr.startswith("cnnconv: error: refused to load")
    assert "not executed" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_error_messages_in_process(tmp_path, capsys):
    cases = []
    cases.append((tmp_path / "missing.pt", "does not exist"))
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    cases.append((text, "not a PyTorch checkpoint"))
    linear = tmp_path / "linear.pt"
    torch.save(nn.Linear(3, 2).state_dict(), linear)
    cases.append((linear, "no convolution kernels"))
    for path, message in cases:
        assert main(["inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cnnconv: error: ") and message in err and "Traceback" not in err

    ok = save_conv(tmp_path / "ok.pt", [SOBEL_X])
    assert main(["inspect", str(ok), "--layer", "head"]) == 2
    assert "no convolution layer named 'head'" in capsys.readouterr().err
    assert main(["inspect", str(ok), "--top", "0"]) == 2
    assert "--top must be positive, got 0" in capsys.readouterr().err


def test_layer_filter_max_kernels_and_plot(tmp_path, capsys):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 9))
    path = tmp_path / "ck.pt"
    torch.save({"model": model.state_dict(), "step": 12}, path)

    assert main(["inspect", str(path), "--layer", "2", "--json", "--max-kernels", "2", "--top", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    (layer,) = report["layers"]
    assert layer["name"] == "2" and layer["kernels_total"] == 6 and len(layer["kernels"]) == 2
    assert "values" not in layer["kernels"][0]  # 9x9 is too large to print
    w = model[2].weight.detach()
    assert layer["kernels"][1]["properties"]["dc_gain"] == pytest.approx(float(w[0, 1].sum()), abs=1e-5)

    assert main(["inspect", str(path), "--layer", "0", "--json", "--response", "--max-kernels", "1", "--top", "1"]) == 0
    props = json.loads(capsys.readouterr().out)["layers"][0]["kernels"][0]["properties"]
    response = np.array(props["frequency_response"])
    expected = np.fft.fftshift(np.abs(np.fft.fft2(model[0].weight.detach()[0, 0].double().numpy(), s=(64, 64))))
    np.testing.assert_allclose(response, expected, rtol=1e-6, atol=1e-9)

    png = tmp_path / "kernels.png"
    assert main(["inspect", str(path), "--layer", "0", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "layer 0" in out and "more kernels" not in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # An existing plot is not overwritten without --overwrite.
    before = png.stat().st_mtime_ns
    assert main(["inspect", str(path), "--layer", "0", "--plot", str(png)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert png.stat().st_mtime_ns == before


def test_kernels_command(capsys):
    assert main(["kernels", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["sobel_x"]["shape"] == [3, 3]


def test_calibrate_command_calls_the_planner(monkeypatch, tmp_path, capsys):
    from cnnconv import planner

    calls = []

    def fake_calibrate(path=None, quick=False, device=None):
        calls.append((path, quick, device))
        return {"fft": 1.5e-9, "direct": float("nan")}

    monkeypatch.setattr(planner, "calibrate", fake_calibrate)
    target = str(tmp_path / "calibration.json")
    assert main(["calibrate", "--quick", "--path", target, "--json"]) == 0  # the raw data
    assert calls == [(target, True, None)]
    assert json.loads(capsys.readouterr().out) == {"fft": 1.5e-9, "direct": None}


def test_constrained_checkpoint_warns(tmp_path):
    """A checkpoint of a constrained layer: the stored original is reported with a warning."""
    from cnnconv.constraints import constrain
    from cnnconv.learnable import LearnableConv2d
    from cnnconv.training import save_checkpoint

    model = nn.Sequential()
    model.add_module("first", constrain(LearnableConv2d(1, 2, 3), "zero_sum", "unit_norm"))
    with torch.no_grad():
        model.first.parametrizations.weight.original.normal_()
    path = save_checkpoint(tmp_path / "ck.pt", model)
    result = run_cli("inspect", path)
    assert result.returncode == 0, result.stderr
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("cnnconv: warning: layer first: ")
    assert "UNCONSTRAINED" in warning[0] and "cnnconv.export_state_dict(model)" in warning[0]
    assert "note: values are the stored UNCONSTRAINED original" in result.stdout
    result = run_cli("inspect", path, "--json")
    assert "UNCONSTRAINED" in json.loads(result.stdout)["layers"][0]["note"]
