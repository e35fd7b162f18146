"""Edge evaluation: synthetic scenes with exact boundaries, real-image datasets and BSDS metrics.

:mod:`cnnconv.evaluation.data` renders scenes and loads photographs, :mod:`cnnconv.evaluation.datasets`
reads images with boundary ground truth, and :mod:`cnnconv.evaluation.metrics` scores boundary maps
with the BSDS protocol. This layer sits above the layers and imports only downward.
"""
