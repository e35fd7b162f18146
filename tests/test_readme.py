"""The README cannot rot: its Python examples run, their stated results hold, its commands exist.

Every ```python block of README.md is executed on its own (a fresh namespace, a temporary working
directory, ``MPLBACKEND=Agg``, the planner's default constants). The results the README states in
its comments (printed values, a recovered sigma, an error level) are checked against what the
block actually produced. The shell blocks are checked without running anything long: every
``make`` target, experiment module, config file, ``--set`` key, ``cnnconv`` command line,
benchmark section, pip extra and documentation link they name must exist.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def _blocks(*langs: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of the fenced blocks in one of ``langs``."""
    out = []
    for m in _FENCE.finditer(TEXT):
        if m.group(1) in langs:
            out.append((TEXT.count("\n", 0, m.start(2)) + 1, m.group(2)))
    return out


PYTHON_BLOCKS = _blocks("python")
SHELL_BLOCKS = _blocks("bash", "sh", "console", "shell")


def _shell_lines() -> list[str]:
    """Command lines of the shell blocks and of inline code spans, comments removed."""
    lines = []
    for _, code in SHELL_BLOCKS:
        for line in code.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    # Inline spans such as `python -m experiments.kernel_recovery --config configs/...yaml`.
    lines += [s for s in re.findall(r"`([^`\n]+)`", TEXT) if s.startswith(("python -m", "make ", "cnnconv "))]
    return lines


SHELL_LINES = _shell_lines()


# --------------------------------------------------------------------------- Python examples

# Results the README states in the comments of its examples, checked on what the block produced.
# Keyed by a snippet that identifies the block; a claim whose block disappeared fails the test,
# so a stated result cannot silently stop being checked.


def _claim_correlate(ns, out):
    assert out[:2] == ["tensor(8.)", "tensor(-8.)"]
    assert out[2:5] == ["full (2, 3, 44, 44)", "same (2, 3, 40, 40)", "valid (2, 3, 36, 36)"]
    assert ns["z"].shape == ns["x"].shape


def _claim_kernels(ns, out):
    assert ns["g"].shape == (13, 13)
    assert abs(float(ns["g"].sum()) - 1.0) < 1e-6
    assert ns["k5"].shape == (5, 5)
    assert ns["d"].dtype == torch.float64


def _claim_functional(ns, out):
    assert ns["gxgy"].shape == (2, 3, 2, 64, 64)
    assert ns["mean31"].shape == ns["x"].shape


def _claim_layers(ns, out):
    assert out[0].startswith("GaussianBlur(sigma=(2.0, 2.0), kernel_size=(17, 17), truncate=4.0, border='reflect'")
    assert ns["edges"].shape == (4, 3, 64, 64)
    assert ns["xy"].shape == (4, 3, 2, 64, 64)


def _claim_fft(ns, out):
    assert float(out[0]) < 1e-5  # "about 1e-7 in float32"
    assert out[1] == "torch.Size([2, 8, 48, 48])"
    assert out[2] == "['Conv2d', 'ReLU', 'FFTConv2d']"
    assert out[3] in ("fft", "direct")
    assert type(ns["net"][2]) is torch.nn.Conv2d  # convert_back restored the plain layer


def _claim_planner(ns, out):
    assert out[:2] == ["fft", "direct"]
    assert out[2].startswith("{'direct': ")


def _claim_learnable(ns, out):
    assert out[0] == "['zero_sum', 'antisymmetric']"
    w = ns["w"]
    assert float(w.sum(dim=(-2, -1)).abs().max()) < 1e-6
    assert float((w + torch.rot90(w, 2, dims=(-2, -1))).abs().max()) == 0.0
    assert ns["layer"].frozen
    assert ns["noisy"].weight.shape == (2, 3, 5, 5)
    assert ns["noisy"].kernel_names == ["sobel_x", "gaussian"]


def _claim_sigma(ns, out):
    assert abs(ns["blur"].sigma.item() - 2.5) < 0.025  # "about 2.5": within 1%
    assert out[1] == "torch.Size([4, 1, 48, 48]) torch.Size([4, 2, 48, 48])"
    assert out[2] == "torch.Size([4, 8, 48, 48]) torch.Size([8, 1, 9, 9])"


