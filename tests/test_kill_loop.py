"""Acceptance: runs killed at random points always resume to the uninterrupted result.

Each experiment (with a tiny config) runs once uninterrupted; then copies of it are killed with
SIGKILL 10 times in all, at random points: half at a random file-system event (the k-th fsync or
rename of the run, which lands in checkpoint, metrics, CSV, figure and report writing, between
a temporary file's write and its rename as well as after it), half after a random delay (which
lands mostly in training). A killed run is resumed, and sometimes killed again while resuming;
its final resume must succeed, and its weights (every checkpoint, ``torch.equal``), metrics and
result tables must equal those of the uninterrupted run, with no temporary file left.

The uninterrupted run happens in the test process, with one torch thread, and warms it up; the
others are forked from it (no interpreter start-up or imports per run) and draw stub
figures (a figure is still written, through the same atomic writes, but not rendered), so the
test stays short.
"""

import csv
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch

from cnnconv.training import read_metrics
from experiments import cnn_kernels, demo, kernel_recovery, large_kernels

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                       reason="forks the test process"),
]

KILLS = 10
CONFIG_EVENTS = 3  # fsync, rename, folder fsync of config.yaml: before that no run exists yet

TINY = {
    "demo": (demo.main, [
        "--set", "image_size=32", "--set", "n_train=4", "--set", "n_test=2",
        "--set", "noise_levels=[0.1]", "--set", "kernel_sizes=[3]", "--set", "inits=[random]",
        "--set", "zero_sum=[false, true]", "--set", "steps=6", "--set", "batch_size=2",
        "--set", "checkpoint_every=2", "--set", "sigma_grid=[1.0]", "--set", "canny_sigmas=[]",
        "--set", "hand_designed=[sobel]", "--set", "n_thresholds=5"]),
    "kernel_recovery": (kernel_recovery.main, [
        "--set", "kernel_sizes=[3, 5]", "--set", "datasets=[noise]", "--set", "batch_size=2",
        "--set", "crop=16", "--set", "adam_steps=8", "--set", "lbfgs_steps=2",
        "--set", "lbfgs_iter=3", "--set", "eval_every=2", "--set", "checkpoint_every=2"]),
    "cnn_kernels": (cnn_kernels.main, [
        "--set", "steps=8", "--set", "batch_size=8", "--set", "image_size=12",
        "--set", "test_size=16", "--set", "eval_every=4", "--set", "width=4",
        "--set", "kernel_size=3", "--set", "checkpoint_every=2"]),
    "large_kernels": (large_kernels.main, [
        "--set", "kernel_size=7", "--set", "box_size=3", "--set", "motion_length=4",
        "--set", "crop=16", "--set", "photos=[camera]", "--set", "blurs=[gaussian, box]",
        "--set", "steps=2", "--set", "lbfgs_iter=3", "--set", "gaussian_sigma=1.0",
        "--set", "batch_size=2", "--set", "checkpoint_every=1"]),
}


@pytest.fixture(autouse=True)
def stub_figures(monkeypatch):
    """Figures cost most of a tiny run's time: write a stub PNG instead of rendering one."""
    from matplotlib.figure import Figure

    import cnnconv.analysis.plotting

    def savefig(self, fname, **kwargs):
        data = b"\x89PNG\r\n\x1a\nstub"
        if hasattr(fname, "write"):
            fname.write(data)
        else:
            Path(fname).write_bytes(data)

    monkeypatch.setattr(Figure, "savefig", savefig)
    monkeypatch.setattr(Figure, "tight_layout", lambda self, *args, **kwargs: None)
    for name in ("plot_kernels", "plot_side_by_side"):
        monkeypatch.setattr(cnnconv.analysis.plotting, name, lambda *args, **kwargs: Figure())


def _count_events(monkeypatch, kill_at_event: int | None = None) -> list[int]:
    """Count fsync and rename calls (in ``[0]``); SIGKILL this process at the k-th one."""
    events = [0]

    def counted(real):
        def call(*args, **kwargs):
            events[0] += 1
            if events[0] == kill_at_event:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(os, "fsync", counted(os.fsync))
    monkeypatch.setattr(os, "replace", counted(os.replace))
    return events


