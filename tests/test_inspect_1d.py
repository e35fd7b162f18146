"""1-D kernels: description, matching, and bounded memory on long kernels.

Oracles: numpy formulas and brute-force searches written here (independent of cnnconv.kernels
and of the library's cumulative-sum shortcuts), and known properties of exponentials, Gaussians,
boxes and impulses.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from cnnconv.analysis import BANK_1D, apply_transform, describe_kernel, extract_kernels, match_kernel


def np_gaussian(sigma, n):
    x = np.arange(n) - (n - 1) / 2.0
    return np.exp(-(x**2) / (2 * sigma**2))


def brute_shortest_window(k, fraction):
    e = k * k
    total = e.sum()
    best = len(k)
    for i in range(len(k)):
        acc = 0.0
        for j in range(i, len(k)):
            acc += e[j]
            if acc >= fraction * total * (1 - 1e-12):
                best = min(best, j - i + 1)
                break
    return best


# --------------------------------------------------------------------------- description


@pytest.mark.parametrize("n", [1, 2, 7, 40, 129])
def test_describe_1d_against_numpy(rng, n):
    k = rng.standard_normal(n) * np.exp(-np.arange(n) / 9.0)
    d = describe_kernel(torch.tensor(k))
    assert d.shape == (n,)
    assert d.dc_gain == pytest.approx(k.sum(), abs=1e-12)
    assert d.l2_norm == pytest.approx(np.linalg.norm(k), rel=1e-12)
    even = 0.5 * (k + k[::-1])
    assert d.symmetry == pytest.approx((even**2).sum() / (k**2).sum(), abs=1e-12)
    assert d.symmetry + d.antisymmetry == pytest.approx(1.0, abs=1e-12)
    assert d.length_90 == brute_shortest_window(k, 0.9)
    assert d.length_99 == brute_shortest_window(k, 0.99)
    size = max(64, n)
    mag = np.abs(np.fft.rfft(k, size))
    np.testing.assert_allclose(d.frequency_response.numpy(), mag, rtol=1e-10, atol=1e-12)
    assert d.peak_gain == pytest.approx(mag.max(), rel=1e-12)
    # Energy-fraction bandwidth: brute force over the two-sided spectrum.
    full = np.abs(np.fft.fft(k, size)) ** 2
    f = np.abs(np.fft.fftfreq(size))
    below = [full[f <= b].sum() for b in np.fft.rfftfreq(size)]
    expected = np.fft.rfftfreq(size)[np.argmax(np.array(below) >= 0.9 * full.sum() * (1 - 1e-12))]
    assert d.bandwidth_90 == pytest.approx(expected, abs=1e-12)
    half = n // 2
    e = k * k
    assert d.side_balance == pytest.approx((e[n - half :].sum() - e[:half].sum()) / e.sum(), abs=1e-12)


@pytest.mark.parametrize("tau", [3.0, 25.0, 400.0])
def test_decay_rate_of_exponentials(tau):
    n = 4096
    k = np.exp(-np.arange(n) / tau)
    d = describe_kernel(torch.tensor(k))
    assert d.decay_rate == pytest.approx(1.0 / tau, rel=1e-6)
    # Energy at the start: one-sided (the second half holds exp(-n / tau) of it).
    assert d.side_balance == pytest.approx(-1.0 + 2 * np.exp(-n / tau), abs=1e-6)
    # Reversed (as a causal torch.nn.Conv1d stores it) and negated: same decay, other side.
    r = describe_kernel(torch.tensor(-k[::-1].copy()))
    assert r.decay_rate == pytest.approx(1.0 / tau, rel=1e-6)
    assert r.side_balance == pytest.approx(1.0 - 2 * np.exp(-n / tau), abs=1e-6)
    # The shortest window holding 90% of exp(-2t/tau)'s energy starts at 0: -tau/2 log(0.1).
    assert abs(d.length_90 - tau / 2 * np.log(10)) <= 1.0


def test_bandwidth_3db_of_a_moving_average():
    n, size = 8, 4096
    d = describe_kernel(torch.full((n,), 1.0 / n, dtype=torch.float64), grid=size)
    f = np.fft.rfftfreq(size)
    mag = np.abs(np.sinc(f * n) / np.sinc(f))  # Dirichlet kernel of the box
    assert d.bandwidth_3db == pytest.approx((mag >= 1 / np.sqrt(2)).sum() / size, abs=1e-12)
    assert 0.05 < d.bandwidth_3db < 0.07  # the known -3 dB cutoff of an 8-tap mean: 0.0553


def test_describe_1d_zero_and_errors():
    d = describe_kernel(torch.zeros(5))
    assert d.l2_norm == 0 and np.isnan(d.symmetry) and np.isnan(d.decay_rate)
    with pytest.raises(ValueError, match="finite"):
        describe_kernel(torch.tensor([1.0, float("inf")]))
    with pytest.raises(ValueError, match="empty"):
        describe_kernel(torch.zeros(0))


# --------------------------------------------------------------------------- matching


def test_bank_1d_names():
    assert {"identity", "difference", "box", "gaussian", "gaussian_derivative", "exponential"} <= set(BANK_1D)


@pytest.mark.parametrize("sigma, n", [(1.5, 15), (4.0, 40), (30.0, 1001)])
def test_match_1d_gaussian_recovers_sigma(sigma, n):
    k = 2.5 * np_gaussian(sigma, n)
    best = match_kernel(torch.tensor(k), top=1)[0]
    assert best.name == "gaussian" and best.transform == "identity"
    assert best.similarity == pytest.approx(1.0, abs=1e-9)
    assert best.sigma == pytest.approx(sigma, rel=1e-3)
    # Taps outside the support (at most 1e-12 of the energy) are left out of the alignment.
    np.testing.assert_allclose(best.aligned.numpy(), k, atol=1e-5 * k.max())


def test_match_1d_gaussian_derivative_and_sign():
    sigma, n = 3.0, 31
    x = np.arange(n) - 15.0
    k = -x * np_gaussian(sigma, n)  # intensity falling to the right
    best = match_kernel(torch.tensor(k), top=1)[0]
    assert best.name == "gaussian_derivative"
    assert best.transform in ("conv_flip", "negated")  # an odd kernel: both describe it
    assert best.transform == "conv_flip"  # the simpler one wins the tie
    assert best.sigma == pytest.approx(sigma, rel=1e-3)
    np.testing.assert_allclose(best.aligned.numpy(), k, atol=1e-6 * np.abs(k).max())


@pytest.mark.parametrize("tau", [2.0, 50.0])
def test_match_1d_exponential_both_directions(tau):
    n = 600
    k = 0.3 * np.exp(-np.arange(n) / tau)
    best = match_kernel(torch.tensor(k), top=1)[0]
    assert best.name == "exponential" and best.transform == "identity" and best.start == 0
    assert best.params["tau"] == pytest.approx(tau, rel=1e-3)
    assert best.scale == pytest.approx(0.3, rel=1e-3)
    rev = match_kernel(torch.tensor(-k[::-1].copy()), top=1)[0]
    assert rev.name == "exponential" and rev.transform == "conv_flip+negated"
    np.testing.assert_allclose(rev.aligned.numpy(), -k[::-1], atol=1e-6)


def test_match_1d_delayed_impulse_difference_and_box():
    k = np.zeros(5000)
    k[3210] = -2.0
    best = match_kernel(torch.tensor(k), top=1)[0]
    assert (best.name, best.transform, best.start) == ("identity", "negated", 3210)
    assert best.scale == pytest.approx(2.0)

    k = np.zeros(300)
    k[99:102] = [-1.0, 0.0, 1.0]
    best = match_kernel(torch.tensor(k), top=1)[0]
    assert (best.name, best.transform, best.start) == ("difference", "identity", 99)
    np.testing.assert_allclose(best.aligned.numpy(), k, atol=1e-12)

    k = np.zeros(64)
    k[10:23] = 0.7
    best = match_kernel(torch.tensor(k), top=1)[0]
    assert (best.name, best.params["size"], best.start) == ("box", 13, 10)
    assert best.similarity == pytest.approx(1.0, abs=1e-12)


def test_match_1d_similarity_is_the_cosine(rng):
    k = rng.standard_normal(33)
    for m in match_kernel(torch.tensor(k), top=5):
        a = m.aligned.numpy()
        cos = abs((a * k).sum()) / (np.linalg.norm(a) * np.linalg.norm(k))
        assert m.similarity == pytest.approx(cos, abs=1e-9)
        ref = apply_transform(m.reference, m.transform).numpy() * m.scale
        # The aligned kernel is the transformed, scaled reference placed from m.start.
        lo, hi = max(m.start, 0), min(m.start + len(ref), len(k))
        np.testing.assert_allclose(a[lo:hi], ref[lo - m.start : hi - m.start], atol=1e-12)
        assert not a[:lo].any() and not a[hi:].any()


def test_match_1d_bank_choices_and_errors():
    k = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0])
    (m,) = match_kernel(k, bank=["box"], top=1)
    assert m.name == "box"
    (m,) = match_kernel(k, bank={"tri": torch.tensor([1.0, 2.0, 1.0])}, top=1)
    assert m.name == "tri" and m.similarity == pytest.approx(1.0) and m.start == 1
    with pytest.raises(ValueError, match="sobel_x"):
        match_kernel(k, bank=["sobel_x"])
    with pytest.raises(ValueError, match="1-D kernel takes identity or conv_flip"):
        apply_transform(k, "rot90")
    assert match_kernel(torch.zeros(7)) == []
    for bank in ([], {"z": torch.zeros(3)}):
        with pytest.raises(ValueError, match="at least one non-zero kernel"):
            match_kernel(k, bank=bank)


# --------------------------------------------------------------------------- command line


def _decaying_bank(channels, length, seed):
    g = torch.Generator().manual_seed(seed)
    taus = torch.linspace(50.0, 5000.0, channels).reshape(channels, 1, 1)
    return torch.randn(channels, 1, length, generator=g) * torch.exp(-torch.arange(length) / taus)


def _measure(args, limit_bytes):
    """Run ``python -m cnnconv`` from a wrapper; return (result, peak RSS of the command in bytes)."""
    code = (
        "import resource, subprocess, sys\n"
        f"limit = {limit_bytes}\n"
        "def cap(): resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "r = subprocess.run([sys.executable, '-m', 'cnnconv', *sys.argv[1:]], preexec_fn=cap)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(r.returncode)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600, env=env
    )
    rss = int(result.stderr.strip().splitlines()[-1]) * 1024  # Linux reports KiB
    return result, rss


def test_cli_long_depthwise_conv1d_is_bounded(tmp_path):
    """nn.Conv1d(64, 64, 65536, groups=64): every kernel described and matched, RSS bounded."""
    conv = nn.Conv1d(64, 64, 65536, groups=64, bias=False)
    with torch.no_grad():
        conv.weight.copy_(_decaying_bank(64, 65536, 0))
    path = tmp_path / "long.pt"
    torch.save({"model": {"mixer": conv.state_dict()}, "step": 3}, path)
    result, rss = _measure(["inspect", path, "--json", "--top", "2"], 8 * 2**30)
    assert result.returncode == 0, result.stderr[-2000:]
    assert rss < 1.5 * 2**30, rss
    (layer,) = json.loads(result.stdout)["layers"]
    assert layer["shape"] == [64, 1, 65536] and layer["kernels_total"] == 64 and len(layer["kernels"]) == 64
    w = conv.weight.detach().double().numpy()
    for item in layer["kernels"][:: 16]:
        o = item["index"][0]
        props = item["properties"]
        assert props["shape"] == [65536]
        assert props["dc_gain"] == pytest.approx(w[o, 0].sum(), abs=1e-6)
        assert props["length_99"] == brute_window_fast(w[o, 0], 0.99)
        assert props["side_balance"] < -0.5  # decaying from the first tap
        assert len(item["matches"]) == 2


def brute_window_fast(k, fraction):
    """The shortest window by a vectorised scan of every start (numpy, O(n log n))."""
    e = k * k
    c = np.concatenate([[0.0], np.cumsum(e)])
    target = c[:-1] + fraction * c[-1] * (1 - 1e-12)
    ok = target <= c[-1] * (1 + 1e-12)
    ends = np.searchsorted(c, target[ok])
    return int((ends - np.nonzero(ok)[0]).min())


def test_cli_long_conv_single_kernel_text(tmp_path):
    model = nn.Sequential(nn.Conv1d(1, 16, 4096, bias=False), nn.Conv2d(1, 2, 3))
    with torch.no_grad():
        model[0].weight.copy_(_decaying_bank(16, 4096, 1))
    path = tmp_path / "lc.pt"
    torch.save(model.state_dict(), path)
    result, rss = _measure(["inspect", path, "--max-kernels", "1", "--layer", "0"], 4 * 2**30)
    assert result.returncode == 0, result.stderr[-2000:]
    assert rss < 1.5 * 2**30, rss
    out = result.stdout
    assert "kernel [out 0, in 0]  4096" in out and "energy 90% in" in out and "one-sided" in out
    assert "15 more kernels" in out
    assert extract_kernels(path, layer="0")[0].count == 16