def _claim_edges(ns, out):
    assert ns["grad"].shape == (1, 2, 64, 64)
    assert ns["edges"].dtype == torch.bool and ns["canny_like"].dtype == torch.bool
    assert ns["dog"].weight.requires_grad


def _claim_inspect(ns, out):
    assert out[0].startswith("weight (0, 0) sobel_x identity 1.0 dc=0.00 antisymmetry=1.00 orientation=0")
    assert out[1].startswith("weight (1, 0) sobel_x conv_flip 1.0 dc=0.00 antisymmetry=1.00 orientation=0")
    assert out[2] == "gaussian 1.3"
    assert Path("kernels.png").is_file() and Path("kernels.png").stat().st_size > 0


def _claim_coming_from(ns, out):
    assert out == ["kornia, scipy and OpenCV agree"]  # every assert of the block held
    assert ns["x"].dtype == torch.float64


def _claim_export(ns, out):
    assert out == ["FFTConv2d", "Conv2d"]
    assert not any(type(m).__name__.startswith("FFTConv") for m in ns["net"].modules())


CLAIMS = {
    "kernels.separable_factors(kernels.sobel_x())": _claim_kernels,
    "convolve2d(ramp, k": _claim_correlate,
    "CF.gaussian_blur2d(x, sigma=2.0)": _claim_functional,
    "pipeline = torch.nn.Sequential(GaussianBlur(1.0)": _claim_layers,
    "convert(net, method=\"auto\"": _claim_fft,
    "from cnnconv.planner import choose_method": _claim_planner,
    "constrain(layer, \"zero_sum\", \"antisymmetric\")": _claim_learnable,
    "LearnableGaussianBlur(1, sigma=1.0": _claim_sigma,
    "GradientFilter(\"sobel\")": _claim_edges,
    "extract_kernels(\"edge.pt\")": _claim_inspect,
    "kornia, scipy and OpenCV agree": _claim_coming_from,
    "program = torch.export.export(net, (x,))": _claim_export,
}


def test_readme_has_the_api_tour():
    assert len(PYTHON_BLOCKS) >= len(CLAIMS)
    for snippet in CLAIMS:
        owners = [line for line, code in PYTHON_BLOCKS if snippet in code]
        assert len(owners) == 1, f"README claim {snippet!r} is in {len(owners)} python blocks, expected 1"


@pytest.mark.parametrize("line,code", PYTHON_BLOCKS, ids=[f"README.md:{line}" for line, _ in PYTHON_BLOCKS])
def test_python_example_runs(line, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The planner's documented defaults, whatever calibration this machine may have cached.
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path / "cache"))
    namespace = {"__name__": "__readme__"}
    exec(compile(code, f"{README}:{line}", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    for snippet, check in CLAIMS.items():
        if snippet in code:
            check(namespace, out)


# --------------------------------------------------------------------------- commands and links


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.M))


def test_make_targets_exist():
    named = {m for line in SHELL_LINES for m in re.findall(r"^make\s+([\w-]+)", line)}
    assert {"demo", "test", "help"} <= named
    missing = named - _make_targets()
    assert not missing, f"README names make targets the Makefile lacks: {sorted(missing)}"


def test_experiment_modules_and_configs_exist():
    modules = {m for line in SHELL_LINES for m in re.findall(r"-m\s+experiments\.(\w+)", line)}
    modules |= set(re.findall(r"python -m experiments\.(\w+)", TEXT))
    assert modules, "README names no experiment"
    missing = sorted(m for m in modules if not (ROOT / "experiments" / f"{m}.py").is_file()
                     and not (ROOT / "experiments" / m / "__main__.py").is_file())
    assert not missing, f"README names experiments that do not exist: {missing}"
    configs = set(re.findall(r"configs/([\w-]+)\.yaml", TEXT))
    missing = sorted(c for c in configs if not (ROOT / "configs" / f"{c}.yaml").is_file())
    assert not missing, f"README names configs that do not exist: {missing}"
    # Every shipped config is documented.
    shipped = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert not shipped - configs, f"configs missing from the README: {sorted(shipped - configs)}"


