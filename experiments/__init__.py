"""cnnconv experiments: one module per experiment, run as ``python -m experiments.<name>``.

Each experiment reads ``configs/<name>.yaml`` (or the built-in defaults), accepts
``--set key=value`` overrides and writes a run folder under ``runs/<name>/`` with the resolved
config, ``metrics.csv``, checkpoints, figures and a ``report.md``. See
:mod:`cnnconv.training` for the machinery.
"""
