"""The cost-model constants: defaults per device type and the calibration file that overrides them.

Both the FFT engine (which picks among its own tilings) and the planner (which picks the method)
read them; :func:`cnnconv.planner.calibrate` writes the file.

Example:
    >>> calibration_path("/tmp/c.json").name
    'c.json'
    >>> sorted(DEFAULT_CONSTANTS)
    ['cpu', 'cuda']
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CONSTANTS", "calibration_path", "forget_loaded", "load_constants"]

#: Seconds per unit of work, per device type. ``direct_*`` are tables ``[[K, c], ...]`` over the
#: kernel volume K.
DEFAULT_CONSTANTS: dict[str, dict] = {
    # From the baselines of a 2-core AVX-512 CPU (oneDNN direct, pocketfft/MKL FFT). NCHW
    # depthwise F.conv2d is slow per multiply-add except around 15x15 kernels.
    "cpu": {
        "fft": 3.0e-10,
        "matmul": 6.0e-10,
        "matmul_m0": 4.0,
        "elementwise": 1.0e-9,
        "t0_fft": 5.0e-4,
        "t0_direct": 2.0e-5,
        "direct_dense": [[1, 1.3e-10], [9, 3e-11], [81, 1e-10], [225, 1.1e-10], [961, 1.1e-10], [3969, 1.1e-10]],
        "direct_ch0": 0.0,
        # Dense rate tables by channel product Cin/g * Cout (oneDNN is ~100x less efficient per
        # multiply-add with one channel than with 64x64).
        "direct_dense_by_ch": [
            [1, [[1, 1e-9], [9, 7e-10], [25, 4.5e-10], [81, 4.4e-9], [225, 3.9e-9], [961, 2.9e-9], [3969, 2.9e-9]]],
            [16, [[1, 1.2e-10], [9, 1e-10], [25, 1e-10], [81, 1.6e-10], [225, 1e-10], [961, 8e-11], [3969, 8e-11]]],
            [
                256,
                [[1, 1.1e-10], [9, 2.4e-11], [25, 1.8e-11], [81, 3e-11], [225, 3e-11], [961, 2.8e-11], [3969, 2.8e-11]],
            ],
            [
                4096,
                [
                    [1, 2e-11],
                    [9, 1.8e-11],
                    [25, 1.5e-11],
                    [81, 2.2e-11],
                    [225, 1.6e-11],
                    [961, 1.9e-11],
                    [3969, 1.9e-11],
                ],
            ],
        ],
        "direct_depthwise": [[1, 5e-10], [9, 2e-10], [81, 6e-11], [225, 2e-10], [961, 1.5e-9], [3969, 2.8e-9]],
    },
    "cuda": {
        "fft": 2.0e-12,
        "matmul": 2.0e-12,
        "matmul_m0": 4.0,
        "elementwise": 4.0e-12,
        "t0_fft": 1.0e-4,
        "t0_direct": 2.0e-5,
        "direct_dense": [[1, 1e-13], [9, 1e-13], [225, 2e-13], [961, 4e-13], [3969, 4e-13]],
        "direct_depthwise": [[1, 1e-12], [9, 1e-12], [225, 2e-12], [961, 4e-12], [3969, 4e-12]],
    },
}

_loaded: dict[tuple, dict] = {}


def calibration_path(path: str | os.PathLike | None = None) -> Path:
    """Where the calibration JSON lives: ``path``, else ``$CNNCONV_CACHE_DIR/calibration.json``,
    else ``~/.cache/cnnconv/calibration.json``."""
    if path is not None:
        return Path(path)
    root = os.environ.get("CNNCONV_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "cnnconv"
    return base / "calibration.json"


def load_constants(device_type: str = "cpu", path: str | os.PathLike | None = None) -> dict:
    """Constants for ``device_type``: the calibration file's if present, else the defaults.

    Without ``path`` the result is kept in memory per cache location (the environment that
    decides it) and device type, so planning decisions do not touch the file system;
    :func:`cnnconv.planner.calibrate` clears it.
    """
    key = (os.environ.get("CNNCONV_CACHE_DIR"), os.environ.get("HOME"), device_type)
    if path is None and key in _loaded:
        return _loaded[key]
    p = calibration_path(path)
    consts = dict(DEFAULT_CONSTANTS.get(device_type, DEFAULT_CONSTANTS["cpu"]))
    try:
        text = p.read_text()
    except OSError:
        text = None
    if text is not None:
        try:
            data = json.loads(text)
            stored = data.get(device_type, {}) if isinstance(data, dict) else None
            if not (isinstance(stored, dict) and all(_valid_constant(k, v) for k, v in stored.items())):
                raise ValueError("not a table of cost-model constants")
        except ValueError as exc:
            warnings.warn(
                f"ignoring the calibration file {p} ({exc}); using the default constants",
                stacklevel=2,
            )
        else:
            consts.update(stored)
    if path is None:
        _loaded[key] = consts
    return consts


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf


def _valid_table(table: Any) -> bool:
    return (
        isinstance(table, list)
        and bool(table)
        and all(isinstance(row, list) and len(row) == 2 and _positive(row[0]) and _positive(row[1]) for row in table)
    )


def _valid_constant(key: str, value: Any) -> bool:
    """Whether a stored constant has the type the cost model reads (unknown keys are kept)."""
    if key == "direct_dense_by_ch":
        return (
            isinstance(value, list)
            and bool(value)
            and all(
                isinstance(row, list) and len(row) == 2 and _positive(row[0]) and _valid_table(row[1]) for row in value
            )
        )
    if key.startswith("direct_") and key != "direct_ch0":
        return _valid_table(value)
    if key in ("direct_ch0", "matmul_m0") or key.startswith("t0_"):
        return _positive(value) or value == 0
    return _positive(value) if key in ("fft", "matmul", "elementwise") else True


def forget_loaded() -> None:
    """Drop the constants kept in memory, so the next :func:`load_constants` reads the file."""
    _loaded.clear()