def test_set_overrides_name_real_config_keys():
    import yaml

    checked = 0
    for line in SHELL_LINES:
        config = re.search(r"--config\s+(configs/[\w-]+\.yaml)", line)
        keys = re.findall(r"--set\s+([\w.]+)=", line)
        if not (config and keys):
            continue
        known = yaml.safe_load((ROOT / config.group(1)).read_text())
        for key in keys:
            assert key.split(".")[0] in known, f"--set {key} is not a key of {config.group(1)}"
            checked += 1
    assert checked > 0, "README shows no --set override"


def test_cnnconv_command_lines_parse():
    from cnnconv.cli import build_parser

    lines = [line for line in SHELL_LINES if line.startswith("cnnconv ")]
    assert any(line.startswith("cnnconv inspect") for line in lines)
    for line in lines:
        args = shlex.split(line)[1:]
        if "--help" in args or "-h" in args:
            continue
        try:
            parsed = build_parser().parse_args(args)
        except SystemExit as exc:  # argparse reports a bad command line this way
            raise AssertionError(f"README command does not parse: {line!r}") from exc
        assert parsed.command is not None, line


def test_cnnconv_commands_run_on_the_readme_checkpoint(tmp_path, monkeypatch, capsys):
    """The README's `cnnconv inspect edge.pt ...` lines work on the file its Python example saves."""
    from cnnconv.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("CNNCONV_CACHE_DIR", str(tmp_path / "cache"))
    (code,) = [code for _, code in PYTHON_BLOCKS if 'torch.save(conv.state_dict(), "edge.pt")' in code]
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    # Only the read-only commands run here (`calibrate` would spend a minute timing the machine).
    lines = [
        line for line in SHELL_LINES
        if re.match(r"cnnconv (inspect edge\.pt|kernels|--help)", line) and "<" not in line
    ]
    assert any("edge.pt" in line for line in lines)
    for line in lines:
        args = shlex.split(line)[1:]
        capsys.readouterr()
        try:
            status = main(args)
        except SystemExit as exc:  # --help exits through argparse
            status = exc.code
        out = capsys.readouterr().out
        assert status == 0, f"{line!r} exited with {status}"
        if args[:2] == ["inspect", "edge.pt"]:
            assert "sobel_x" in out and "conv_flip" in out, line


def test_benchmark_sections_exist():
    from experiments.bench_fft import SECTIONS

    for line in SHELL_LINES:
        if "experiments.bench_fft" in line:
            m = re.search(r"--sections\s+([\w,]+)", line)
            if m:
                unknown = set(m.group(1).split(",")) - set(SECTIONS)
                assert not unknown, f"unknown bench_fft sections {sorted(unknown)} in {line!r}"


def test_pip_extras_exist():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = set(re.findall(r"pip install -e '\.\[(\w+)\]'", TEXT))
    named |= set(re.findall(r"cnnconv\[(\w+)\]", TEXT))
    assert {"experiments", "dev"} <= named
    assert named <= extras, f"README names extras pyproject.toml lacks: {sorted(named - extras)}"


def test_border_table_matches_the_code():
    from cnnconv.engines.padding import BORDERS

    rows = re.findall(r"^\s*\|\s*`(\w+)`\s*\|\s*`(\w+)`", TEXT, re.M)
    assert {torch_name for torch_name, _ in rows} == set(BORDERS)
    expected = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest", "circular": "wrap", "symmetric": "reflect"}
    assert dict(rows) == expected


def test_results_placeholders_present_once():
    for tag in ("demo", "bench"):
        start, end = f"<!-- results:{tag} -->", f"<!-- /results:{tag} -->"
        assert TEXT.count(start) == 1 and TEXT.count(end) == 1, tag
        assert TEXT.index(start) < TEXT.index(end), tag


def test_links_resolve():
    links = re.findall(r"\]\(([^)#\s]+)\)", TEXT)
    local = [link for link in links if "://" not in link]
    assert "docs/architecture.md" in local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_coming_from_section_follows_the_border_table():
    sections = re.findall(r"^## (.+)$", TEXT, re.M)
    assert sections.index("Coming from kornia, scipy or OpenCV") == sections.index("Conventions") + 1
    section = TEXT.split("## Coming from kornia, scipy or OpenCV", 1)[1].split("\n## ", 1)[0]
    for name in ("BORDER_REFLECT_101", "border_type", "mirror", "symm", "normalized=False", "convert_back(model)"):
        assert name in section, name
