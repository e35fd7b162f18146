"""Two-process DDP (gloo, CPU, launched by torchrun) equals one process on the same global batch."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from cnnconv.training import read_metrics

SCRIPT = textwrap.dedent('''
    from dataclasses import dataclass
    import torch
    from torch import nn
    from cnnconv.training import experiment_main, param

    @dataclass
    class Cfg:
        seed: int = param(7, "seed")
        steps: int = param(12, "steps")
        batch_size: int = param(8, "global batch size")

    def run_fn(cfg, run):
        model = run.wrap(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(),
                                       nn.Conv2d(3, 1, 5, padding=2)))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        target = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])

        def step_fn(i):
            g = run.step_generator(i)
            x = torch.randn(cfg.batch_size, 1, 16, 16, generator=g)
            y = torch.nn.functional.conv2d(x, target[None, None], padding=1)
            x, y = run.shard((x.to(run.device), y.to(run.device)))
            loss = (model(x) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": run.mean_across_ranks(loss), "world": run.dist.world_size}

        run.fit(model, opt, step_fn, steps=cfg.steps, tag="train", checkpoint_every=5)

    if __name__ == "__main__":
        experiment_main("ddp_check", Cfg, run_fn)
''')


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get(
        "PYTHONPATH", "")
    return env


def test_two_cpu_processes_match_one(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "runs"
    args = [str(script), "--out", str(out), "--device", "cpu", "--quiet"]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", *args, "--name", "two"],
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, *args, "--name", "one"], env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr[-3000:]

    runs = out / "ddp_check"
    assert sorted(p.name for p in runs.iterdir()) == ["one", "two"]  # rank 0 alone made a folder
    w_two = torch.load(runs / "two" / "checkpoints" / "train.pt", weights_only=True)["model"]
    w_one = torch.load(runs / "one" / "checkpoints" / "train.pt", weights_only=True)["model"]
    assert w_two.keys() == w_one.keys()
    assert not any(k.startswith("module.") for k in w_two)  # saved unwrapped from DDP
    for key in w_one:
        torch.testing.assert_close(w_two[key], w_one[key], rtol=1e-6, atol=1e-6)

    m_two = read_metrics(runs / "two" / "metrics.csv")["train"]
    m_one = read_metrics(runs / "one" / "metrics.csv")["train"]
    assert m_two["world"][1] == [2.0] * 12 and m_one["world"][1] == [1.0] * 12
    assert m_two["loss"][0] == list(range(1, 13))  # one row per step: only rank 0 logs
    torch.testing.assert_close(torch.tensor(m_two["loss"][1]), torch.tensor(m_one["loss"][1]),
                               rtol=1e-5, atol=1e-7)
    # Training really moved the weights (the comparison is not of two initialisations).
    assert m_one["loss"][1][-1] < 0.5 * m_one["loss"][1][0]


def test_kernel_recovery_under_torchrun(tmp_path):
    # L-BFGS under DDP needs the same loss on every rank (else the line searches diverge and
    # the collectives deadlock or abort): the experiment must run and still recover Sobel.
    out = tmp_path / "runs"
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "experiments.kernel_recovery", "--out", str(out), "--name", "two", "--device",
         "cpu", "--quiet", "--set", "kernel_sizes=[3]", "--set", "datasets=[noise]",
         "--set", "adam_steps=10", "--set", "lbfgs_steps=2", "--set", "batch_size=8",
         "--set", "crop=24"],
        cwd=Path(__file__).resolve().parents[1], env=_env(), capture_output=True, text=True,
        timeout=120)
    assert two.returncode == 0, two.stderr[-3000:]
    run_dir = out / "kernel_recovery" / "two"
    w = torch.load(run_dir / "checkpoints" / "noise_k3_lbfgs.pt", weights_only=True)["model"]
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    torch.testing.assert_close(w["weight"][:, 0], torch.stack([sobel, sobel.T]), rtol=0,
                               atol=1e-4)
    assert (run_dir / "report.md").is_file()
