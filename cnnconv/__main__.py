"""``python -m cnnconv``: the command line."""

from cnnconv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