def _fork_run(main, argv, log: Path, kill_at_event: int | None = None,
              kill_after: float | None = None) -> int | None:
    """Run ``main(argv)`` in a forked child; returns its exit code, or ``None`` if killed.

    ``kill_at_event``: the child kills itself just before its k-th fsync/rename.
    ``kill_after``: the parent kills the child after this many seconds.
    """
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            _count_events(pytest.MonkeyPatch(), kill_at_event)
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.002)
        else:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    else:
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return None
    return os.WEXITSTATUS(status)


def _rows(path: Path) -> list[dict]:
    """A CSV's rows without timing columns (they differ between any two runs)."""
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if not any(
            t in k for t in ("seconds", "speedup", "time"))} for row in csv.DictReader(fh)]


def _assert_same_result(run: Path, ref: Path, history: list) -> None:
    where = f"{run} after {history}"
    assert (run / "report.md").is_file(), where
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == ".lock"], where
    ckpts = sorted(p.relative_to(ref) for p in (ref / "checkpoints").glob("*.pt"))
    assert ckpts and ckpts == sorted(p.relative_to(run) for p in
                                     (run / "checkpoints").glob("*.pt")), where
    for rel in ckpts:
        a = torch.load(run / rel, weights_only=True)
        b = torch.load(ref / rel, weights_only=True)
        assert a["step"] == b["step"], (rel, where)
        for key in b["model"]:
            assert torch.equal(a["model"][key], b["model"][key]), (rel, key, where)
    for csv_file in sorted(ref.glob("*.csv")):
        if csv_file.name == "metrics.csv":
            continue
        assert _rows(run / csv_file.name) == _rows(csv_file), (csv_file.name, where)
    untimed = {tag: {m: v for m, v in ms.items() if "seconds" not in m}
               for tag, ms in read_metrics(ref / "metrics.csv").items()}
    assert {tag: {m: v for m, v in ms.items() if "seconds" not in m}
            for tag, ms in read_metrics(run / "metrics.csv").items()} == untimed, where


@pytest.mark.parametrize("name", list(TINY))
def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path, monkeypatch, name):
    main, tiny = TINY[name]
    rng = random.Random(f"kill-loop {name}")
    out = tmp_path / "runs"
    base = ["--out", str(out), "--device", "cpu", "--quiet", *tiny]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # here and in the forked runs
    try:
        with monkeypatch.context() as patch:
            counter = _count_events(patch)
            t0 = time.monotonic()
            ref = main(base + ["--name", "ref"])
            seconds, events = time.monotonic() - t0, counter[0]
        assert events > CONFIG_EVENTS + 10, events  # checkpoints, tables, figures, report
        _kill_and_resume(main, base, ref, tmp_path, rng, seconds, events)
    finally:
        torch.set_num_threads(threads)


def _kill_and_resume(main, base, ref, tmp_path, rng, seconds, events):
    # The report is the last file written: kill once between its temporary file and the rename,
    # and once a few writes earlier (result tables, figures); the other points are random.
    forced = [events - 1, events - 4]
    kills, trial = 0, 0
    while kills < KILLS:
        trial += 1
        run = ref.parent / f"k{trial}"
        log = tmp_path / f"k{trial}.log"
        history = []
        argv = base + ["--name", run.name]
        while True:
            if kills >= KILLS:
                point = {}
            elif forced and not history:
                point = {"kill_at_event": forced.pop()}
            elif rng.random() < 0.5:
                point = {"kill_at_event": rng.randint(CONFIG_EVENTS + 1, events)}
            else:
                point = {"kill_after": rng.uniform(0.0, seconds)}
            code = _fork_run(main, argv, log, **point)
            history.append((point, code))
            if code is None:
                kills += 1
                # Killed before its config.yaml existed, the run had not started: start it again.
                argv = (["--resume", str(run), "--device", "cpu", "--quiet"]
                        if (run / "config.yaml").is_file()
                        else base + ["--name", run.name, "--overwrite"])
                if rng.random() < 0.6:
                    continue  # resume, and maybe kill it again
                code = _fork_run(main, argv, log)
                history.append(("resume", code))
            assert code == 0, (history, log.read_text()[-3000:])
            break
        _assert_same_result(run, ref, history)
