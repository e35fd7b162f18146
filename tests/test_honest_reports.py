"""Reports claim only what their seeds support, and every run folder records how it was made."""

from __future__ import annotations

import re
import subprocess
import sys

import torch
import yaml

from experiments import demo

TINY = ["image_size=48", "n_train=4", "n_test=2", "noise_levels=[0.3]", "kernel_sizes=[5]",
        "inits=[sobel]", "zero_sum=[true]", "parametric=false", "hand_designed=[sobel]",
        "sigma_grid=[1.0]", "canny_sigmas=[]", "steps=4", "batch_size=2", "n_thresholds=5",
        "max_dist=1.5"]
VERDICTS = ("**learned wins**", "**learned loses**", "**tie**")


def _demo(tmp_path, seeds, capsys):
    argv = [a for item in [*TINY, f"seeds={seeds}"] for a in ("--set", item)]
    run_dir = demo.main([*argv, "--out", str(tmp_path), "--name", "r", "--quiet",
                         "--device", "cpu"])
    return run_dir, (run_dir / "report.md").read_text(), capsys.readouterr().out


def test_one_seed_report_has_no_spread_and_no_verdict(tmp_path, capsys):
    run_dir, report, printed = _demo(tmp_path, "[0]", capsys)
    for text in (report, printed):
        assert "±" not in text
        assert not any(word in text for word in VERDICTS)
    assert "met:" not in report and "more than the spread" not in report
    assert "a single seed supports no significance claim" in report.lower()
    assert "no verdict (needs at least 3 seeds)" in report
    assert "ODS (one seed):" in printed


def test_three_seeds_report_has_spread_and_verdicts(tmp_path, capsys):
    run_dir, report, printed = _demo(tmp_path, "[0, 1, 2]", capsys)
    assert re.search(r"\d\.\d{3} ± \d\.\d{3}", report) and "±" in printed
    assert any(word in report for word in VERDICTS)
    assert "Every value is the mean ± sample standard deviation over seeds." in report
    assert "no verdict" not in report and "not decided" not in report


def test_run_folder_records_command_versions_commit_device_threads(tmp_path, capsys):
    import cnnconv
    import numpy as np

    run_dir, _, _ = _demo(tmp_path, "[0]", capsys)
    runs = yaml.safe_load((run_dir / "run_info.yaml").read_text())["runs"]
    assert len(runs) == 1
    info = runs[0]
    assert "seeds=[0]" in info["arguments"] and info["arguments"][-1] == "cpu"
    assert info["command"][0] == sys.executable
    assert info["versions"] == {"python": info["versions"]["python"], "torch": torch.__version__,
                                "numpy": np.__version__, "cnnconv": cnnconv.__version__}
    assert info["device"] == "cpu" and info["threads"] >= 1
    head = subprocess.run(["git", "-C", str(demo.__file__.rsplit("/", 2)[0]), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else None  # None: not a clone
    commit = info["git_commit"]
    assert (commit.split("+")[0] if commit else None) == expected
