"""The run context: ranks, logging, progress and the resumable training loop :meth:`Run.fit`."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import nn

from cnnconv.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from cnnconv.training.ddp import DistInfo, shard_batch
from cnnconv.training.metrics_log import MetricsLogger, _summary_writer_class, read_metrics
from cnnconv.training.progress_meter import ProgressMeter
from cnnconv.training.rng import step_generator

__all__ = ["FitResult", "Run"]

_T = TypeVar("_T")


@dataclasses.dataclass
class FitResult:
    """What :meth:`Run.fit` did."""

    start_step: int
    steps: int
    seconds: float
    """Training time (inside ``step_fn``) summed over the original run and any resumes."""
    resumed: bool


class Run:
    """Everything an experiment needs while it runs: config, folder, device, ranks, logging.

    Created by :func:`experiment_main` (or directly, for tests and notebooks).

    Args:
        cfg: Config dataclass instance.
        dir: The run folder (created by :func:`make_run_dir`, or an existing one to resume).
        device: Device to train on.
        dist: Rank information (defaults to a single process).
        resume: Continue from checkpoints found in ``dir/checkpoints``.
        quiet: No progress bars.
        tensorboard: Also log scalars to ``dir/tensorboard``.
        progress_every: Seconds between progress lines when stderr is not a terminal.
    """

    def __init__(
        self,
        cfg: Any,
        dir: str | os.PathLike,
        device: torch.device | str = "cpu",
        *,
        dist: DistInfo | None = None,
        resume: bool = False,
        quiet: bool = False,
        tensorboard: bool = False,
        progress_every: float = 20.0,
    ):
        self.cfg = cfg
        self.dir = Path(dir)
        self.device = torch.device(device)
        self.dist = dist or DistInfo()
        self.resume = resume
        self.quiet = quiet
        self.checkpoint_dir = self.dir / "checkpoints"
        self.seed = int(getattr(cfg, "seed", 0))
        self.progress_every = progress_every
        self._metrics: MetricsLogger | None = None  # only the main rank writes metrics
        self._tb = None
        self._plan: ProgressMeter | None = None  # counts the steps of every fit
        self._outer = False  # a progress() loop is the run's progress
        if self.is_main:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            self._metrics = MetricsLogger(self.dir / "metrics.csv")
            if tensorboard:
                self._tb = _summary_writer_class()(log_dir=str(self.dir / "tensorboard"))

    # -- ranks ---------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """True on the rank that writes files (rank 0)."""
        return self.dist.is_main

    def barrier(self) -> None:
        if self.dist.distributed:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the run's device and wrap it in DDP when launched on several ranks."""
        model = model.to(self.device)
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    def shard(self, batch: Any) -> Any:
        """This rank's slice of a global batch (identity on one process)."""
        return shard_batch(batch, self.dist) if self.dist.distributed else batch

    def mean_across_ranks(self, value: torch.Tensor | float) -> float:
        """Average a scalar over ranks (for logging); returns a Python float."""
        t = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(value)
        if self.dist.distributed:
            import torch.distributed as dist

            t = t.to(self.device if self.dist.backend == "nccl" else "cpu", torch.float64)
            dist.all_reduce(t)
            t = t / self.dist.world_size
        return float(t)

    def step_generator(self, step: int, stream: int = 0) -> torch.Generator:
        """CPU generator from ``(cfg.seed, step, stream)``: the same on every rank and resume."""
        return step_generator(self.seed, step, stream)

    # -- files ---------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """A path inside the run folder."""
        return self.dir / name

    def log(self, tag: str, step: int, **metrics: float) -> None:
        """Append metrics to ``metrics.csv`` (and TensorBoard); no-op off rank 0."""
        if not self.is_main:
            return
        self._main_metrics().log(tag, step, **metrics)
        if self._tb is not None:
            for name, value in metrics.items():
                self._tb.add_scalar(f"{tag}/{name}", float(value), step)

    def _main_metrics(self) -> MetricsLogger:
        """The ``metrics.csv`` logger, which the main rank creates in ``__init__``."""
        assert self._metrics is not None, "only the main rank logs metrics"
        return self._metrics

    def read_metrics(self, tag: str | None = None) -> dict:
        """``{tag: {metric: (steps, values)}}`` from ``metrics.csv`` (one tag's dict if given)."""
        path = self.dir / "metrics.csv"
        data = read_metrics(path) if path.exists() else {}
        return data.get(tag, {}) if tag is not None else data

    def checkpoint_path(self, tag: str) -> Path:
        return self.checkpoint_dir / f"{tag}.pt"

    def meter(self, total: int, desc: str) -> ProgressMeter:
        """A :class:`ProgressMeter`, silent off rank 0 and with ``--quiet``."""
        return ProgressMeter(total, desc, every=self.progress_every, disable=self.quiet or not self.is_main)

    def plan(self, total_steps: int, desc: str | None = None) -> None:
        """Announce the steps of all the run's :meth:`fit` phases: one progress with an ETA for
        the whole run instead of one per phase."""
        self._plan = self.meter(total_steps, desc or self.dir.parent.name)

    def progress(self, iterable: Iterable[_T], *, total: int | None = None, desc: str = "") -> Iterator[_T]:
        """Iterate ``iterable`` showing it as the run's progress (the phases inside stay
        silent)."""
        # Without ``total`` the iterable must have a length (len() raises TypeError otherwise).
        meter = self.meter(len(cast(Sized, iterable)) if total is None else total, desc)
        self._outer = True
        try:
            for item in iterable:
                yield item
                meter.update(1)
        finally:
            self._outer = False
            meter.close()

    # -- training --------------------------------------------------------------------------------
    def fit(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        step_fn: Callable[[int], Mapping[str, float] | None],
        *,
        steps: int,
        tag: str = "train",
        scheduler: Any = None,
        checkpoint_every: int = 0,
        eval_fn: Callable[[int], Mapping[str, float] | None] | None = None,
        eval_every: int = 0,
        generators: Mapping[str, Any] | None = None,
        desc: str | None = None,
    ) -> FitResult:
        """Run ``step_fn(i)`` for ``i in range(start, steps)`` with logging and checkpoints.

        ``step_fn`` does one whole optimisation step (forward, backward, ``optimizer.step``) and
        returns metrics to log at the completed-step count ``i + 1``. ``eval_fn(s)`` is called at
        ``s = 0`` and every ``eval_every`` completed steps and at the end. A checkpoint
        ``checkpoints/<tag>.pt`` is written every ``checkpoint_every`` steps and at the end. When
        the run is resumed, ``fit`` loads that checkpoint (model, optimizer, scheduler, RNG) and
        continues from its step, or returns at once if that phase had finished, so experiments
        with several phases resume phase by phase.

        Args:
            model: Model being trained (possibly DDP-wrapped).
            optimizer: Its optimizer (or ``None`` for optimizer-free loops).
            step_fn: One training step; returns ``{"loss": ...}``-style metrics or ``None``.
            steps: Total number of steps of this phase.
            tag: Phase name; names the checkpoint and the metrics rows.
            scheduler: Optional LR scheduler stepped by ``step_fn`` and checkpointed here.
            checkpoint_every: Steps between checkpoints (0: only at the end).
            eval_fn: Optional evaluation returning metrics.
            eval_every: Steps between evaluations (0: only at start and end).
            generators: Extra generators saved with the checkpoint.
            desc: Progress-bar label (defaults to ``tag``).

        Returns:
            A :class:`FitResult`.
        """
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        if not isinstance(tag, str) or not tag or "/" in tag:
            raise ValueError(f"tag must be a plain non-empty name, got {tag!r}")
        ckpt_path = self.checkpoint_path(tag)
        start, elapsed, resumed = 0, 0.0, False
        if self.resume and ckpt_path.is_file():
            ckpt = load_checkpoint(
                ckpt_path,
                model,
                optimizer,
                scheduler,
                generators=generators,
                restore_rng=True,
                map_location=self.device,
            )
            start, elapsed, resumed = ckpt["step"], float(ckpt["extra"].get("seconds", 0.0)), True
            if not isinstance(start, int) or not 0 <= start <= steps:
                raise CheckpointError(
                    f"checkpoint {ckpt_path} is at step {start!r}, outside the "
                    f"{steps} steps of phase '{tag}' in this run's config"
                )
        if self.resume and self.is_main:
            # Rows logged after the checkpoint (or all rows, if none was written) are redone.
            self._main_metrics().truncate(tag, start if resumed else -1)

        def save(step: int) -> None:
            if self.is_main:
                self._main_metrics().sync()  # the rows up to the checkpoint survive a power cut too
                save_checkpoint(
                    ckpt_path,
                    model,
                    optimizer,
                    scheduler,
                    step=step,
                    config=self.cfg,
                    generators=generators,
                    extra={"seconds": elapsed, "tag": tag},
                )
            self.barrier()

        def evaluate(step: int) -> None:
            if eval_fn is not None:
                out = eval_fn(step)
                if out:
                    self.log(tag, step, **out)

        if start == 0:
            evaluate(0)
        meter = self._plan
        if meter is None:
            meter = self.meter(steps, desc or tag)
            meter.disable |= self._outer
        meter.skip(start)
        for i in range(start, steps):
            t0 = time.perf_counter()
            out = step_fn(i)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            elapsed += time.perf_counter() - t0
            done = i + 1
            if out:
                self.log(tag, done, **out)
            meter.update(1)
            if eval_every and done % eval_every == 0 and done != steps:
                evaluate(done)
            if done == steps:
                evaluate(done)
            if done == steps or (checkpoint_every and done % checkpoint_every == 0):
                save(done)
        if meter is not self._plan:
            meter.close()
        if start == steps and not ckpt_path.is_file():
            save(steps)  # zero-step phase: still leave a checkpoint
        return FitResult(start_step=start, steps=steps, seconds=elapsed, resumed=resumed)

    def close(self) -> None:
        if self._plan is not None:
            self._plan.close()
            self._plan = None
        if self._metrics is not None:
            self._metrics.close()
        if self._tb is not None:
            self._tb.close()
