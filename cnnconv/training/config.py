"""Typed configs: dataclass fields with help, YAML files, ``key=value`` overrides and checks."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cnnconv.training._yaml import load_yaml, read_config_file

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_SEED",
    "check_names",
    "check_range",
    "config_help",
    "config_to_dict",
    "load_config",
    "param",
    "parse_override",
    "yaml_defaults",
]


def param(default: Any = dataclasses.MISSING, help: str = "") -> Any:
    """A dataclass field with a default and a help string shown by ``--help``.

    Mutable defaults (lists, dicts) are copied for each instance.

    Args:
        default: Default value; omitted in a class decorated with :func:`yaml_defaults`, which
            takes the defaults from a YAML file.
        help: One-line description.

    Returns:
        A ``dataclasses.field``.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class C:
        ...     ks: list[int] = param([3, 5], "kernel sizes")
        >>> C().ks
        [3, 5]
    """
    meta = {"help": help}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


MAX_SEED = 2**32 - 1
"""Largest accepted seed (numpy's seeding range)."""

MAX_BATCH_SIZE = 2**16
"""Largest accepted batch size: anything above is a typo, not a batch."""


def check_range(
    name: str, value: Any, low: float | None = None, high: float | None = None, *, strict: bool = False
) -> None:
    """Check a config value: a finite number in ``[low, high]`` (``(low, high]`` if ``strict``).

    Args:
        name: Config key, named in the error.
        value: The value (a bool is not a number here).
        low: Smallest allowed value (``None``: no bound).
        high: Largest allowed value (``None``: no bound).
        strict: ``low`` itself is not allowed.

    Raises:
        ValueError: ``value`` is not a number, is NaN/inf or lies outside the range.

    Example:
        >>> check_range("lr", 1e-3, 0, strict=True)
        >>> check_range("lr", float("nan"), 0, strict=True)
        Traceback (most recent call last):
        ...
        ValueError: lr must be a finite number > 0, got nan
    """
    bounds = " and ".join(
        b
        for b in (
            None if low is None else f"{'>' if strict else '>='} {low:g}",
            None if high is None else f"<= {high:g}",
        )
        if b
    )
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (low is None or (value > low if strict else value >= low))
        and (high is None or value <= high)
    )
    if not ok:
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, got {value!r}")


