"""Progress without a terminal: plain lines with elapsed time and ETA, for the whole run."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnconv.training import ProgressMeter

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^kernel_recovery: (\d+)/(\d+) steps \(\d+%\), elapsed \d+:\d\d:\d\d, "
                  r"ETA (\d+:\d\d:\d\d|unknown)$")


def test_kernel_recovery_without_terminal_leaves_progress_lines(tmp_path):
    # Two phases (Adam, then L-BFGS) of one kernel: one progress over all 7 steps, not per phase.
    cmd = [sys.executable, "-m", "cnnconv.cli.runner", "kernel_recovery",
           "--set", "kernel_sizes=[3]", "--set", "datasets=[noise]", "--set", "adam_steps=5",
           "--set", "lbfgs_steps=2", "--set", "lbfgs_iter=2", "--set", "crop=16",
           "--set", "batch_size=2", "--set", "eval_every=5", "--set", "num_threads=1",
           "--out", str(tmp_path), "--device", "cpu", "--progress-every", "0"]
    log = tmp_path / "log"
    with open(log, "w") as err:
        proc = subprocess.run(cmd, cwd=ROOT, stderr=err, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=240)
    text = log.read_text()
    assert proc.returncode == 0, text
    lines = [m for m in map(LINE.match, text.splitlines()) if m]
    assert len(lines) >= 7, text
    assert {int(m.group(2)) for m in lines} == {7}
    done = [int(m.group(1)) for m in lines]
    assert done == list(range(done[0], 8)) and done[0] <= 1  # one line per step, none twice
    assert lines[-1].group(3) == "0:00:00"


def test_meter_lines_at_a_steady_rate_and_eta_from_fresh_work():
    out = io.StringIO()
    meter = ProgressMeter(10, "x", every=3600.0, stream=out)
    meter.skip(4)  # finished before a resume: no time spent on it here
    meter.update(1)
    assert out.getvalue() == ""  # the interval has not passed
    meter.close()
    line = out.getvalue().strip()
    assert re.fullmatch(r"x: 5/10 steps \(50%\), elapsed 0:00:00, ETA 0:00:00", line), line
    out = io.StringIO()
    ProgressMeter(3, "y", every=0.0, stream=out).close()
    assert out.getvalue().strip().endswith("ETA unknown")
    with pytest.raises(ValueError, match="every must be"):
        ProgressMeter(3, "z", every=-1.0)


def test_meter_on_a_terminal_is_one_bar():
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    meter = ProgressMeter(6, "run", every=0.0, stream=out)
    for _ in range(6):
        meter.update(1)
    meter.close()
    text = out.getvalue()
    assert "run:" in text and "6/6" in text and "steps (" not in text


def test_slow_benchmark_timing_says_it_still_runs(capsys):
    import time

    from experiments.bench_fft import heartbeat

    with heartbeat("a slow call", every=0.05):
        time.sleep(0.3)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "bench_fft: timing a slow call (slow; --skip-slow-direct skips it)"
    still = [line for line in err[1:] if re.fullmatch(r"bench_fft: still timing a slow call, "
                                                      r"\d+ s so far", line)]
    assert len(still) >= 2 and len(still) == len(err) - 1
