"""The FFT benchmark, run like every other experiment: config, run folder, report.

Runs ``experiments/bench_fft.py`` (``python -m experiments.bench_fft``) in a child process
with the configured sections, options and thread count, its figures going to
``<run>/figures``. No config value chooses code to run or where output goes: ``module`` must be
one of :data:`BENCHMARKS` and ``args`` may only hold the benchmark's numeric options
(:data:`EXTRA_OPTIONS`), so resuming a run folder made by someone else runs nothing of theirs.
The benchmark keeps no checkpoint: ``--resume`` runs it again from the start. It keeps its full output in ``bench_output.txt``, turns every table it prints
(markdown ``| a | b |`` rows) into a CSV and a section of ``report.md``, plots the ratio columns
(speed-ups) as bar charts and embeds the benchmark's own figures. The machine it ran on
(torch version, threads, CPU/GPU) heads the report, because timings mean little without it.

Run: ``cnnconv run fft_benchmark [--set key=value ...]`` (in a clone also
``python -m experiments.fft_benchmark --config configs/fft_benchmark.yaml``).

Duration on a 2-core CPU: several minutes, not yet measured end to end; the single direct F.conv1d of the seed section alone takes 40-113 s (``--set skip_slow_direct=true`` skips it).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnconv.training import (MAX_SEED, Run, atomic_write_text, check_names, check_range,
                               experiment_main, param, yaml_defaults)
from .bench_fft import SECTIONS
from .common import Report, config_file, new_figure, save_figure, write_csv

NAME = "fft_benchmark"
ROOT = Path(__file__).resolve().parents[len(__package__.split("."))]
"""The folder holding this package (the clone, or site-packages when installed)."""


BENCHMARKS = ("experiments.bench_fft",)
"""The benchmark modules ``module`` may name."""
EXTRA_OPTIONS = {"--seed-n": int, "--direct-max-n": int, "--auto-max-direct": float}
"""The benchmark options ``args`` may hold (each with its value), and their types."""


def _check_args(args: list[str]) -> None:
    """``args`` must be ``--option value`` or ``--option=value`` pairs from EXTRA_OPTIONS."""
    i = 0
    while i < len(args):
        option, eq, value = str(args[i]).partition("=")
        if option not in EXTRA_OPTIONS:
            raise ValueError(f"args may only hold the options {sorted(EXTRA_OPTIONS)} with their "
                             f"values, got {args[i]!r}")
        if not eq:
            i += 1
            if i == len(args):
                raise ValueError(f"args: {option} needs a value, got none")
            value = str(args[i])
        try:
            EXTRA_OPTIONS[option](value)
        except ValueError:
            raise ValueError(f"args: {option} needs a {EXTRA_OPTIONS[option].__name__} value, "
                             f"got {value!r}") from None
        i += 1


@dataclass
@yaml_defaults(config_file(NAME))
class FFTBenchmarkConfig:
    seed: int = param(help="random seed (the benchmark seeds itself; kept for the run record)")
    sections: list[str] = param(help="benchmark sections to run")
    quick: bool = param(help="smaller sweeps and grids (bench_fft --quick)")
    skip_slow_direct: bool = param(help="skip the slowest direct timings (about a minute)")
    num_threads: int = param(help="torch/OMP/MKL threads for the benchmark (0: leave as is)")
    args: list[str] = param(help="further benchmark options: --seed-n, --direct-max-n, "
                                "--auto-max-direct with their values")
    module: str = param(help=f"benchmark module, one of {list(BENCHMARKS)}")
    timeout: float = param(help="seconds before the benchmark is stopped")

    def __post_init__(self):
        check_names("module", [self.module], BENCHMARKS)
        check_names("sections", self.sections, SECTIONS)
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("num_threads", self.num_threads, 0, 1024)
        check_range("timeout", self.timeout, 0, strict=True)
        _check_args(self.args)

    def command(self, figures: Path) -> list[str]:
        """The benchmark's command line, writing its figures to ``figures``."""
        # Modules are named as in a clone; run them from this package (also when installed).
        package, dot, rest = self.module.partition(".")
        module = f"{__package__}.{rest}" if package == "experiments" and dot else self.module
        cmd = [sys.executable, "-m", module, "--sections", ",".join(self.sections),
               "--out", str(figures)]
        if self.quick:
            cmd.append("--quick")
        if self.skip_slow_direct:
            cmd.append("--skip-slow-direct")
        if self.num_threads:
            cmd += ["--threads", str(self.num_threads)]
        return cmd + list(self.args)


