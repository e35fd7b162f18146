"""cnnconv experiments: one module (or, for ``edges_noise``, one package) per experiment.

Run them as ``cnnconv run <name>`` from anywhere once cnnconv is installed with the
``experiments`` extra (they ship as ``cnnconv.experiments``, with the repository's ``configs/``
as ``cnnconv.experiments.configs``), or as ``python -m experiments.<name>`` in a clone. The
modules import each other relatively, so the same files work both ways.

Each experiment takes its defaults from ``configs/<name>.yaml`` (the only place they are
written), accepts ``--set key=value`` overrides and writes a run folder under ``runs/<name>/``
with the resolved config, ``run_info.yaml`` (command line, versions, git commit, device,
threads), ``metrics.csv``, checkpoints, figures and a ``report.md``. See
:mod:`cnnconv.training` for the machinery.

Shared here: :mod:`.common` (configs, markdown tables and reports, CSV files, figures, optional
packages) and :mod:`.timing` (the benchmarks' timings, tables and time charts).
"""
