"""Summaries of experiment 2's per-seed rows: mean and spread over seeds, the best detector of
each group, and the paired win / tie / lose verdicts of learned against hand-designed detectors."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .config import MIN_SEEDS

__all__ = ["summarize", "compare", "verdicts"]


def _mean_std(values) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))],
                     dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    # One value has no spread: its std is NaN (shown as no "±" at all), not 0.
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else float("nan")



def summarize(rows: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds, per noise level and detector.

    Returns:
        ``{noise: {detector: {"family": ..., "ods": (mean, std), ..., "n": seeds}}}`` with the
        detectors in first-seen order.
    """
    out: dict = {}
    for row in rows:
        out.setdefault(row["noise"], {}).setdefault(row["detector"], []).append(row)
    summary: dict = {}
    for noise in sorted(out):
        summary[noise] = {}
        for det, group in out[noise].items():
            entry = {key: group[0][key] for key in ("family", "kernel_size", "init", "zero_sum", "sigma")}
            for key in ("ods", "ois", "ap", "r50", "orientation_error", "fitted_sigma", "learned_sigma"):
                entry[key] = _mean_std([g.get(key) for g in group])
            entry["n"] = len(group)
            summary[noise][det] = entry
    return summary


def _paired(rows: list[dict], noise: float, a: str, b: str) -> np.ndarray:
    """ODS(a) - ODS(b) per seed at one noise level (seeds where both were measured)."""
    by = {(r["detector"], r["seed"]): r["ods"] for r in rows if r["noise"] == noise}
    seeds = sorted({r["seed"] for r in rows if r["noise"] == noise})
    return np.asarray([by[(a, s)] - by[(b, s)] for s in seeds if (a, s) in by and (b, s) in by])


def compare(diffs: np.ndarray, tolerance: float) -> str:
    """``win``, ``tie`` or ``lose`` from paired per-seed differences.

    A win needs a mean difference above both ``tolerance`` and two standard errors of the mean
    difference; a loss is the mirror image; everything else is a tie.

    Example:
        >>> compare(np.array([0.05, 0.06, 0.04]), 0.005), compare(np.array([0.01, -0.01]), 0.005)
        ('win', 'tie')
    """
    if diffs.size == 0:
        raise ValueError("diffs must hold at least one paired difference, got none")
    mean = float(diffs.mean())
    se = float(diffs.std(ddof=1) / math.sqrt(diffs.size)) if diffs.size > 1 else 0.0
    margin = max(tolerance, 2.0 * se)
    if mean > margin:
        return "win"
    if mean < -margin:
        return "lose"
    return "tie"


def _best(summary_at_noise: dict, predicate: Callable[[str, dict], bool]) -> str | None:
    names = [d for d, e in summary_at_noise.items() if predicate(d, e) and not math.isnan(e["ods"][0])]
    return max(names, key=lambda d: summary_at_noise[d]["ods"][0]) if names else None


def _is_learned(_d: str, e: dict) -> bool:
    return e["family"] in ("learned", "parametric", "pdc")


def _is_hand(_d: str, e: dict) -> bool:
    return e["family"] in ("hand", "dog", "canny")


def verdicts(rows: list[dict], tolerance: float = 0.005) -> list[dict]:
    """Where learned detectors win, tie or lose, computed from the per-seed ODS.

    For each noise level it compares (1) the best learned 5x5 or 7x7 kernel with Sobel (the
    acceptance test), (2) the best learned detector with the best hand-designed one (Sobel,
    Prewitt, Scharr, every derivative-of-Gaussian sigma and Canny) and (3) the learnable-sigma layer
    with the best derivative of Gaussian of the grid. "Best" is the highest mean ODS over seeds
    on the test scenes. With fewer than :data:`MIN_SEEDS` seeds the verdict is ``none``.

    Returns:
        One dict per comparison: noise, what, learned, reference, mean_diff, std_diff (NaN for
        one seed), n, verdict.
    """
    summary = summarize(rows)
    out = []
    for noise, at in summary.items():
        pairs = []
        big = _best(at, lambda d, e: e["family"] == "learned" and e["kernel_size"] in (5, 7))
        if big and "sobel" in at:
            pairs.append(("best learned 5x5/7x7 vs Sobel", big, "sobel"))
        learned, hand = _best(at, _is_learned), _best(at, _is_hand)
        if learned and hand:
            pairs.append(("best learned vs best hand-designed", learned, hand))
        para, dog = _best(at, lambda d, e: e["family"] == "parametric"), _best(at, lambda d, e: e["family"] == "dog")
        if para and dog:
            pairs.append(("learnable sigma vs best DoG of the grid", para, dog))
        for what, a, b in pairs:
            diffs = _paired(rows, noise, a, b)
            out.append({
                "noise": noise, "what": what, "learned": a, "reference": b,
                "mean_diff": float(diffs.mean()),
                "std_diff": float(diffs.std(ddof=1)) if diffs.size > 1 else float("nan"),
                "n": int(diffs.size),
                "verdict": compare(diffs, tolerance) if diffs.size >= MIN_SEEDS else "none",
            })
    return out


def _noise_label(noise: float) -> str:
    return f"{noise:g}"


def _best_per_group(summary: dict) -> dict:
    """Per noise level, the names of the headline detectors (best of each group)."""
    out = {}
    for noise, at in summary.items():
        picks = {}
        for name in ("sobel", "prewitt", "scharr"):
            if name in at:
                picks[name] = name
        groups = {
            "best DoG of the grid": lambda d, e: e["family"] == "dog",
            "best Canny": lambda d, e: e["family"] == "canny",
            "best learned 3x3": lambda d, e: e["family"] == "learned" and e["kernel_size"] == 3,
            "best learned 5x5": lambda d, e: e["family"] == "learned" and e["kernel_size"] == 5,
            "best learned 7x7": lambda d, e: e["family"] == "learned" and e["kernel_size"] == 7,
            "learnable sigma DoG": lambda d, e: e["family"] == "parametric",
        }
        for label, pred in groups.items():
            best = _best(at, pred)
            if best:
                picks[label] = best
        out[noise] = picks
    return out
