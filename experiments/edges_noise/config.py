"""The configuration of experiment 2 (edges under noise): one dataclass, its defaults read from
``configs/edges_noise.yaml`` (the only place they are written), and the checks of every key."""

from __future__ import annotations

from dataclasses import dataclass

from cnnconv.training import MAX_BATCH_SIZE, MAX_SEED, check_range, param, yaml_defaults

from ..common import config_file

__all__ = ["NAME", "MIN_SEEDS", "EdgesNoiseConfig"]

NAME = "edges_noise"

MIN_SEEDS = 3
"""Seeds a win/tie/lose verdict needs: fewer support no significance claim."""
_INITS = ("random", "sobel")
_PDC_TYPES = ("cd", "ad", "rd")
_HAND = ("sobel", "prewitt", "scharr")


@dataclass
@yaml_defaults(config_file(NAME))
class EdgesNoiseConfig:
    """Everything experiment 2 depends on; the defaults are the full run (about 15-20 minutes on
    two CPU cores). The device is the command line's ``--device``."""

    image_size: int = param(help="side of the square synthetic scenes (pixels)")
    n_train: int = param(help="training scenes per seed and noise level")
    n_test: int = param(help="held-out test scenes per seed and noise level (other scene seeds)")
    noise_levels: list[float] = param(help="additive Gaussian noise std as a fraction of the edge contrast")
    seeds: list[int] = param(help="one repetition per seed: scenes, initialisation, batches")
    kernel_sizes: list[int] = param(help="sizes k of the learnable k x k gradient kernels")
    inits: list[str] = param(help="initialisations of the learnable kernels")
    zero_sum: list[bool] = param(help="train without and/or with the zero-sum constraint")
    pdc_types: list[str] = param(help="also train 3x3 pixel-difference detectors of these types (cd, ad, rd), "
                                  "one per init; rd has no exact Sobel start")
    parametric: bool = param(help="also train the derivative of Gaussian with a learnable sigma")
    sigma_init: float = param(help="initial sigma of the learnable derivative of Gaussian")
    hand_designed: list[str] = param(help="fixed 3x3 detectors")
    sigma_grid: list[float] = param(help="sigmas of the fixed derivative-of-Gaussian detectors")
    canny_sigmas: list[float] = param(help="Gaussian sigmas of the Canny detectors ([]: none)")
    canny_low_ratio: float = param(help="Canny's low threshold as a fraction of the high one")
    steps: int = param(help="Adam steps per learned detector")
    batch_size: int = param(help="training scenes per step")
    lr: float = param(help="learning rate of the kernels and of the learnable sigma")
    head_lr: float = param(help="learning rate of the logistic scale a and offset b")
    n_thresholds: int = param(help="thresholds of the sweep, evenly spaced in (0, 1)")
    max_dist: float = param(help="matching tolerance: < 1 a fraction of the image diagonal (BSDS), >= 1 pixels")
    tie_tolerance: float = param(help="ODS differences below this (or 2 standard errors) are ties")
    checkpoint_every: int = param(help="steps between checkpoints of each detector (0: at the end)")
    num_threads: int = param(help="CPU threads for torch (0: torch's default); the layers are tiny, "
                                "so one thread is fastest, above all on a shared machine")

    def __post_init__(self) -> None:
        for name in ("image_size", "n_train", "n_test", "steps", "batch_size", "n_thresholds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.image_size!r}")
        if not self.noise_levels or any(not 0 <= float(v) < 10 for v in self.noise_levels):
            raise ValueError(f"noise_levels must be a non-empty list of values in [0, 10), got {self.noise_levels!r}")
        if not self.seeds:
            raise ValueError(f"seeds must not be empty, got {self.seeds!r}")
        for seed in self.seeds:
            check_range("seeds", seed, 0, MAX_SEED)
        check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_range("image_size", self.image_size, 16, 4096)
        for k in self.kernel_sizes:
            if isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0:
                raise ValueError(f"kernel_sizes must hold odd integers >= 3, got {self.kernel_sizes!r}")
        for init in self.inits:
            if init not in _INITS:
                raise ValueError(f"inits must be among {list(_INITS)}, got {self.inits!r}")
        for pdc in self.pdc_types:
            if pdc not in _PDC_TYPES:
                raise ValueError(f"pdc_types must be among {list(_PDC_TYPES)}, got {self.pdc_types!r}")
            if pdc == "rd" and any(init != "random" for init in self.inits):
                raise ValueError(f"pdc_types 'rd' cannot start from a hand-designed pair, got inits={self.inits!r}")
        if self.pdc_types and not self.inits:
            raise ValueError("inits must not be empty when pdc_types is given")
        for name in self.hand_designed:
            if name not in _HAND:
                raise ValueError(f"hand_designed must be among {list(_HAND)}, got {self.hand_designed!r}")
        for name in ("sigma_grid", "canny_sigmas"):
            if any(not 0 < float(s) < float("inf") for s in getattr(self, name)):
                raise ValueError(f"{name} must hold positive sigmas, got {getattr(self, name)!r}")
        if not 0 < self.canny_low_ratio <= 1:
            raise ValueError(f"canny_low_ratio must be in (0, 1], got {self.canny_low_ratio!r}")
        if isinstance(self.checkpoint_every, bool) or self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be a non-negative integer, got {self.checkpoint_every!r}")
        if isinstance(self.num_threads, bool) or self.num_threads < 0:
            raise ValueError(f"num_threads must be a non-negative integer, got {self.num_threads!r}")
        check_range("tie_tolerance", self.tie_tolerance, 0)
        for name in ("lr", "head_lr", "max_dist", "sigma_init"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.kernel_sizes and not self.inits:
            raise ValueError("inits must not be empty when kernel_sizes is given")
        if self.kernel_sizes and not self.zero_sum:
            raise ValueError("zero_sum must not be empty when kernel_sizes is given")