def check_names(name: str, values: Sequence[Any], allowed: Sequence[Any]) -> None:
    """Check that ``values`` is a non-empty list of items from ``allowed``.

    Raises:
        ValueError: ``values`` is empty or holds an unknown item (named, with the allowed ones).

    Example:
        >>> check_names("datasets", ["noise"], ["natural", "noise"])
    """
    if not values:
        raise ValueError(f"{name} must not be empty, got {list(values)!r}")
    for v in values:
        if v not in allowed:
            raise ValueError(
                f"{name} must be among {list(allowed)}, got {v!r}{_did_you_mean(str(v), [str(a) for a in allowed])}"
            )


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _did_you_mean(key: str, options: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{prefix}{close[0]}'?" if close else ""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``, converting lists/tuples and ints to floats."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"config key '{key}' must be a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise TypeError(f"config key '{key}' must be {_type_name(tp)}, got None")
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise TypeError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"config key '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(
                f"config key '{key}' must be a list ({_type_name(tp)}), got {value!r} (write lists as [a, b])"
            )
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ValueError(f"config key '{key}' must have {len(args)} items, got {value!r}")
            items = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else list(items)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise TypeError(f"config key '{key}' must be a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError(f"config key '{key}' must be bool (true/false), got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"config key '{key}' must be int, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise TypeError(f"config key '{key}' must be float, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-3' as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise TypeError(f"config key '{key}' must be float, got {value!r}")
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"config key '{key}' must be str, got {value!r}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise TypeError(f"config key '{key}' must be {tp.__name__}, got {value!r}")
        return value
    return value


def _build(cls: type, raw: Mapping[str, Any], prefix: str = "") -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            raise ValueError(
                f"unknown config key '{prefix}{key}'"
                f"{_did_you_mean(str(key), fields, prefix)}"
                f" (known keys: {', '.join(fields)})"
            )
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _coerce(raw[name], hints.get(name, Any), prefix + name)
        elif (
            dataclasses.is_dataclass(hints.get(name))
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            kwargs[name] = _build(hints[name], {}, prefix + name + ".")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"config key '{prefix}{name}' is required and has no default")
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.sub=value`` into a key path and a value parsed as a YAML scalar or list.

    Args:
        text: One ``--set`` argument.

    Returns:
        ``(["key", "sub"], value)``.

    Example:
        >>> parse_override("optim.lr=0.5")
        (['optim', 'lr'], 0.5)
        >>> parse_override("kernel_sizes=[3, 5]")
        (['kernel_sizes'], [3, 5])
    """
    if not isinstance(text, str):
        raise TypeError(f"override must be a str 'key=value', got {text!r}")
    if "=" not in text:
        raise ValueError(f"override must look like key=value, got {text!r}")
    key, _, value = text.partition("=")
    path = key.strip().split(".")
    if not all(path):
        raise ValueError(f"override key must be a dotted name, got {key!r}")
    parsed = load_yaml(value, f"override {text!r}: the value") if value.strip() else ""
    return path, parsed


def _set_path(raw: dict, path: list[str], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def yaml_defaults(path: str | os.PathLike) -> Callable[[type], type]:
    """Class decorator (placed under ``@dataclass``): the fields' defaults come from a YAML file.

    The file is then the single source of the defaults: it must give every field of the class
    and nothing else, each value checked against the field's type, and ``--help`` shows them.
    Fields are declared with :func:`param` without a default.

    Args:
        path: The YAML file (e.g. an experiment's shipped config).

    Returns:
        The decorator.

    Raises:
        ValueError: the file misses a field or names an unknown key (when the class is made).

    Example:
        >>> import tempfile, pathlib
        >>> from dataclasses import dataclass
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
        >>> _ = f.write_text("steps: 10\\nlr: 1\\n")
        >>> @dataclass
        ... @yaml_defaults(f)
        ... class C:
        ...     steps: int = param(help="optimizer steps")
        ...     lr: float = param(help="learning rate")
        >>> C()
        C(steps=10, lr=1.0)
    """

    def apply(cls: type) -> type:
        raw = read_config_file(path)
        names = list(inspect.get_annotations(cls))
        unknown = [k for k in raw if k not in names]
        missing = [n for n in names if n not in raw]
        if unknown or missing:
            raise ValueError(
                f"config file {path} must give exactly the fields of "
                f"{cls.__name__}: unknown {unknown}, missing {missing}"
            )
        hints = typing.get_type_hints(cls)
        for name in names:
            f = cls.__dict__.get(name)
            help = f.metadata.get("help", "") if isinstance(f, dataclasses.Field) else ""
            setattr(cls, name, param(_coerce(raw[name], hints[name], name), help))
        return cls

    return apply


def load_config(cls: type, path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Any:
    """Build a validated config dataclass from defaults, a YAML file and ``key=value`` overrides.

    Later sources win: class defaults < YAML file < overrides. Every key is checked against the
    dataclass fields (nested dataclasses use ``key.sub``) before any work starts.

    Args:
        cls: The config dataclass.
        path: Optional YAML file with a mapping at the top level.
        overrides: ``"key=value"`` strings; values are parsed as YAML (``3``, ``0.1``, ``true``,
            ``[3, 5]``, ``name``).

    Both are read as a person reads them rather than by YAML 1.1's rules: ``010`` is 10,
    ``1:30`` and ``yes`` are strings (so an error for a number or bool field), and a key given
    twice in one mapping is an error; ``!!python`` tags are refused.

    Returns:
        An instance of ``cls``.

    Raises:
        ValueError: unknown key (with a did-you-mean suggestion), bad value, malformed override,
            invalid YAML (one line naming the file and the position).
        TypeError: a value of the wrong type; the message names the key.
        FileNotFoundError: ``path`` does not exist.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class C:
        ...     steps: int = 10
        ...     lr: float = 0.1
        >>> load_config(C, overrides=["lr=1e-3"])
        C(steps=10, lr=0.001)
    """
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(f"cls must be a dataclass type, got {cls!r}")
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a list of 'key=value' strings, got {overrides!r}")
    raw = read_config_file(path) if path is not None else {}
    for text in overrides:
        key_path, value = parse_override(text)
        _set_path(raw, key_path, value)
    return _build(cls, raw)


def config_to_dict(cfg: Any) -> dict:
    """A config dataclass as plain nested dicts/lists (YAML- and ``weights_only``-safe).

    Args:
        cfg: A config dataclass instance.

    Returns:
        A dict of builtin types.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class C:
        ...     ks: tuple = (3, 5)
        >>> config_to_dict(C())
        {'ks': [3, 5]}
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"cfg must be a dataclass instance, got {cfg!r}")

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def config_help(cls: type, prefix: str = "") -> list[str]:
    """One line per config field: ``name (type, default ...): help``; nested fields dotted."""
    lines = []
    hints = typing.get_type_hints(cls)
    defaults = (
        cls()
        if all(
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            for f in dataclasses.fields(cls)
        )
        else None
    )
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name, Any)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            lines.extend(config_help(tp, prefix + f.name + "."))
            continue
        default = getattr(defaults, f.name) if defaults is not None else "required"
        if isinstance(default, tuple):
            default = list(default)
        text = f"  {prefix}{f.name} ({_type_name(tp)}, default {default!r})"
        if f.metadata.get("help"):
            text += f": {f.metadata['help']}"
        lines.append(text)
    return lines