def parse_tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Markdown tables in ``text`` as ``(title, header, rows)``; the title is the last non-table
    line before the table (empty if none).

    Example:
        >>> parse_tables("speed\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n")
        [('speed', ['a', 'b'], [['1', '2']])]
    """
    tables, title, current = [], "", None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|") and s.endswith("|") and len(s) > 1:
            cells = [c.strip() for c in s[1:-1].split("|")]
            if current is None:
                current = (title, cells, [])
                tables.append(current)
            elif all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                continue
            else:
                current[2].append(cells)
        else:
            current = None
            if s:
                title = s.lstrip("#").strip()
    return tables


def _number(cell: str) -> float | None:
    m = re.fullmatch(r"\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*x?\s*", cell)
    return float(m.group(1)) if m else None


def _machine() -> list[str]:
    cuda = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
    return [f"python {platform.python_version()}, torch {torch.__version__}",
            f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
            f"torch threads {torch.get_num_threads()}",
            f"CUDA device: {cuda}",
            f"run at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"]


def run(cfg: FFTBenchmarkConfig, run: Run) -> dict:
    if not run.is_main:
        return {}
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    if cfg.num_threads:
        env.update(OMP_NUM_THREADS=str(cfg.num_threads), MKL_NUM_THREADS=str(cfg.num_threads))
    figures = run.dir / "figures"
    if run.resume and figures.is_dir():
        shutil.rmtree(figures)  # the benchmark runs again and makes its figures afresh
    cmd = cfg.command(figures)
    t0 = time.perf_counter()
    # Stream the output (the full benchmark takes minutes) while keeping all of it.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if not run.quiet:
                print(line, end="", flush=True)
        stderr = proc.stderr.read()
        proc.wait(timeout=max(1.0, cfg.timeout - (time.perf_counter() - t0)))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stdout = "".join(lines)
    seconds = time.perf_counter() - t0
    atomic_write_text(run.dir / "bench_output.txt", stdout)
    if stderr:
        atomic_write_text(run.dir / "bench_stderr.txt", stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n"
                           f"{stderr[-2000:]}")
    tables = parse_tables(stdout)
    run.log("bench", 0, seconds=seconds, tables=len(tables))

    rep = Report("FFT benchmark")
    shown = " ".join(["python"] + [os.path.relpath(c, run.dir) if c == str(figures) else c
                                   for c in cmd[1:]])
    rep.paragraph(f"`{shown}` ran in {seconds:.1f} s"
                  f"{f' with {cfg.num_threads} threads' if cfg.num_threads else ''}. Times come from one "
                  "run on this machine: compare the ratios within a table, not absolute times "
                  "across machines. The full output is in `bench_output.txt`.")
    rep.section("Machine")
    rep.bullets(_machine())
    for n, (title, header, rows) in enumerate(tables, start=1):
        name = f"table{n}"
        write_csv(run.dir / f"{name}.csv", [dict(zip(header, r)) for r in rows], header)
        rep.section(title or f"Table {n}")
        rep.table([dict(zip(header, r)) for r in rows], header)
        ratio_cols = [i for i, h in enumerate(header)
                      if re.search(r"speed|ratio|faster|\bvs\b|/", h, re.I)]
        for col in ratio_cols:
            values = [_number(r[col]) if col < len(r) else None for r in rows]
            if sum(v is not None for v in values) < 1:
                continue
            labels, xlabel = _bar_labels(header, rows)
            path = run.dir / f"{name}_{re.sub(r'[^A-Za-z0-9]+', '_', header[col]).strip('_')}.png"
            _bar_chart(labels, values, header[col], title or name, path, xlabel=xlabel)
            rep.image(path, f"{header[col]}, table {n}", run.dir)
    pngs = sorted(figures.glob("*.png")) if figures.is_dir() else []
    if pngs:
        rep.section("Figures")
        for path in pngs:
            rep.image(path, f"{path.stem} (from the benchmark)", run.dir)
    if not tables:
        rep.section("Output")
        rep.paragraph("The benchmark printed no markdown table; its output follows.")
        rep.paragraph("```\n" + stdout.strip() + "\n```")
    rep.write(run.dir / "report.md")
    return {"tables": len(tables), "seconds": seconds}


def _bar_chart(labels, values, ylabel, title, path, *, xlabel: str = ""):
    """Bar chart of one ratio column of a benchmark table, written to ``path`` (PNG) and returned.

    Args:
        labels: one label per row (see :func:`_bar_labels`); rows whose value is ``None`` are left out.
        values: the ratios.
        ylabel: the column's header, e.g. ``"F.conv2d/ours"``.
        title: the table's title; timing units are dropped from it (the bars are ratios) and it is
            wrapped, and cut after three lines, to fit the figure.
        path: destination.
        xlabel: what the labels are, e.g. ``"n"`` or ``"k, channels, size, kind"``.
    """
    import textwrap

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    pairs = [(lab, v) for lab, v in zip(labels, values) if v is not None]
    width = min(14.0, max(6.0, 0.32 * len(pairs) + 2.5))
    fig = new_figure(width, 4.8)
    ax = fig.add_subplot()
    bars = ax.bar(range(len(pairs)), [v for _, v in pairs], color="tab:blue")
    fontsize = 7 if len(pairs) > 20 else 8
    # Upright labels when they fit side by side (about 0.6 em a character), else vertical ones.
    fits = max((len(lab) for lab, _ in pairs), default=0) * 0.6 * fontsize / 72 < 0.8 * width / max(1, len(pairs))
    ax.set_xticks(range(len(pairs)), [lab for lab, _ in pairs], rotation=0 if fits else 90,
                  fontsize=fontsize)
    ax.axhline(1.0, color="gray", lw=1, ls="--")
    if pairs and max(v for _, v in pairs) / max(min(v for _, v in pairs), 1e-12) > 50:
        ax.set_yscale("log")
        # One plain label per decade: minor labels on a log axis run into each other.
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=30))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if len(pairs) <= 20:
        ax.bar_label(bars, [f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for _, v in pairs], fontsize=7,
                     padding=1)
    num, slash, den = ylabel.partition("/")
    meaning = f"\nabove 1: {den.strip()} is faster" if slash and num.strip() and den.strip() else ""
    ax.set_ylabel(f"{ylabel} (ratio of times){meaning}")
    ax.set_xlabel(xlabel)
    short = re.sub(r",?\s*\btime \(ms\)(?: and ratio to cnnconv)?,?", "", title).strip(" ,:")
    short = re.sub(r"\s+([,:.])", r"\1", re.sub(r":\s*\(", " (", short))
    lines = textwrap.wrap(short, width=int(width * 12))
    if len(lines) > 3:
        lines = lines[:2] + [textwrap.shorten(" ".join(lines[2:]), width=int(width * 12), placeholder=" ...")]
    ax.set_title("\n".join(lines), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
    return fig


def _bar_labels(header: list[str], rows: list[list[str]]) -> tuple[list[str], str]:
    """Bar labels of a benchmark table: the cells of its leading key columns, and their headers.

    A first column of text (``case``, ``method``) names the rows by itself. Otherwise the key
    columns are the leading ones that hold no measurement: text or integers in every cell (no
    decimal number, no ``n/a``) and no ratio header (``/``, ``ratio``, ...). ``n | time | ...``
    gives the labels ``10``, ``100`` and the axis label ``n``; ``k | channels | size | kind |
    time ...`` gives ``3, 8, 64, dense`` and ``k, channels, size, kind``.

    Returns:
        ``(labels, xlabel)``; without a key column the labels are the row numbers.

    Example:
        >>> _bar_labels(["n", "fft", "direct / fft"], [["10", "0.00333", "0.5"], ["100", "0.01", "2.1"]])
        (['10', '100'], 'n')
    """
    def is_key(cell: str) -> bool:
        return cell != "n/a" and (_number(cell) is None or "." not in cell)

    keys = 0
    while keys < len(header) and not re.search(r"speed|ratio|faster|\bvs\b|/", header[keys], re.I) and all(
            keys < len(r) and is_key(r[keys]) for r in rows):
        keys += 1
    if keys > 1 and any(_number(r[0]) is None for r in rows):
        keys = 1
    if keys == 0:
        return [str(j + 1) for j in range(len(rows))], "row"
    return [", ".join(r[:keys]) for r in rows], ", ".join(header[:keys])


def main(argv=None):
    return experiment_main(NAME, FFTBenchmarkConfig, run, argv)


if __name__ == "__main__":
    main()
