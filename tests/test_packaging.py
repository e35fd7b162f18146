"""The experiments work from an installed package, and ``cnnconv run`` drives them.

The slow test builds the sdist, builds the wheel from that sdist, installs the wheel into a fresh
virtual environment (reusing this environment's torch etc.) and runs the experiments from an
empty folder.
"""

from __future__ import annotations

import argparse
import os
import re
import site
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from cnnconv.cli import runner

ROOT = Path(__file__).resolve().parents[1]
TINY_DEMO = ["image_size=32", "n_train=2", "n_test=1", "noise_levels=[0.3]", "kernel_sizes=[5]",
             "inits=[sobel]", "zero_sum=[true]", "parametric=false", "hand_designed=[sobel]",
             "sigma_grid=[1.0]", "canny_sigmas=[]", "steps=2", "batch_size=1", "n_thresholds=5",
             "max_dist=1.5"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnconv")
    runner.add_run_parser(parser.add_subparsers(dest="command"))
    return parser


def test_run_parser_passes_the_experiment_options_through():
    args = _parser().parse_args(["run", "edges_noise", "--set", "seeds=[0,1]", "--help"])
    assert args.experiment == "edges_noise" and args.options == ["--set", "seeds=[0,1]", "--help"]
    assert args.func is runner.run_command
    assert _parser().parse_args(["run", "--list"]).list


def test_run_lists_every_experiment_with_a_shipped_config(capsys):
    assert runner.run_command(_parser().parse_args(["run", "--list"])) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(runner.EXPERIMENTS)
    shipped = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert shipped == set(listed)


def test_run_unknown_experiment_and_help(capsys):
    with pytest.raises(ValueError, match="unknown experiment 'edge_noise'; choose one of demo"):
        runner.run_command(_parser().parse_args(["run", "edge_noise"]))
    assert runner.run_command(_parser().parse_args(["run", "kernel_recovery", "--help"])) == 0
    out = capsys.readouterr().out
    assert "kernel_sizes (list[int], default [3, 5, 7])" in out and "num_threads" in out
    assert runner.run_command(_parser().parse_args(["run", "demo", "--set", "steps=x"])) == 2


@pytest.mark.parametrize("name", list(runner.EXPERIMENTS))
def test_every_experiment_help_states_its_duration(name, capsys):
    assert runner.run_command(_parser().parse_args(["run", name, "--help"])) == 0
    out = capsys.readouterr().out
    assert re.search(r"Duration on a 2-core CPU: (about \d|several minutes)", out), out[:500]
    # the usage line names how the experiment is reached: installed (also editable) or a clone
    if runner.experiments_package() == "cnnconv.experiments":
        assert f"usage: cnnconv run {name}" in out
    else:
        assert f"usage: python -m experiments.{name}" in out
    assert "num_threads" in out


def test_config_defaults_come_from_the_yaml(tmp_path):
    # The YAML file is the only source of the defaults: a class built from an edited copy
    # takes its values, and a copy that misses or adds a key is refused.
    import dataclasses

    from cnnconv.training import param, yaml_defaults

    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\nsizes: [3, 5]\n")

    @dataclasses.dataclass
    @yaml_defaults(path)
    class C:
        steps: int = param(help="steps")
        sizes: list[int] = param(help="sizes")

    assert C() == C(steps=7, sizes=[3, 5]) and C().sizes is not C().sizes
    for text, match in (("steps: 7\n", r"missing \['sizes'\]"),
                        ("steps: 7\nsizes: [3]\nlr: 1\n", r"unknown \['lr'\]"),
                        ("steps: x\nsizes: [3]\n", "'steps' must be int")):
        path.write_text(text)
        with pytest.raises((ValueError, TypeError), match=match):
            yaml_defaults(path)(type("D", (), {"__annotations__": {"steps": "int", "sizes": "list[int]"},
                                               "steps": param(help="s"), "sizes": param(help="s")}))
    from experiments import kernel_recovery

    field = {f.name: f for f in dataclasses.fields(kernel_recovery.KernelRecoveryConfig)}
    assert field["adam_steps"].default == 300 and field["adam_steps"].metadata["help"]


@pytest.mark.slow
def test_wheel_from_sdist_runs_the_experiments_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                    "b.build_sdist(sys.argv[1])", str(dist)], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    (sdist,) = dist.glob("cnnconv-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path / "src", filter="data")
    tracked = subprocess.run(["git", "ls-files", "tests", "experiments", "configs", "docs",
                              "Makefile", "README.md", "pyproject.toml"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    missing = sorted(set(tracked) - names)
    assert not missing, f"the sdist lacks files its tests need: {missing}"

    (src,) = (tmp_path / "src").iterdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(dist), str(src)], env=env, check=True,
                   capture_output=True)
    (wheel,) = dist.glob("cnnconv-*.whl")
    files = set(zipfile.ZipFile(wheel).namelist())
    assert {"cnnconv/cli/runner.py", "cnnconv/experiments/demo.py",
            "cnnconv/experiments/configs/demo.yaml"} <= files

    home = tmp_path / "venv"
    venv.create(home, system_site_packages=True, with_pip=False)
    py = home / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # Reuse this environment's packages (torch, numpy, ...) as plain paths, after the venv's own.
    here = {sysconfig.get_path("purelib"), *site.getsitepackages()}
    Path(purelib, "zz_reuse.pth").write_text("\n".join(sorted(here)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--quiet", str(wheel)], env=env, check=True, capture_output=True)

    empty = tmp_path / "elsewhere"
    empty.mkdir()

    def run(*args):  # the installed console script, as a user types it
        return subprocess.run([str(home / "bin" / "cnnconv"), "run", *args], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=120)

    where = subprocess.run([str(py), "-c", "import cnnconv; print(cnnconv.__file__)"], cwd=empty,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(purelib), where
    listed = run("--list")
    assert listed.returncode == 0 and "edges_noise" in listed.stdout, listed.stderr
    sets = [a for item in TINY_DEMO for a in ("--set", item)]
    demo = run("demo", *sets, "--device", "cpu", "--quiet")
    assert demo.returncode == 0, demo.stderr
    (report,) = (empty / "runs" / "demo").glob("*/report.md")
    assert report.read_text().startswith("# Edges under noise")
    assert re.search(r"ODS \(one seed\):", demo.stdout)
    helped = run("edges_noise", "--help")
    assert helped.returncode == 0 and "usage: cnnconv run edges_noise" in helped.stdout
