"""Experiment 2: edges under noise.

Learnable k x k gradient kernels (k = 3, 5, 7; random or Sobel initialisation; with or without
the zero-sum constraint) and a derivative-of-Gaussian layer with a learnable sigma are trained
against the exact boundaries of synthetic scenes, then evaluated beside Sobel, Prewitt, Scharr,
derivatives of Gaussian over a sigma grid and Canny, at several noise levels and seeds.

Protocol (the same for every detector):

1. For each seed and noise level, draw training scenes and separate held-out test scenes
   (different scene seeds) at that noise level (a fraction of the edge contrast).
2. Learned detectors are trained on the training scenes only, with a class-balanced binary
   cross-entropy (HED) on ``sigmoid(a * magnitude + b)``, ``a`` and ``b`` learned with the
   kernel. Only the gradient magnitude enters the loss, so a learned ``(gx, gy)`` pair is defined
   up to a rotation or reflection; before evaluation it is aligned (one rotation angle and an
   optional reflection, fitted on the clean training images against Sobel's gradient direction)
   so that non-maximum suppression looks across the edge.
3. Every linear detector gives ``(gx, gy)`` on the test scenes; the magnitude goes through the
   same non-maximum suppression (:func:`cnnconv.edges.non_max_suppression`) along the gradient
   direction, is divided by its largest value over the test set (one monotone map per detector,
   so the ranking of pixels and the dataset-wide ODS threshold are unchanged) and is evaluated by
   :func:`cnnconv.evaluation.metrics.evaluate_boundaries` on the same thresholds: ODS, OIS, AP, R50.
4. Canny (scikit-image) is binary: it is swept over its high threshold on the same grid (low =
   ``canny_low_ratio`` * high, thresholds as fractions of the test set's largest smoothed Sobel
   magnitude). Canny's output shrinks monotonically as both thresholds rise, so the sweep is
   stored as one score map (the highest grid threshold at which each pixel survives) that gives
   exactly Canny's output when thresholded at any grid value. Canny thins with its own
   non-maximum suppression and hysteresis, so our NMS is not applied again.
5. Orientation error (degrees, on the true boundary pixels) comes from
   :func:`cnnconv.evaluation.metrics.orientation_error` on ``atan2(gy, gx)``; Canny has none.

Run::

    cnnconv run edges_noise [--set key=value ...]
    python -m experiments.edges_noise --config configs/edges_noise.yaml   # in a clone

Duration on a 2-core CPU: about 17-20 min (17.0 min of compute measured for the full config).

The run folder holds ``config.yaml``, ``results.csv`` (one row per seed, noise level and
detector), ``results.json``, ``metrics.csv`` (training losses), ``checkpoints/``, the figures and
``report.md``.

Modules, in reading order: this one (the loop over seeds and noise levels, resume, outputs),
:mod:`.train` (one unit: every detector trained and evaluated), :mod:`.config`,
:mod:`.detectors`, :mod:`.evaluate`, :mod:`.stats` (means, verdicts), :mod:`.figures` and
:mod:`.report`.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from cnnconv.training import Run, atomic_write_text, experiment_main

from .config import MIN_SEEDS, NAME, EdgesNoiseConfig
from .detectors import (align_orientation, apply_alignment, canny_scores, fitted_sigma,
                        hand_designed_gradients, hand_designed_kernels, learned_gradients,
                        learned_kernels, learned_sigma, make_learned, make_parametric)
from .evaluate import (boundary_scores, evaluate_detector, make_scenes, orientation_errors, thin,
                       thresholds_for)
from .figures import plot_kernel_panel, plot_ods_vs_noise, plot_pr_curves
from .report import acceptance, headline_table, verdict_lines, write_report, write_results_csv
from .stats import compare, summarize, verdicts
from .train import LogisticEdgeHead, balanced_bce, run_unit, train_head

__all__ = [
    "EdgesNoiseConfig", "LogisticEdgeHead", "MIN_SEEDS", "NAME", "acceptance", "align_orientation",
    "apply_alignment", "balanced_bce", "boundary_scores", "canny_scores", "compare",
    "evaluate_detector", "fitted_sigma", "hand_designed_gradients", "hand_designed_kernels",
    "headline_table", "learned_gradients", "learned_kernels", "learned_sigma", "main",
    "make_learned", "make_parametric", "make_scenes", "orientation_errors", "plot_kernel_panel",
    "plot_ods_vs_noise", "plot_pr_curves", "run_experiment", "run_unit", "summarize", "thin",
    "thresholds_for", "train_head", "verdict_lines", "verdicts", "write_report",
    "write_results_csv",
]


def run_experiment(cfg: EdgesNoiseConfig, run: Run) -> dict:
    """Train and evaluate every detector at every seed and noise level; write the report.

    Each (seed, noise level) unit saves ``units/s<seed>_n<index>.json`` when it is done, and each
    learned detector its checkpoint, so ``--resume`` skips finished units and finished training.

    The command line (:func:`cnnconv.training.experiment_main`) runs it with ``cfg.num_threads``
    torch threads on a CPU.

    Returns:
        ``{"report": path, "rows": [...], "verdicts": [...]}``.
    """
    units_dir = run.dir / "units"
    units_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    kernels_by_unit: dict = {}
    curves_by_unit: dict = {}
    unit_seconds = 0.0  # summed over units, including those of an interrupted earlier session
    jobs = [(s, i) for s in cfg.seeds for i in range(len(cfg.noise_levels))]
    for seed, i in run.progress(jobs, total=len(jobs), desc="seeds x noise levels"):
        path = units_dir / f"s{seed}_n{i}.json"
        unit = _read_unit(path) if run.resume else None
        if unit is None:
            t_unit = time.perf_counter()
            unit = run_unit(cfg, run, seed, i)
            unit["seconds"] = time.perf_counter() - t_unit
            atomic_write_text(path, json.dumps(unit))
        unit_seconds += float(unit.get("seconds", 0.0))
        noise = float(cfg.noise_levels[i])
        rows.extend(unit["rows"])
        kernels_by_unit[(seed, noise)] = unit["kernels"]
        curves_by_unit[(seed, noise)] = unit["curves"]
        if not run.quiet:
            print(f"seed {seed} noise {noise:g}: {len(unit['rows'])} detectors "
                  f"({unit_seconds / 60:.1f} min)", flush=True)

    t_report = time.perf_counter()
    write_results_csv(rows, run.dir / "results.csv")
    summary = summarize(rows)
    figures: dict = {}
    # Figures are derived from the unit results; a resumed run redraws them.
    figures["ods_vs_noise"] = plot_ods_vs_noise(summary, run.dir / "ods_vs_noise.png").name
    if any(kernels_by_unit.values()):
        figures["kernels"] = plot_kernel_panel(summary, kernels_by_unit, cfg.seeds[0],
                                               run.dir / "kernels.png").name
    pr = plot_pr_curves(summary, curves_by_unit, cfg.seeds[0], max(summary), run.dir / "pr_curves.png")
    if pr is not None:
        figures["pr"] = pr.name
    verdict_rows = verdicts(rows, cfg.tie_tolerance)
    seconds = unit_seconds + (time.perf_counter() - t_report)
    atomic_write_text(run.dir / "results.json", json.dumps(
        {"rows": rows, "verdicts": verdict_rows, "acceptance": acceptance(verdict_rows, rows)[1],
         "seconds": seconds}, indent=1))
    report = write_report(cfg, rows, run.dir, figures, seconds)
    return {"report": report, "rows": rows, "verdicts": verdict_rows}


def _read_unit(path: Path) -> dict | None:
    """A finished unit's saved results, or ``None`` if there are none (or they are unreadable,
    e.g. edited or damaged: the unit is then redone from its detectors' checkpoints)."""
    if not path.is_file():
        return None
    try:
        unit = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring unreadable unit results {path} ({exc}); redoing that unit")
        return None
    if not isinstance(unit, dict) or not {"rows", "kernels", "curves"} <= unit.keys():
        warnings.warn(f"ignoring unit results {path} without rows/kernels/curves; redoing it")
        return None
    return unit


def main(argv=None, *, name: str = NAME, config_cls=EdgesNoiseConfig,
         description: str | None = None) -> Path:
    """Command line: ``python -m experiments.edges_noise --config configs/edges_noise.yaml``;
    ``description`` is the ``--help`` text (default: this module's docstring)."""
    return experiment_main(name, config_cls, run_experiment, argv, finished_marker=None,
                           description=description)

