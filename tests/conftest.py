"""Shared test configuration: deterministic seeds, a headless plotting backend, hypothesis profile."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "cnnconv",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run, so CI is reproducible
)
settings.load_profile("cnnconv")


@pytest.fixture(autouse=True)
def _seed_everything():
    """Each test starts from fixed seeds, so a failure can be reproduced."""
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def rng():
    """A fresh numpy generator for tests that draw their own random data."""
    return np.random.default_rng(12345)


# --------------------------------------------------------------------------- devices and dtypes
# Layer tests take `device` and `dtype` from these fixtures so the same test runs on CUDA where
# one is present (and is not silently skipped on a CPU-only machine: the CPU case always runs).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every device this machine has: ``"cpu"``, plus ``"cuda"`` when available."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    """The floating dtypes every layer supports."""
    return request.param
