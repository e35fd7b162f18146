"""Convolution engines below the planner: padding, banded gradients (direct, separable, box sums, workspace)."""
