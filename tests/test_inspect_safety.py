"""Safety of ``cnnconv inspect`` on hostile or broken files: bounded work, clean one-line errors.

Crafted checkpoints are tiny files that describe huge tensors (stride-0 storage); the command
runs in a subprocess under a wall-clock timeout and an address-space limit, so code that would
materialise them fails the test instead of stalling or exhausting the machine.
"""

import json
import os
import resource
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from cnnconv import analysis as inspect_mod
from cnnconv.cli import main
from cnnconv.analysis import InspectError, extract_kernels, read_checkpoint

MEMORY_LIMIT = 6 * 2**30  # address space of the subprocess: far below what materialising needs


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cli(*args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "cnnconv", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=_limit_memory,
    )


def assert_clean_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cnnconv: error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_stride_zero_kernel_count_is_bounded(tmp_path):
    """10^10 kernels of 3x3 in a 1.7 KB file: the first --max-kernels are inspected, the rest counted."""
    path = tmp_path / "many.pt"
    value = torch.randn(1).abs() + 0.5
    torch.save({"conv.weight": value.expand(100000, 100000, 3, 3)}, path)
    assert path.stat().st_size < 4096
    result = run_cli("inspect", path, "--json", "--max-kernels", "2", "--top", "1", timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    (layer,) = json.loads(result.stdout)["layers"]
    assert layer["kernels_total"] == 100000 * 100000
    assert len(layer["kernels"]) == 2
    assert layer["kernels"][0]["properties"]["dc_gain"] == pytest.approx(9 * float(value), rel=1e-6)
    assert layer["kernels"][0]["matches"][0]["name"] == "box"


def test_stride_zero_huge_kernel_is_refused(tmp_path):
    path = tmp_path / "huge.pt"
    torch.save({"conv.weight": torch.ones(1).expand(1, 1, 60000, 60000)}, path)
    result = run_cli("inspect", path, timeout=90)
    assert_clean_error(result, "60000x60000", "limit")


def test_huge_rank_one_factors_are_not_multiplied_out(tmp_path):
    """Two stride-0 factors whose outer product would be 10^10 x 9 values: refused, not built."""
    path = tmp_path / "factors.pt"
    u = torch.randn(1).expand(100000, 100000, 3)
    v = torch.randn(1).expand(100000, 100000, 3)
    torch.save({"c.parametrizations.weight.original0": u, "c.parametrizations.weight.original1": v}, path)
    result = run_cli("inspect", path, "--json", "--max-kernels", "1", "--top", "1", timeout=90)
    assert_clean_error(result, "rank-one factors", str(inspect_mod.MAX_WEIGHT_ELEMENTS))


def test_shared_nested_dicts_are_visited_once(tmp_path):
    """Two dicts of 2000 values that are all the other dict: 2000^3 paths, two mappings."""
    inner = {f"k{i}": i for i in range(2000)}
    outer = {f"k{i}": inner for i in range(2000)}
    for key in list(inner):
        inner[key] = outer
    path = tmp_path / "dag.pt"
    torch.save({"a": outer, "z": {"conv.weight": torch.randn(1, 1, 3, 3)}}, path)
    assert path.stat().st_size < 200_000
    result = run_cli("inspect", path, "--json", "--top", "1", timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["layers"][0]["name"] == "conv"


def test_max_kernels_has_a_documented_ceiling(tmp_path, capsys):
    path = tmp_path / "conv.pt"
    torch.save(nn.Conv2d(1, 2, 3).state_dict(), path)
    too_many = inspect_mod.MAX_KERNELS + 1
    assert main(["inspect", str(path), "--max-kernels", str(too_many)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: ") and str(too_many) in err and str(inspect_mod.MAX_KERNELS) in err


def test_kernel_size_limits():
    with pytest.raises(ValueError, match="limit"):
        inspect_mod.describe_kernel(torch.randn(2, inspect_mod.MAX_KERNEL_SIDE + 1))
    with pytest.raises(ValueError, match="limit"):
        inspect_mod.match_kernel(torch.randn(inspect_mod.MAX_KERNEL_SIDE + 1, 3))


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    result = run_cli("inspect", fifo, timeout=60)
    assert_clean_error(result, "not a regular file")
    with pytest.raises(InspectError, match="not a regular file"):
        read_checkpoint(fifo)


def test_device_file_is_refused():
    with pytest.raises(InspectError, match="not a regular file"):
        read_checkpoint("/dev/zero")


def test_control_characters_in_names_are_escaped(tmp_path):
    name = "evil\x1b[31mRED\x1b]0;title\x07\r\nfake"
    path = tmp_path / "names.pt"
    torch.save({f"{name}.weight": torch.randn(1, 1, 3, 3)}, path)
    result = run_cli("inspect", path)
    assert result.returncode == 0, result.stderr
    for ch in "\x1b\x07\r":
        assert ch not in result.stdout
    assert "evil\\x1b[31mRED" in result.stdout and "\\r\\nfake" in result.stdout
    # Error messages that repeat names are escaped as well.
    result = run_cli("inspect", path, "--layer", "nothing\x1b[2J")
    assert_clean_error(result, "evil\\x1b[31mRED")
    assert "\x1b" not in result.stderr


def test_loading_stays_weights_only(tmp_path, monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    path = tmp_path / "conv.pt"
    torch.save(nn.Conv2d(1, 2, 3).state_dict(), path)
    assert len(extract_kernels(path)) == 1
    assert calls == [True]


# --------------------------------------------------------------------------- clean CLI errors


def _conv_file(path, weight):
    torch.save({"conv.weight": weight, "conv.bias": torch.randn(weight.shape[0])}, path)
    return path


def test_nan_weights_give_a_clean_error(tmp_path, capsys):
    w = torch.randn(2, 1, 3, 3)
    w[1, 0, 1, 2] = float("nan")
    path = _conv_file(tmp_path / "diverged.pt", w)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: ") and err.count("\n") == 1
    assert "NaN" in err and "conv" in err and "[out 1, in 0]" in err


@pytest.mark.parametrize("shape", [(2, 1, 0, 3), (0, 1, 3, 3), (2, 0, 3, 3), (2, 1, 0)])
def test_zero_size_kernels_give_a_clean_error(tmp_path, capsys, shape):
    path = tmp_path / "empty.pt"
    torch.save({"conv.weight": torch.randn(*shape)}, path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: ") and err.count("\n") == 1
    assert "empty" in err and "x".join(map(str, shape)) in err


def test_plot_to_directory_or_unwritable_folder(tmp_path, capsys):
    path = _conv_file(tmp_path / "ok.pt", torch.randn(1, 1, 3, 3))
    folder = tmp_path / "out.png"
    folder.mkdir()
    for extra in ([], ["--overwrite"]):
        assert main(["inspect", str(path), "--plot", str(folder), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cnnconv: error: ") and "directory" in err and err.count("\n") == 1
    assert folder.is_dir() and not os.listdir(folder)

    # A folder where nothing can be created, whoever runs the test.
    assert main(["inspect", str(path), "--plot", "/proc/kernels.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: ") and "/proc" in err and err.count("\n") == 1

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
        assert main(["inspect", str(path), "--plot", str(locked / "k.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cnnconv: error: ") and "not writable" in err and err.count("\n") == 1
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    "name, signature", [("k.pdf", b"%PDF"), ("k.svg", b"<?xml"), ("k.PNG", b"\x89PNG\r\n\x1a\n")]
)
def test_plot_format_follows_the_extension(tmp_path, capsys, name, signature):
    path = _conv_file(tmp_path / "ok.pt", torch.randn(1, 1, 3, 3))
    out = tmp_path / name
    assert main(["inspect", str(path), "--plot", str(out)]) == 0
    assert out.read_bytes()[: len(signature)] == signature


@pytest.mark.parametrize("name", ["k.xyz", "k", "k.pdf.tmp"])
def test_plot_unknown_extension_is_refused(tmp_path, capsys, name):
    path = _conv_file(tmp_path / "ok.pt", torch.randn(1, 1, 3, 3))
    assert main(["inspect", str(path), "--plot", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: ") and "extension" in err and ".png" in err
    assert sorted(os.listdir(tmp_path)) == ["ok.pt"]


def test_calibrate_without_cuda_is_a_clean_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["calibrate", "--quick", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: ") and "cuda" in err and err.count("\n") == 1
    assert main(["calibrate", "--quick", "--device", "warp9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnconv: error: ") and "'warp9'" in err and err.count("\n") == 1


@pytest.mark.parametrize("content", ['{"cpu": [1, 2]}', '{"cpu": {"fft": "abc"}}', '{"cpu": 3}'])
def test_calibrate_with_a_corrupted_calibration_file(tmp_path, content):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "calibration.json").write_text(content)
    env = dict(os.environ, OMP_NUM_THREADS="1", CNNCONV_CACHE_DIR=str(cache))
    result = subprocess.run(
        [sys.executable, "-m", "cnnconv", "calibrate", "--quick", "--path", str(tmp_path / "new.json")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    if result.returncode == 0:  # the planner may recover from the damaged file by itself
        assert json.loads((tmp_path / "new.json").read_text())["cpu"]["fft"] > 0
        return
    assert_clean_error(result, "calibration")


# --------------------------------------------------------------------------- plot file mode


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_plot_file_mode_honours_the_umask(tmp_path, umask):
    from cnnconv.analysis import plotting

    old = os.umask(umask)
    try:
        plotting.plot_kernels(torch.randn(1, 3, 3), path=tmp_path / "k.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "k.png").st_mode) == 0o666 & ~umask
    assert np.frombuffer((tmp_path / "k.png").read_bytes()[:4], dtype=np.uint8).tolist() == [0x89, 0x50, 0x4E, 0x47]
