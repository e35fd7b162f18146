"""Run folders that survive kills, bad files and bad input: atomic writes, checkpoint checks,
validation before any work, the run lock and configs that cannot choose code to run."""

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnconv._utils import io as _io
from cnnconv.training import (CheckpointError, RunFolderInUse, RunLock, atomic_write_text,
                              experiment_main, load_checkpoint, load_config, param,
                              read_metrics, save_checkpoint)
from experiments import cnn_kernels, demo, edges_noise, fft_benchmark, kernel_recovery, \
    large_kernels

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- a tiny experiment


@dataclass
class TinyConfig:
    seed: int = param(0, "seed")
    steps: int = param(6, "steps")
    checkpoint_every: int = param(2, "checkpoint period")


def tiny_run(cfg, run):
    model = run.wrap(nn.Conv2d(1, 2, 3, padding=1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def step_fn(i):
        x = torch.randn(4, 1, 8, 8, generator=run.step_generator(i))
        loss = (model(x) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    run.fit(model, opt, step_fn, steps=cfg.steps, tag="main",
            checkpoint_every=cfg.checkpoint_every)


def tiny_main(argv):
    return experiment_main("tiny", TinyConfig, tiny_run, argv)


def _fails_in_one_line(capsys, argv, main=tiny_main) -> str:
    """``main(argv)`` exits with status 2 and one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def tiny_dir(tmp_path):
    """A finished tiny run with checkpoints at steps 2, 4, 6 (the last one stays)."""
    return tiny_main(["--out", str(tmp_path), "--name", "r", "--device", "cpu", "--quiet"])


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        files = [atomic_write_text(tmp_path / "a.txt", "x"),
                 save_checkpoint(tmp_path / "c.pt", nn.Linear(2, 1)),
                 _io.atomic_write(tmp_path / "b.bin", b"\x00\x01")]
        from experiments.common import Report, write_csv

        files.append(write_csv(tmp_path / "t.csv", [{"a": 1}]))
        files.append(Report("r").write(tmp_path / "r.md"))
    finally:
        os.umask(old)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_atomic_write_failure_keeps_the_old_file_and_names_the_new_one(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    _io.atomic_write(path, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_io.os, "fsync", full)
    with pytest.raises(OSError, match=f"could not write {path}: No space left") as info:
        _io.atomic_write(path, "new")
    assert info.value.errno == errno.ENOSPC
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temporary file left

    def broken(fh):
        fh.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.undo()
    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(path, broken)
    assert path.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(TypeError, match="data must be bytes, str or a function"):
        _io.atomic_write(path, 3)


class _FullDisk:
    """A file whose writes fail with ENOSPC, like one on a full disk."""

    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_checkpoint_on_a_full_disk_says_what_failed(tmp_path, monkeypatch, failing):
    path = tmp_path / "main.pt"
    model = nn.Linear(3, 2)
    save_checkpoint(path, model, step=1)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "fsync":
        monkeypatch.setattr(_io.os, "fsync", full)
    else:
        fdopen = os.fdopen
        monkeypatch.setattr(_io.os, "fdopen", lambda *a, **k: _FullDisk(fdopen(*a, **k)))
    with pytest.raises(OSError, match=f"could not write {path}: No space left on device"):
        save_checkpoint(path, model, step=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.pt"]


# --------------------------------------------------------------------------- resume after kills


def _tiny_kernel_recovery(out, name="r"):
    return kernel_recovery.main([
        "--out", str(out), "--name", name, "--device", "cpu", "--quiet",
        "--set", "kernel_sizes=[3]", "--set", "datasets=[noise]", "--set", "batch_size=2",
        "--set", "crop=16", "--set", "adam_steps=4", "--set", "lbfgs_steps=1",
        "--set", "lbfgs_iter=3", "--set", "eval_every=2", "--set", "checkpoint_every=2"])


def test_resume_after_a_kill_while_the_report_was_written(tmp_path):
    run_dir = _tiny_kernel_recovery(tmp_path)
    results = (run_dir / "results.csv").read_bytes()
    weights = torch.load(run_dir / "checkpoints" / "noise_k3_lbfgs.pt", weights_only=True)
    # State of a run killed after results.csv was renamed into place and while report.md was
    # being written: no report, a half-written temporary file beside it.
    (run_dir / "report.md").unlink()
    (run_dir / ".report.md.x1y2z3.tmp").write_text("# Kernel rec")
    (run_dir / ".error_curves.csv.abc.tmp").write_text("run,st")
    assert kernel_recovery.main(["--resume", str(run_dir), "--quiet", "--device", "cpu"]) \
        == run_dir
    assert (run_dir / "report.md").read_text().startswith("# Kernel recovery")
    assert not list(run_dir.rglob("*.tmp"))
    assert (run_dir / "results.csv").read_bytes().split(b"\n")[0] == results.split(b"\n")[0]
    again = torch.load(run_dir / "checkpoints" / "noise_k3_lbfgs.pt", weights_only=True)
    for key in weights["model"]:
        assert torch.equal(again["model"][key], weights["model"][key])


def test_resume_survives_garbage_rows_in_metrics(tiny_dir):
    ckpt = tiny_dir / "checkpoints" / "main.pt"
    save_checkpoint(ckpt, nn.Conv2d(1, 2, 3, padding=1),
                    torch.optim.Adam(nn.Conv2d(1, 2, 3, padding=1).parameters()), step=4)
    with open(tiny_dir / "metrics.csv", "a") as fh:
        fh.write("main,notastep,loss,1.0\ngarbage\nmain,5,loss,abc\nmain,6,lo")  # cut short
    assert tiny_main(["--resume", str(tiny_dir), "--quiet", "--device", "cpu"]) == tiny_dir
    steps, losses = read_metrics(tiny_dir / "metrics.csv")["main"]["loss"]
    assert steps == [1, 2, 3, 4, 5, 6] and all(v == v for v in losses)


# --------------------------------------------------------------------------- bad checkpoints


def _flip_a_weight_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    weight = torch.load(path, weights_only=True)["model"]["weight"]
    raw = weight.numpy().tobytes()
    at = bytes(data).find(raw)
    assert at > 0
    data[at + len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, match", [
    ("empty", "cannot be read"),
    ("truncated", "cannot be read"),
    ("text", "cannot be read"),
    ("foreign", "is not a cnnconv checkpoint"),
    ("bit flip", "corrupted|cannot be read"),
    ("other model", "does not fit this run"),
    ("step beyond", "outside the 6 steps"),
])
def test_bad_checkpoint_is_one_clear_error(tiny_dir, capsys, damage, match):
    path = tiny_dir / "checkpoints" / "main.pt"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "text":
        path.write_text("step: 4\n")
    elif damage == "foreign":
        torch.save({"state_dict": {"w": torch.randn(3)}, "epoch": 2}, path)
    elif damage == "bit flip":
        _flip_a_weight_bit(path)
    elif damage == "other model":
        save_checkpoint(path, nn.Conv2d(1, 3, 5), step=4)
    else:
        model = nn.Conv2d(1, 2, 3, padding=1)
        save_checkpoint(path, model, torch.optim.Adam(model.parameters()), step=100)
    capsys.readouterr()
    err = _fails_in_one_line(capsys, ["--resume", str(tiny_dir), "--quiet", "--device", "cpu"])
    assert str(path) in err
    assert re.search(match, err), err


def test_checkpoint_checksum_catches_a_changed_value(tmp_path):
    path = tmp_path / "c.pt"
    model = nn.Linear(4, 3)
    save_checkpoint(path, model, step=2)
    _flip_a_weight_bit(path)
    with pytest.raises(CheckpointError, match=f"checkpoint {path}"):
        load_checkpoint(path, nn.Linear(4, 3))


def test_old_checkpoint_without_checksum_loads_with_a_warning(tmp_path):
    path = tmp_path / "old.pt"
    model = nn.Linear(4, 3)
    save_checkpoint(path, model, step=5)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["sha256"]
    torch.save(ckpt, path)
    fresh = nn.Linear(4, 3)
    with pytest.warns(UserWarning, match="no checksum"):
        assert load_checkpoint(path, fresh)["step"] == 5
    assert torch.equal(fresh.weight, model.weight)


# --------------------------------------------------------------------------- validation


TINY_EDGES = ["--set", "image_size=32", "--set", "n_train=2", "--set", "n_test=2",
              "--set", "noise_levels=[0.1]", "--set", "seeds=[0]", "--set", "kernel_sizes=[3]",
              "--set", "inits=[random]", "--set", "zero_sum=[false]", "--set", "steps=2",
              "--set", "batch_size=2", "--set", "parametric=false", "--set", "sigma_grid=[1.0]",
              "--set", "canny_sigmas=[]", "--set", "hand_designed=[sobel]",
              "--set", "n_thresholds=5"]

BAD_INPUT = [
    # (experiment, override, words the error must hold)
    (edges_noise, "steps=-3", "steps"),
    (edges_noise, "lr=.nan", "lr"),
    (edges_noise, "lr=.inf", "lr"),
    (edges_noise, "head_lr=-0.1", "head_lr"),
    (edges_noise, "seeds=[-1]", "seeds"),
    (edges_noise, "seeds=[4294967296]", "seeds"),
    (edges_noise, "batch_size=0", "batch_size"),
    (edges_noise, "batch_size=100000000", "batch_size"),
    (edges_noise, "checkpoint_every=-1", "checkpoint_every"),
    (edges_noise, "sigma_grid=[.nan]", "sigma_grid"),
    (edges_noise, "tie_tolerance=.nan", "tie_tolerance"),
    (edges_noise, "steps=1:30", "steps"),
    (demo, "lr=-1", "lr"),
    (demo, "seeds=[-5]", "seeds"),
    (kernel_recovery, "adam_steps=-1", "adam_steps"),
    (kernel_recovery, "lr=.nan", "lr"),
    (kernel_recovery, "lr=-0.01", "lr"),
    (kernel_recovery, "datasets=[]", "datasets"),
    (kernel_recovery, "kernel_sizes=[]", "kernel_sizes"),
    (kernel_recovery, "photos=[camra]", "camera"),
    (kernel_recovery, "photos=[]", "photos"),
    (kernel_recovery, "seed=-1", "seed"),
    (kernel_recovery, "seed=4294967296", "seed"),
    (kernel_recovery, "batch_size=0", "batch_size"),
    (kernel_recovery, "batch_size=10000000", "batch_size"),
    (kernel_recovery, "checkpoint_every=-5", "checkpoint_every"),
    (kernel_recovery, "lbfgs_iter=0", "lbfgs_iter"),
    (kernel_recovery, "lbfgs_steps=-2", "lbfgs_steps"),
    (kernel_recovery, "crop=100000", "crop"),
    (cnn_kernels, "steps=-1", "steps"),
    (cnn_kernels, "lr=.inf", "lr"),
    (cnn_kernels, "lr=0", "lr"),
    (cnn_kernels, "seed=-3", "seed"),
    (cnn_kernels, "batch_size=0", "batch_size"),
    (cnn_kernels, "batch_size=1000000", "batch_size"),
    (cnn_kernels, "checkpoint_every=-1", "checkpoint_every"),
    (cnn_kernels, "weight_decay=.nan", "weight_decay"),
    (large_kernels, "steps=-1", "steps"),
    (large_kernels, "photos=[lena]", "photos"),
    (large_kernels, "blurs=[]", "blurs"),
    (large_kernels, "lbfgs_iter=0", "lbfgs_iter"),
    (large_kernels, "batch_size=0", "batch_size"),
    (large_kernels, "seed=99999999999", "seed"),
    (large_kernels, "checkpoint_every=-1", "checkpoint_every"),
    (large_kernels, "gaussian_sigma=.nan", "gaussian_sigma"),
    (fft_benchmark, "module=this", "module"),
    (fft_benchmark, "module=experiments.bench_filters", "module"),
    (fft_benchmark, "args=[--out, /tmp/elsewhere]", "args"),
    (fft_benchmark, "args=[--ou=/tmp/elsewhere]", "args"),
    (fft_benchmark, "args=[--calibrate]", "args"),
    (fft_benchmark, "args=[--seed-n]", "args"),
    (fft_benchmark, "args=[--seed-n, --out]", "args"),
    (fft_benchmark, "seed=-1", "seed"),
    (fft_benchmark, "timeout=.nan", "timeout"),
]


@pytest.mark.parametrize("module, override, words", BAD_INPUT,
                         ids=[f"{m.__name__.split('.')[-1]}:{o}" for m, o, _ in BAD_INPUT])
def test_bad_values_fail_before_any_work(tmp_path, capsys, module, override, words):
    argv = ["--out", str(tmp_path), "--device", "cpu", "--quiet", "--set", override]
    err = _fails_in_one_line(capsys, argv, module.main)
    assert words in err, err
    assert list(tmp_path.iterdir()) == []  # no run folder was made


@pytest.mark.parametrize("text, words", [
    ("steps: [1, 2\n", "not valid YAML"),
    ("steps: 3\n\tseed: 1\n", "not valid YAML"),
    ("seed: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    ("steps: 3\nsteps: 4\n", "found key 'steps' twice"),
    ("- 1\n- 2\n", "mapping"),
    ("steps: 1:30\n", "must be int, got '1:30'"),
    ("stepz: 3\n", "did you mean 'steps'"),
])
def test_bad_config_file_is_one_line(tmp_path, capsys, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "runs"
    err = _fails_in_one_line(capsys, ["--config", str(path), "--out", str(out), "--quiet"])
    assert words in err, err
    if "YAML" in words:
        assert str(path) in err
    assert not out.exists()


def test_numbers_read_as_a_person_reads_them():
    cfg = load_config(TinyConfig, overrides=["steps=010", "seed=1_000"])
    assert (cfg.steps, cfg.seed) == (10, 1000)
    with pytest.raises(TypeError, match="'steps' must be int, got '1:30'"):
        load_config(TinyConfig, overrides=["steps=1:30"])
    with pytest.raises(TypeError, match="must be bool"):
        load_config(edges_noise.EdgesNoiseConfig, overrides=["parametric=no"])
    lr = load_config(kernel_recovery.KernelRecoveryConfig, overrides=["lr=5e-3"]).lr
    assert lr == 0.005


def test_edited_invalid_config_yaml_on_resume(tiny_dir, capsys):
    (tiny_dir / "config.yaml").write_text("seed: 0\nsteps: 6\nsteps: 7\ncheckpoint_every: 2\n")
    err = _fails_in_one_line(capsys, ["--resume", str(tiny_dir), "--quiet"])
    assert "config.yaml" in err and "twice" in err
    (tiny_dir / "config.yaml").write_text("seed: 0\nsteps: [6\n")
    err = _fails_in_one_line(capsys, ["--resume", str(tiny_dir), "--quiet"])
    assert "config.yaml is not valid YAML" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, capsys):
    err = _fails_in_one_line(capsys, ["--out", str(tmp_path), "--device", "cuda", "--quiet"])
    assert "CUDA is not available" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- configs choose no code


def test_resuming_a_folder_never_runs_a_module_named_in_it(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    run_dir = tmp_path / "runs" / "fft_benchmark" / "theirs"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("seed: 0\nsections: [seed]\nmodule: evil\n")
    err = _fails_in_one_line(capsys, ["--resume", str(run_dir), "--quiet"], fft_benchmark.main)
    assert "module must be among ['experiments.bench_fft']" in err
    assert not marker.exists()
    cfg = load_config(fft_benchmark.FFTBenchmarkConfig,
                      overrides=["args=[--seed-n, '1000', --auto-max-direct=2.5]"])
    assert cfg.command(tmp_path / "f")[-3:] == ["--seed-n", "1000", "--auto-max-direct=2.5"]


# --------------------------------------------------------------------------- the run lock


def test_run_lock_is_exclusive_and_released(tmp_path):
    lock = RunLock(tmp_path)
    assert (tmp_path / ".lock").read_text() == str(os.getpid())
    with pytest.raises(RunFolderInUse, match=f"in use by process {os.getpid()}"):
        RunLock(tmp_path)
    lock.release()
    assert not (tmp_path / ".lock").exists()
    RunLock(tmp_path).release()


SLOW = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.test_runs_reliability import TinyConfig, tiny_run
    from cnnconv.training import experiment_main

    def slow(cfg, run):
        tiny_run(cfg, run)
        time.sleep(60)

    experiment_main("tiny", TinyConfig, slow)
''')


def test_second_run_cannot_overwrite_or_resume_a_live_run(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(SLOW.format(root=str(ROOT)))
    out = tmp_path / "runs"
    argv = [sys.executable, str(script), "--out", str(out), "--name", "x", "--device", "cpu",
            "--quiet"]
    live = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = out / "tiny" / "x"
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "checkpoints" / "main.pt").is_file():
            assert live.poll() is None, live.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = sorted(p.name for p in run_dir.rglob("*") if not p.name.endswith(".tmp"))
        for extra in (["--overwrite"], ["--resume", str(run_dir)]):
            cmd = argv[:2] + (extra if "--resume" in extra else argv[2:] + extra)
            second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            assert second.returncode == 2, second.stderr
            assert f"run folder {run_dir} is in use by process {live.pid}" in second.stderr
            assert "Traceback" not in second.stderr
        assert sorted(p.name for p in run_dir.rglob("*") if not p.name.endswith(".tmp")) == before
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    # The killed run's lock died with it: it can be resumed (or overwritten) now.
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(f'''
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from tests.test_runs_reliability import tiny_main
        tiny_main(["--resume", {str(run_dir)!r}, "--quiet", "--device", "cpu"])''')],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert torch.load(run_dir / "checkpoints" / "main.pt", weights_only=True)["step"] == 6


def test_damaged_unit_results_are_redone_on_resume(tmp_path):
    argv = ["--out", str(tmp_path), "--name", "e", "--device", "cpu", "--quiet", *TINY_EDGES]
    run_dir = edges_noise.main(argv)
    before = (run_dir / "results.csv").read_text().splitlines()
    unit = run_dir / "units" / "s0_n0.json"
    unit.write_text(unit.read_text()[:40])  # cut short
    with pytest.warns(UserWarning, match=f"unreadable unit results {unit}"):
        assert edges_noise.main(["--resume", str(run_dir), "--quiet", "--device", "cpu"]) \
            == run_dir
    after = (run_dir / "results.csv").read_text().splitlines()
    drop = before[0].split(",").index("train_seconds")
    assert [r.split(",")[:drop] for r in after] == [r.split(",")[:drop] for r in before]


def test_overwrite_never_empties_a_folder_in_use(tmp_path):
    from cnnconv.training import claim_run_dir

    run_dir, lock = claim_run_dir(tmp_path, "tiny", "x")
    (run_dir / "config.yaml").write_text("seed: 0\n")
    try:
        with pytest.raises(RunFolderInUse, match=f"run folder {run_dir} is in use"):
            claim_run_dir(tmp_path, "tiny", "x", overwrite=True)
        assert (run_dir / "config.yaml").read_text() == "seed: 0\n"
    finally:
        lock.release()
    again, lock = claim_run_dir(tmp_path, "tiny", "x", overwrite=True)
    lock.release()
    assert again == run_dir and list(run_dir.iterdir()) == []
