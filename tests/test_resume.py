"""Exact resume: a training killed with SIGKILL and resumed ends with the same weights, bitwise.

The training script below uses every source of randomness an experiment might (dropout through
the global torch RNG, numpy, python ``random``, a per-step data generator), an LR scheduler and
two phases, so that forgetting any piece of state in the checkpoint breaks the equality.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from cnnconv.training import read_metrics

SCRIPT = textwrap.dedent('''
    import random, sys, time
    from dataclasses import dataclass
    import numpy as np
    import torch
    from torch import nn
    from cnnconv.training import experiment_main, param

    @dataclass
    class Cfg:
        seed: int = param(3, "seed")
        steps: int = param(40, "steps per phase")
        checkpoint_every: int = param(4, "checkpoint period")
        delay: float = param(0.0, "seconds to sleep per step (to give the test time to kill)")

    def run_fn(cfg, run):
        model = run.wrap(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Dropout(0.3),
                                       nn.Conv2d(4, 1, 3, padding=1)))
        for phase in ("a", "b"):
            opt = torch.optim.Adam(model.parameters(), lr=0.01)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.7)

            def step_fn(i):
                g = run.step_generator(i, stream=ord(phase))
                x = torch.randn(4, 1, 12, 12, generator=g)
                scale = float(np.random.uniform(0.5, 1.5)) * random.uniform(0.5, 1.5)
                loss = (model(x) - scale * x.roll(1, dims=-1)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                time.sleep(cfg.delay)
                return {"loss": loss.item()}

            def eval_fn(s):
                return {"weight_norm": float(sum(p.norm() for p in model.parameters()))}

            run.fit(model, opt, step_fn, steps=cfg.steps, tag=phase, scheduler=sched,
                    checkpoint_every=cfg.checkpoint_every, eval_fn=eval_fn, eval_every=10)

    if __name__ == "__main__":
        experiment_main("resume_check", Cfg, run_fn)
''')


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get(
        "PYTHONPATH", "")
    return env


def _weights(run_dir: Path) -> dict:
    ckpt = torch.load(run_dir / "checkpoints" / "b.pt", weights_only=True)
    assert ckpt["step"] == 40
    return ckpt["model"]


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "train_resume.py"
    script.write_text(SCRIPT)
    out = tmp_path / "runs"
    base = [sys.executable, str(script), "--out", str(out), "--device", "cpu", "--quiet"]

    # Interrupted run: slow steps, killed once a checkpoint of the second phase exists.
    proc = subprocess.Popen(base + ["--name", "killed", "--set", "delay=0.03"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed_dir = out / "resume_check" / "killed"
    ckpt_b = killed_dir / "checkpoints" / "b.pt"
    deadline = time.monotonic() + 60
    while not ckpt_b.exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    step_at_kill = torch.load(ckpt_b, weights_only=True)["step"]
    assert 0 < step_at_kill < 40, step_at_kill

    # Resume it (no delay needed now), and run the same training uninterrupted.
    resumed = subprocess.run(base + ["--resume", str(killed_dir)], env=_env(),
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    full = subprocess.run(base + ["--name", "full"], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert full.returncode == 0, full.stderr

    w_resumed = _weights(killed_dir)
    w_full = _weights(out / "resume_check" / "full")
    assert w_resumed.keys() == w_full.keys()
    for key in w_full:
        assert torch.equal(w_resumed[key], w_full[key]), key

    # The metrics of the resumed run have each step once, and equal the uninterrupted ones.
    m_resumed = read_metrics(killed_dir / "metrics.csv")
    m_full = read_metrics(out / "resume_check" / "full" / "metrics.csv")
    for tag in ("a", "b"):
        steps, losses = m_resumed[tag]["loss"]
        assert steps == list(range(1, 41))
        assert losses == m_full[tag]["loss"][1]
        assert m_resumed[tag]["weight_norm"] == m_full[tag]["weight_norm"]
        assert m_resumed[tag]["weight_norm"][0] == [0, 10, 20, 30, 40]


def test_resume_rejects_overrides_and_missing_folder(tmp_path):
    from cnnconv.training import experiment_main
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        seed: int = 0

    calls = []
    with pytest.raises(SystemExit):
        experiment_main("x", Cfg, lambda c, r: calls.append(1),
                        ["--resume", str(tmp_path / "nope"), "--quiet"])
    run_dir = experiment_main("x", Cfg, lambda c, r: calls.append(1),
                              ["--out", str(tmp_path), "--name", "r", "--device", "cpu",
                               "--quiet"])
    with pytest.raises(SystemExit):
        experiment_main("x", Cfg, lambda c, r: calls.append(1),
                        ["--resume", str(run_dir), "--set", "seed=2"])
    assert calls == [1]
