"""Convolution engines below the planner; :mod:`cnnconv.functional.plan` decides which one runs.

- :mod:`~cnnconv.engines.padding`: output modes, anchors and border padding;
- :mod:`~cnnconv.engines.checks`: input and kernel checks shared by the 2-D and 3-D filters;
- :mod:`~cnnconv.engines.workspace`: the channels_last fold of a batch and its reusable buffer;
- :mod:`~cnnconv.engines.direct`: depthwise convolution (and the FFT engine's depthwise call);
- :mod:`~cnnconv.engines.separable`: rank-1 kernels as 1-D passes, in 2-D and 3-D;
- :mod:`~cnnconv.engines.box`: window sums by blockwise running sums;
- :mod:`~cnnconv.engines.banded`: gradient pairs from small factors, in bands of rows.
"""
