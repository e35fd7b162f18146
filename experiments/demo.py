"""``make demo``: a quick version of experiment 2, edges under noise (a few minutes on a CPU).

Runs :mod:`experiments.edges_noise` with ``configs/demo.yaml`` (one seed, two noise levels, 5x5
learned kernels, a few hand-designed detectors), writes the same kind of run folder and report
under ``runs/demo/`` and prints the headline table and where the report is.

Run::

    cnnconv run demo [--set key=value ...] [--out ROOT] [--device cpu]
    python -m experiments.demo [--set key=value ...]      # in a clone (``make demo``)

Duration on a 2-core CPU: about 1.5 min on a quiet machine (3 min on a busy one).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import config_file
from .edges_noise import EdgesNoiseConfig, headline_table, main as edges_main


def main(argv=None) -> Path:
    """Run the demo; returns the run folder. ``--config`` defaults to ``configs/demo.yaml``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv) and "--resume" not in argv:
        argv = ["--config", str(config_file("demo")), *argv]
    run_dir = edges_main(argv, name="demo", config_cls=EdgesNoiseConfig,
                         description=__doc__.strip())
    report = run_dir / "report.md"
    if report.is_file():
        import json

        rows = json.loads((run_dir / "results.json").read_text())["rows"]
        print()
        seeds = len({r["seed"] for r in rows})
        print("ODS (mean ± std over seeds):" if seeds > 1 else "ODS (one seed):")
        print(headline_table(rows))
        print()
        print(f"Report: {report.resolve()}")
    return run_dir


if __name__ == "__main__":
    main()
