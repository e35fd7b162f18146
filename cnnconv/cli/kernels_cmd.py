"""``cnnconv kernels``: list, print or plot the hand-designed kernels of the bank."""

from __future__ import annotations

import ast
from typing import Any

from cnnconv.cli import output


def _kernel_arguments(spec: str) -> tuple[str, dict]:
    """``NAME[:key=value,...]`` as ``(NAME, {key: value})``; values are Python literals
    (``1.5``, ``7``, ``True``) or else plain strings (``axis=x``)."""
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise output.CommandError(
                f"kernel arguments must be key=value pairs separated by commas, got {output.safe(spec)!r}"
            )
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()
    return name, kwargs


def _build_kernel(spec: str) -> Any:
    """The bank kernel for ``NAME[:key=value,...]``, or a CommandError saying what is missing."""
    from cnnconv import kernels

    name, kwargs = _kernel_arguments(spec)
    try:
        return kernels.get_kernel(name, **kwargs)
    except (TypeError, ValueError) as exc:
        if str(exc).startswith("unknown kernel name"):
            raise output.CommandError(str(exc)) from None
        if not kwargs:
            raise output.CommandError(
                f"kernel {output.safe(name)!r} needs arguments ({exc}); give them as NAME:key=value,..., "
                f"e.g. gaussian:sigma=1.5,size=7"
            ) from None
        raise output.CommandError(f"kernel {output.safe(spec)!r}: {exc}") from None


def _run_kernels(args: Any) -> int:
    from cnnconv import kernels

    output.check_indent(args.indent)
    if args.plot and not args.names:
        raise output.CommandError("--plot needs kernel names, e.g. cnnconv kernels sobel_x sobel_y --plot sobel.png")
    if args.plot:
        output.check_plot_path(args.plot, args.overwrite)
    if args.names:
        built = {spec: _build_kernel(spec) for spec in args.names}
    else:  # the whole bank; kernels that need arguments are listed without a shape
        built = {}
        for name in kernels.list_kernels():
            try:
                built[name] = kernels.get_kernel(name)
            except (TypeError, ValueError):
                built[name] = None
    if args.plot:
        from cnnconv.analysis.plotting import plot_kernels

        with output.writing_plot(args.plot):  # one kernel per row: each gets its own colour scale
            plot_kernels(
                list(built.values()),
                [output.safe(spec) for spec in built],
                path=args.plot,
                ncols=1,
                overwrite=args.overwrite,
            )
    if args.json:
        out: dict[str, dict | None] = {}
        for spec, k in built.items():
            if k is None:
                out[spec] = None
            else:
                values = {"values": k.detach().cpu().double().tolist()} if args.names else {}
                out[spec] = {"shape": list(k.shape), **values}
        output.dump_json(out, args.indent)
        return 0
    width = max(len(spec) for spec in built)
    for spec, k in built.items():
        print(f"{output.safe(spec):<{width}}  {'x'.join(map(str, k.shape)) if k is not None else '(needs arguments)'}")
        if args.names and max(k.shape) <= output.MAX_VALUES_SIDE:
            for row in output.value_rows(k.reshape(-1, k.shape[-1])):
                print(f"    {row}")
    if args.plot:
        print(f"\nplot written to {output.abspath(args.plot)}")
    return 0


def add_kernels(subparsers: Any) -> None:
    """Register the ``kernels`` command."""
    p = output.add_command(
        subparsers,
        "kernels",
        help="list, print or plot the hand-designed kernels of the bank",
        description=(
            "Without names: list the bank's kernels and their shapes. With names: print each "
            "kernel's values (up to 7x7), or draw them with --plot. A kernel that needs arguments "
            "takes them after a colon: gaussian:sigma=1.5,size=7."
        ),
        epilog=(
            "examples:\n"
            "  cnnconv kernels\n"
            "  cnnconv kernels sobel_x laplacian4\n"
            "  cnnconv kernels sobel_x sobel_y gaussian:sigma=1.5,size=7 --plot bank.png\n"
            "\nTakes about a second (plus 2-3 s to draw a figure)."
        ),
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="kernel names, e.g. sobel_x or gaussian:sigma=1.5,size=7")
    output.add_plot_options(p, "draw the named kernels (.png, .pdf or .svg)")
    output.add_json_options(p, "the kernels")
    p.set_defaults(func=_run_kernels)
