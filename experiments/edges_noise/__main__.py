"""``python -m experiments.edges_noise``: run experiment 2 (see the package's docstring)."""

from . import main

if __name__ == "__main__":
    main()
