"""Experiment machinery: typed configs, run folders, atomic checkpoints, exact resume, DDP.

An experiment is a config dataclass plus a function ``run_fn(cfg, run)``; :func:`experiment_main`
gives it a command line, a run folder and a :class:`Run` context. ``Run.fit`` drives a training
loop with progress, CSV/TensorBoard logging and checkpoints, and resumes it bit-for-bit.

How an experiment uses it (the whole of a small ``experiments/my_exp.py``)::

    from dataclasses import dataclass
    import torch
    from cnnconv.training import Run, atomic_write_text, experiment_main, param

    @dataclass
    class MyConfig:
        seed: int = param(0, "random seed")
        steps: int = param(200, "optimizer steps")
        lr: float = param(1e-2, "Adam learning rate")
        batch_size: int = param(16, "global batch size (split across DDP ranks)")
        checkpoint_every: int = param(50, "steps between checkpoints (0: only at the end)")

    def run_fn(cfg: MyConfig, run: Run) -> dict:
        model = run.wrap(torch.nn.Conv2d(1, 1, 3, padding=1))   # .to(device) + DDP if launched so
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

        def step_fn(step: int) -> dict:
            g = run.step_generator(step)                 # batch derived from (seed, step)
            x = torch.randn(cfg.batch_size, 1, 32, 32, generator=g).to(run.device)
            x = run.shard(x)                             # this rank's slice of the global batch
            loss = (model(x) - x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": run.mean_across_ranks(loss)}

        result = run.fit(model, opt, step_fn, steps=cfg.steps, tag="main",
                         checkpoint_every=cfg.checkpoint_every)
        history = run.read_metrics(tag="main")           # {"loss": (steps, values)}
        if run.is_main:
            atomic_write_text(run.dir / "report.md", f"final loss {history['loss'][1][-1]:.3g}")
        return {"seconds": result.seconds}

    if __name__ == "__main__":
        experiment_main("my_exp", MyConfig, run_fn)

Then ``python -m experiments.my_exp --config configs/my_exp.yaml --set lr=0.001 --set steps=50``
writes ``runs/my_exp/<timestamp>/`` with ``config.yaml``, ``metrics.csv``,
``checkpoints/main.pt`` and whatever the experiment adds; ``--resume runs/my_exp/<timestamp>``
continues a killed run so that its final weights equal those of an uninterrupted run;
``torchrun --nproc_per_node=2 -m experiments.my_exp`` trains with DDP (gloo on CPU, NCCL on GPU).

Rules for exact resume: derive every batch from ``run.step_generator(step)`` (or keep any other
generator in ``fit(..., generators=...)``), keep all training state in the model, optimizer and
scheduler, and log through ``step_fn``/``eval_fn`` return values (``metrics.csv`` is cut back to
the checkpoint on resume, so curves read with :meth:`Run.read_metrics` have no duplicates).

Only torch, numpy and the standard library are imported at module level; PyYAML, tqdm and
TensorBoard are imported when needed.

The modules, each re-exported here: :mod:`~cnnconv.training.config` (config dataclasses, YAML,
overrides, checks), :mod:`~cnnconv.training.ddp` (devices, ranks, batch shards),
:mod:`~cnnconv.training.rng` (random state), :mod:`~cnnconv.training.checkpoints`,
:mod:`~cnnconv.training.rundir` (run folders and their lock),
:mod:`~cnnconv.training.metrics_log` (``metrics.csv``, TensorBoard),
:mod:`~cnnconv.training.progress_meter` (progress bars and lines), :mod:`~cnnconv.training.run`
(:class:`Run` and its loop) and :mod:`~cnnconv.training.main` (:func:`experiment_main`).
"""

from cnnconv.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from cnnconv.training.config import (
    MAX_BATCH_SIZE,
    MAX_SEED,
    check_names,
    check_range,
    config_help,
    config_to_dict,
    load_config,
    param,
    parse_override,
    yaml_defaults,
)
from cnnconv.training.ddp import (
    DistInfo,
    cleanup_distributed,
    select_device,
    setup_distributed,
    shard_batch,
    unwrap_model,
)
from cnnconv.training.main import experiment_main, run_record
from cnnconv.training.metrics_log import MetricsLogger, read_metrics
from cnnconv.training.progress_meter import ProgressMeter, progress
from cnnconv.training.rng import capture_rng_state, restore_rng_state, step_generator
from cnnconv.training.run import FitResult, Run
from cnnconv.training.rundir import (
    RunFolderInUse,
    RunLock,
    atomic_write_text,
    claim_run_dir,
    make_run_dir,
)

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_SEED",
    "CheckpointError",
    "DistInfo",
    "FitResult",
    "MetricsLogger",
    "ProgressMeter",
    "Run",
    "RunFolderInUse",
    "RunLock",
    "atomic_write_text",
    "capture_rng_state",
    "check_names",
    "check_range",
    "claim_run_dir",
    "cleanup_distributed",
    "config_help",
    "config_to_dict",
    "experiment_main",
    "load_checkpoint",
    "load_config",
    "make_run_dir",
    "param",
    "parse_override",
    "progress",
    "read_metrics",
    "restore_rng_state",
    "run_record",
    "save_checkpoint",
    "select_device",
    "setup_distributed",
    "shard_batch",
    "step_generator",
    "unwrap_model",
    "yaml_defaults",
]
