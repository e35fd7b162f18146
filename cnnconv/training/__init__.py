"""Experiment machinery: typed configs, run folders, atomic checkpoints, exact resume, DDP.

An experiment is a config dataclass plus a function ``run_fn(cfg, run)``; :func:`experiment_main`
gives it a command line, a run folder and a :class:`Run` context. ``Run.fit`` drives a training
loop with progress, CSV/TensorBoard logging and checkpoints, and resumes it bit-for-bit.

How an experiment uses it (the whole of a small ``experiments/my_exp.py``)::

    from dataclasses import dataclass
    import torch
    from cnnconv.training import Run, experiment_main, param

    @dataclass
    class MyConfig:
        seed: int = param(0, "random seed")
        steps: int = param(200, "optimizer steps")
        lr: float = param(1e-2, "Adam learning rate")
        batch_size: int = param(16, "global batch size (split across DDP ranks)")
        checkpoint_every: int = param(50, "steps between checkpoints (0: only at the end)")

    def run_fn(cfg: MyConfig, run: Run) -> dict:
        model = run.wrap(torch.nn.Conv2d(1, 1, 3, padding=1))   # .to(device) + DDP if launched so
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

        def step_fn(step: int) -> dict:
            g = run.step_generator(step)                 # batch derived from (seed, step)
            x = torch.randn(cfg.batch_size, 1, 32, 32, generator=g).to(run.device)
            x = run.shard(x)                             # this rank's slice of the global batch
            loss = (model(x) - x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": run.mean_across_ranks(loss)}

        result = run.fit(model, opt, step_fn, steps=cfg.steps, tag="main",
                         checkpoint_every=cfg.checkpoint_every)
        history = run.read_metrics(tag="main")           # {"loss": (steps, values)}
        if run.is_main:
            (run.dir / "report.md").write_text(f"final loss {history['loss'][1][-1]:.3g}")
        return {"seconds": result.seconds}

    if __name__ == "__main__":
        experiment_main("my_exp", MyConfig, run_fn)

Then ``python -m experiments.my_exp --config configs/my_exp.yaml --set lr=0.001 --set steps=50``
writes ``runs/my_exp/<timestamp>/`` with ``config.yaml``, ``metrics.csv``,
``checkpoints/main.pt`` and whatever the experiment adds; ``--resume runs/my_exp/<timestamp>``
continues a killed run so that its final weights equal those of an uninterrupted run;
``torchrun --nproc_per_node=2 -m experiments.my_exp`` trains with DDP (gloo on CPU, NCCL on GPU).

Rules for exact resume: derive every batch from ``run.step_generator(step)`` (or keep any other
generator in ``fit(..., generators=...)``), keep all training state in the model, optimizer and
scheduler, and log through ``step_fn``/``eval_fn`` return values (``metrics.csv`` is cut back to
the checkpoint on resume, so curves read with :meth:`Run.read_metrics` have no duplicates).

Only torch, numpy and the standard library are imported at module level; PyYAML, tqdm and
TensorBoard are imported when needed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import difflib
import errno
import functools
import hashlib
import io
import math
import os
import random
import re
import shutil
import sys
import time
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from cnnconv._utils.io import atomic_write, remove_stale_temporaries

__all__ = [
    "param",
    "MAX_SEED",
    "MAX_BATCH_SIZE",
    "check_range",
    "check_names",
    "load_config",
    "yaml_defaults",
    "config_to_dict",
    "config_help",
    "parse_override",
    "select_device",
    "DistInfo",
    "setup_distributed",
    "cleanup_distributed",
    "shard_batch",
    "unwrap_model",
    "capture_rng_state",
    "restore_rng_state",
    "step_generator",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "atomic_write_text",
    "RunFolderInUse",
    "RunLock",
    "claim_run_dir",
    "make_run_dir",
    "MetricsLogger",
    "read_metrics",
    "progress",
    "ProgressMeter",
    "FitResult",
    "Run",
    "run_record",
    "experiment_main",
]

_EXTRA_HINT = "pip install 'cnnconv[experiments]'"


# --------------------------------------------------------------------------------------------
# Typed configs
# --------------------------------------------------------------------------------------------


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
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default),
                                 metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


MAX_SEED = 2**32 - 1
"""Largest accepted seed (numpy's seeding range)."""

MAX_BATCH_SIZE = 2**16
"""Largest accepted batch size: anything above is a typo, not a batch."""


def check_range(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                strict: bool = False) -> None:
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
    bounds = " and ".join(b for b in (
        None if low is None else f"{'>' if strict else '>='} {low:g}",
        None if high is None else f"<= {high:g}") if b)
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value)
          and (low is None or (value > low if strict else value >= low))
          and (high is None or value <= high))
    if not ok:
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")


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
            raise ValueError(f"{name} must be among {list(allowed)}, got {v!r}"
                             f"{_did_you_mean(str(v), [str(a) for a in allowed])}")


def _require_yaml():
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"reading and writing configs needs PyYAML: {_EXTRA_HINT}") from exc
    return yaml


@functools.lru_cache(maxsize=None)
def _yaml_dialect() -> tuple[type, type]:
    """A YAML loader and dumper that read scalars as a person does.

    PyYAML follows YAML 1.1, where ``010`` is 8, ``1:30`` is 90 and ``no`` is false. Here
    integers are decimal (``010`` is 10), floats need a dot or an exponent, booleans are
    ``true``/``false``, anything else (``1:30``, ``yes``) stays a string, and a key given twice
    in one mapping is an error. The dumper quotes whatever the loader would not read back as it
    was written.
    """
    yaml = _require_yaml()
    resolvers = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("tag:yaml.org,2002:int", r"^[-+]?[0-9][0-9_]*$", "-+0123456789"),
        ("tag:yaml.org,2002:float",
         r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*|[0-9][0-9_]*(?=[eE]))"
         r"(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ]
    replaced = {tag for tag, _, _ in resolvers}
    table = {first: [r for r in rs if r[0] not in replaced]
             for first, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    class Loader(yaml.SafeLoader):
        yaml_implicit_resolvers = table

        def construct_mapping(self, node, deep=False):
            self.flatten_mapping(node)
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, typing.Hashable):
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while reading a mapping", node.start_mark,
                            f"found key {key!r} twice", key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    class Dumper(yaml.SafeDumper):
        yaml_implicit_resolvers = {k: list(v) for k, v in table.items()}

    for tag, regexp, first in resolvers:
        for cls in (Loader, Dumper):
            cls.add_implicit_resolver(tag, re.compile(regexp), list(first))
    Loader.add_constructor("tag:yaml.org,2002:int",
                           lambda loader, node: int(loader.construct_scalar(node).replace("_", "")))
    return Loader, Dumper


def _yaml_load(text: str, where: str) -> Any:
    yaml = _require_yaml()
    try:
        return yaml.load(text, Loader=_yaml_dialect()[0])
    except (yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"{where} is not valid YAML: {' '.join(str(exc).split())}") from None


def _yaml_dump(data: Any) -> str:
    return _require_yaml().dump(data, Dumper=_yaml_dialect()[1], sort_keys=False)


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
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"config key '{key}' must be a mapping of {tp.__name__} fields, "
                            f"got {value!r}")
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
            raise TypeError(f"config key '{key}' must be a list ({_type_name(tp)}), got {value!r}"
                            f" (write lists as [a, b])")
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
            raise ValueError(f"unknown config key '{prefix}{key}'"
                             f"{_did_you_mean(str(key), fields, prefix)}"
                             f" (known keys: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = _coerce(raw[name], hints.get(name, Any), prefix + name)
        elif dataclasses.is_dataclass(hints.get(name)) and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
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
    parsed = _yaml_load(value, f"override {text!r}: the value") if value.strip() else ""
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


def _read_config_file(path: str | os.PathLike) -> dict:
    """The top-level mapping of a YAML config file (``{}`` for an empty file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path} cannot be read: {exc}") from None
    loaded = _yaml_load(text, f"config file {path}")
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise TypeError(f"config file {path} must hold a mapping at the top level, "
                        f"got {type(loaded).__name__}")
    return loaded


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
        raw = _read_config_file(path)
        names = [n for n in cls.__dict__.get("__annotations__", {})]
        unknown = [k for k in raw if k not in names]
        missing = [n for n in names if n not in raw]
        if unknown or missing:
            raise ValueError(f"config file {path} must give exactly the fields of "
                             f"{cls.__name__}: unknown {unknown}, missing {missing}")
        hints = typing.get_type_hints(cls)
        for name in names:
            f = cls.__dict__.get(name)
            help = f.metadata.get("help", "") if isinstance(f, dataclasses.Field) else ""
            setattr(cls, name, param(_coerce(raw[name], hints[name], name), help))
        return cls

    return apply


def load_config(cls: type, path: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> Any:
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
    raw = _read_config_file(path) if path is not None else {}
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
    defaults = cls() if all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)) else None
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name, Any)
        if dataclasses.is_dataclass(tp):
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


# --------------------------------------------------------------------------------------------
# Devices and distributed training
# --------------------------------------------------------------------------------------------


def select_device(spec: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """Resolve ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Args:
        spec: Device request.
        local_rank: CUDA device index used for ``"auto"``/``"cuda"`` (one GPU per DDP rank).

    Returns:
        A ``torch.device``.

    Example:
        >>> select_device("cpu")
        device(type='cpu')
    """
    if isinstance(spec, torch.device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"device must be 'auto', 'cpu' or 'cuda', got {spec!r}")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but CUDA is not available")
        return torch.device(spec if ":" in spec else f"cuda:{local_rank}")
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {spec!r}")


@dataclasses.dataclass
class DistInfo:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | torch.device = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group set up by ``torchrun`` (if any) and pick this rank's device.

    Uses NCCL when the device is CUDA and gloo on CPU. Without ``WORLD_SIZE > 1`` in the
    environment this is a no-op returning rank 0 of 1.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        ``(DistInfo, device)``.

    Example:
        >>> info, dev = setup_distributed("cpu")  # not launched by torchrun
        >>> info.world_size, dev
        (1, device(type='cpu'))
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), select_device(device)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = select_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank, backend), dev


def cleanup_distributed() -> None:
    """Leave the process group, if one was joined."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_batch(batch: Any, info: DistInfo) -> Any:
    """This rank's contiguous slice of a global batch (tensors, or tuples/lists/dicts of them).

    Every rank builds the same global batch (e.g. from :func:`step_generator`) and keeps its
    slice, so ``world_size`` ranks on equal slices average to the gradient of the global batch.

    Args:
        batch: Tensor whose first dimension is the global batch, or a container of them.
        info: From :func:`setup_distributed`.

    Returns:
        The same structure, sliced along dim 0.

    Example:
        >>> shard_batch(torch.arange(4), DistInfo(rank=1, world_size=2)).tolist()
        [2, 3]
    """
    if isinstance(batch, torch.Tensor):
        n = batch.shape[0]
        if n % info.world_size:
            raise ValueError(f"global batch size {n} is not divisible by world size "
                             f"{info.world_size}")
        per = n // info.world_size
        return batch[info.rank * per:(info.rank + 1) * per]
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard_batch(b, info) for b in batch)
    if isinstance(batch, Mapping):
        return {k: shard_batch(v, info) for k, v in batch.items()}
    raise TypeError(f"batch must be a tensor or a list/tuple/dict of tensors, got "
                    f"{type(batch).__name__}")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip ``DistributedDataParallel``/``DataParallel`` and ``torch.compile`` wrappers.

    Example:
        >>> m = nn.Linear(2, 2)
        >>> unwrap_model(m) is m
        True
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


# --------------------------------------------------------------------------------------------
# RNG state and checkpoints
# --------------------------------------------------------------------------------------------


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` determined by ``(seed, step, rank)`` alone.

    Drawing each step's batch from it makes data iteration resumable without saving any state.

    Example:
        >>> a = torch.rand(3, generator=step_generator(0, 5))
        >>> torch.equal(a, torch.rand(3, generator=step_generator(0, 5)))
        True
    """
    mixed = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(step), int(rank)])
    g = torch.Generator()
    g.manual_seed(int(mixed.generate_state(1, dtype=np.uint64)[0] & 0x7FFFFFFFFFFFFFFF))
    return g


def capture_rng_state(generators: Mapping[str, Any] | None = None) -> dict:
    """All random states: torch CPU, CUDA (every device), numpy, python ``random`` and extras.

    Args:
        generators: Named ``torch.Generator`` or ``numpy.random.Generator`` objects (for example
            a DataLoader's generator) whose state is saved too.

    Returns:
        A dict of tensors and builtin types (loadable with ``torch.load(weights_only=True)``).
    """
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
        "generators": {},
    }
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            state["generators"][name] = gen.get_state()
        elif isinstance(gen, np.random.Generator):
            state["generators"][name] = gen.bit_generator.state
        else:
            raise TypeError(f"generators[{name!r}] must be a torch.Generator or "
                            f"numpy.random.Generator, got {type(gen).__name__}")
    return state


def restore_rng_state(state: Mapping, generators: Mapping[str, Any] | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    saved = state.get("generators", {})
    for name, gen in (generators or {}).items():
        if name not in saved:
            raise ValueError(f"checkpoint has no state for generator {name!r} "
                             f"(saved: {sorted(saved)})")
        if isinstance(gen, torch.Generator):
            gen.set_state(saved[name])
        else:
            gen.bit_generator.state = saved[name]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, fsync it and rename it into place.

    See :func:`cnnconv._utils.io.atomic_write` (permissions follow the umask; a failure such as a full
    disk raises an ``OSError`` naming ``path`` and leaves the old file).

    Example:
        >>> import tempfile, pathlib
        >>> p = atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hi")
        >>> p.read_text()
        'hi'
    """
    return atomic_write(path, text)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, corrupted, foreign or not fitting the run."""


_CHECKPOINT_FORMAT = "cnnconv-checkpoint-1"


def _digest(obj: Any) -> str:
    """sha256 of a checkpoint's content: tensors by dtype, shape and bytes, the rest by repr.

    It depends on the values only (not on the serialization or the device), so it is computed
    alike before saving and after loading; lists and tuples count as the same.
    """
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"tensor {t.dtype} {tuple(x.shape)}:".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            h.update(b"{")
            for k, v in x.items():
                feed(k)
                feed(v)
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                feed(v)
            h.update(b"]")
        else:
            h.update(f"{type(x).__name__} {x!r};".encode())

    feed(obj)
    return h.hexdigest()


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def save_checkpoint(path: str | os.PathLike, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None, *,
                    step: int = 0, config: Any = None, generators: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write a self-describing checkpoint atomically (temporary file, fsync, ``os.replace``).

    Holds the weights of the unwrapped model (no DDP / ``torch.compile`` prefixes), the optimizer
    and scheduler state, the step, every RNG state and the config, all loadable with
    ``torch.load(weights_only=True)``, and a ``sha256`` of all of that content that
    :func:`load_checkpoint` verifies. The payload is serialized in memory first, so a write
    failure (e.g. a full disk) is an ``OSError`` naming the file and the old checkpoint stays.

    Args:
        path: Destination ``.pt`` file.
        model: The (possibly wrapped) model.
        optimizer: Optional optimizer.
        scheduler: Optional LR scheduler (anything with ``state_dict``).
        step: Number of completed steps.
        config: Config dataclass or dict.
        generators: Extra generators whose state to keep (see :func:`capture_rng_state`).
        extra: Additional builtin-typed entries (e.g. elapsed training time).

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
        >>> _ = save_checkpoint(p, nn.Linear(2, 1), step=3)
        >>> load_checkpoint(p, nn.Linear(2, 1))["step"]
        3
    """
    path = Path(path)
    inner = unwrap_model(model)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = config_to_dict(config)
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "model": inner.state_dict(),
        "model_class": f"{type(inner).__module__}.{type(inner).__qualname__}",
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "rng": capture_rng_state(generators),
        "config": config,
        "extra": dict(extra or {}),
    }
    payload["sha256"] = _digest(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write(path, buf.getbuffer())


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None, *,
                    generators: Mapping[str, Any] | None = None, restore_rng: bool = False,
                    map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (with ``weights_only=True``).

    The content is checked against the ``sha256`` stored in it. Checkpoints written before
    checksums were stored (no ``sha256`` entry) are accepted with a warning.

    Args:
        path: The ``.pt`` file.
        model: If given, its (unwrapped) weights are loaded strictly.
        optimizer: If given, its state is loaded.
        scheduler: If given, its state is loaded.
        generators: Generators to restore (requires ``restore_rng``).
        restore_rng: Also restore the global RNG states (needed for an exact resume).
        map_location: Passed to ``torch.load``.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is empty, truncated, corrupted (checksum mismatch), not a
            cnnconv checkpoint, or does not fit ``model``/``optimizer``/``scheduler``; the
            message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zero bytes, truncated, text, bit flips in the zip structure
        raise CheckpointError(f"checkpoint {path} cannot be read (empty, truncated or not a "
                              f"checkpoint): {_one_line(exc)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a cnnconv checkpoint")
    stored = ckpt.pop("sha256", None)
    if stored is None:
        warnings.warn(f"checkpoint {path} has no checksum (written by an older cnnconv); "
                      f"loading it unchecked", stacklevel=2)
    elif stored != _digest(ckpt):
        raise CheckpointError(f"checkpoint {path} is corrupted: its content does not match its "
                              f"sha256 checksum")
    try:
        if model is not None:
            unwrap_model(model).load_state_dict(ckpt["model"])
        if optimizer is not None:
            if ckpt["optimizer"] is None:
                raise ValueError("it holds no optimizer state")
            optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            if ckpt["scheduler"] is None:
                raise ValueError("it holds no scheduler state")
            scheduler.load_state_dict(ckpt["scheduler"])
        if restore_rng:
            restore_rng_state(ckpt["rng"], generators)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this run: {_one_line(exc)}"
                              ) from None
    return ckpt


# --------------------------------------------------------------------------------------------
# Run folders, metrics, progress
# --------------------------------------------------------------------------------------------


class RunFolderInUse(RuntimeError):
    """Another process holds the run folder's lock."""


class RunLock:
    """An exclusive, non-blocking ``fcntl.flock`` on ``<run folder>/.lock``, held while a run runs.

    The lock file holds the owner's process id, named in the error a second process gets. The
    operating system drops the lock when its process dies (even by SIGKILL), so a killed run
    never leaves its folder locked. :meth:`release` deletes the lock file; a process that
    locked a file just deleted notices (the path no longer names its file) and tries again.

    Args:
        folder: The run folder (must exist).

    Raises:
        RunFolderInUse: another process holds the lock.

    Example:
        >>> import tempfile
        >>> lock = RunLock(tempfile.mkdtemp())
        >>> lock.release()
    """

    NAME = ".lock"

    def __init__(self, folder: str | os.PathLike):
        import fcntl

        self.path = Path(folder) / self.NAME
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderInUse(f"run folder {self.path.parent} is in use by process "
                                     f"{owner}") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # released and deleted by its owner meanwhile: lock the new file
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd: int | None = fd

    def release(self) -> None:
        """Delete the lock file and unlock (idempotent)."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _clear_run_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.name == RunLock.NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def claim_run_dir(root: str | os.PathLike, experiment: str, run_name: str | None = None, *,
                  overwrite: bool = False) -> tuple[Path, RunLock]:
    """Like :func:`make_run_dir`, but return the folder locked (see :class:`RunLock`).

    With ``overwrite``, an existing folder is emptied only once its lock is held, so a running
    run (or a second ``--overwrite`` of the same name) is never deleted under it.

    Returns:
        ``(folder, lock)``; call ``lock.release()`` when the run ends.

    Raises:
        FileExistsError: ``run_name`` exists and ``overwrite`` is false, or it is not a run folder.
        RunFolderInUse: the folder to overwrite is in use.
        ValueError: ``run_name`` is not a plain folder name.
    """
    base = Path(root) / experiment
    base.mkdir(parents=True, exist_ok=True)
    if run_name is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for i in range(1000):
            path = base / (stamp if i == 0 else f"{stamp}-{i}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path, RunLock(path)
        raise FileExistsError(f"could not find a free run folder name under {base}")
    if not run_name or "/" in run_name or run_name in (".", ".."):
        raise ValueError(f"run name must be a plain folder name, got {run_name!r}")
    path = base / run_name
    try:
        path.mkdir()
        return path, RunLock(path)
    except FileExistsError:
        if not overwrite:
            raise FileExistsError(f"run folder {path} exists; pick another --name, or pass "
                                  f"--overwrite to replace it") from None
    if any(p.name != RunLock.NAME for p in path.iterdir()) \
            and not (path / "config.yaml").is_file():
        raise FileExistsError(f"refusing to overwrite {path}: it is not a cnnconv run folder")
    lock = RunLock(path)
    try:
        _clear_run_dir(path)
    except BaseException:
        lock.release()
        raise
    return path, lock


def make_run_dir(root: str | os.PathLike, experiment: str, run_name: str | None = None, *,
                 overwrite: bool = False) -> Path:
    """Create ``root/experiment/run_name`` (default: a timestamp), never reusing a folder.

    Args:
        root: Runs root, e.g. ``runs``.
        experiment: Experiment name.
        run_name: Folder name; a timestamp ``YYYYmmdd-HHMMSS`` (with ``-1``, ``-2`` ... suffixes
            on collision) when ``None``.
        overwrite: Replace an existing ``run_name`` folder (only a cnnconv run folder, i.e. one
            holding ``config.yaml``, or an empty one).

    Returns:
        The new, empty folder.

    Raises:
        FileExistsError: ``run_name`` exists and ``overwrite`` is false.
        RunFolderInUse: the folder to overwrite is in use by a running run.
    """
    path, lock = claim_run_dir(root, experiment, run_name, overwrite=overwrite)
    lock.release()
    return path


class MetricsLogger:
    """Append-only long-format CSV (``tag,step,metric,value``), flushed after every row.

    Example:
        >>> import tempfile, pathlib
        >>> log = MetricsLogger(pathlib.Path(tempfile.mkdtemp()) / "metrics.csv")
        >>> log.log("train", 1, loss=0.5)
        >>> read_metrics(log.path)["train"]["loss"]
        ([1], [0.5])
    """

    FIELDS = ("tag", "step", "metric", "value")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        cut = False  # a last line cut short by a crash: start a fresh line after it
        if not new:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                cut = fh.read(1) != b"\n"
        self._fh = open(self.path, "a", newline="")
        self._writer = csv.writer(self._fh)
        if cut:
            self._fh.write("\n")
        if new:
            self._writer.writerow(self.FIELDS)
        self._fh.flush()

    def log(self, tag: str, step: int, **metrics: float) -> None:
        for name, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.item()
            self._writer.writerow((tag, int(step), name, repr(float(value))))
        self._fh.flush()

    def truncate(self, tag: str, after_step: int) -> None:
        """Drop rows of ``tag`` with a step beyond ``after_step``, and unreadable rows (a line
        cut short by a crash), rewriting the file atomically."""
        self._fh.close()
        with open(self.path, newline="", errors="replace") as fh:
            rows = [_metric_row(r) for r in csv.reader(fh)][1:]
        keep = [r for r in rows if r is not None and not (r[0] == tag and r[1] > after_step)]
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(self.FIELDS)
        writer.writerows((t, s, m, repr(v)) for t, s, m, v in keep)
        atomic_write(self.path, buf.getvalue())
        self._fh = open(self.path, "a", newline="")
        self._writer = csv.writer(self._fh)

    def sync(self) -> None:
        """Flush the rows written so far to disk (``fsync``)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _metric_row(row: list[str]) -> tuple[str, int, str, float] | None:
    """``(tag, step, metric, value)`` from a CSV row, or ``None`` if it is not one."""
    if len(row) != 4:
        return None
    try:
        return row[0], int(row[1]), row[2], float(row[3])
    except ValueError:
        return None


def read_metrics(path: str | os.PathLike) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """Read a ``metrics.csv`` into ``{tag: {metric: (steps, values)}}``, sorted by step.

    Unreadable rows (e.g. a line cut short by a crash) are skipped.
    """
    out: dict[str, dict[str, list]] = {}
    with open(path, newline="", errors="replace") as fh:
        for row in list(csv.reader(fh))[1:]:
            parsed = _metric_row(row)
            if parsed is not None:
                tag, step, metric, value = parsed
                out.setdefault(tag, {}).setdefault(metric, []).append((step, value))
    return {tag: {m: ([s for s, _ in sorted(v)], [x for _, x in sorted(v)])
                  for m, v in metrics.items()} for tag, metrics in out.items()}


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
             disable: bool | None = None, initial: int = 0):
    """A tqdm progress bar, shown only on an interactive terminal (stderr is a TTY).

    Falls back to the bare iterable when tqdm is missing or the bar is disabled.
    """
    if disable is None:
        disable = not sys.stderr.isatty()
    if iterable is None:
        iterable = range(initial, total or 0)
    if disable:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, initial=initial, dynamic_ncols=True,
                leave=False)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressMeter:
    """Progress of a whole run: one bar on a terminal, else a plain line at a steady rate.

    Without a terminal (``nohup``, CI, ``| tee``) a line ``desc: done/total (pct), elapsed
    H:MM:SS, ETA H:MM:SS`` goes to ``stream`` every ``every`` seconds and when it closes. The
    ETA comes from the rate of the work done in this process (work skipped on a resume does not
    count).

    Args:
        total: Units of work in the run.
        desc: Label.
        every: Seconds between lines without a terminal.
        disable: Show nothing.
        stream: Where to write (default ``sys.stderr``).

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> meter = ProgressMeter(4, "demo", every=0.0, stream=out)
        >>> meter.update(2)
        >>> out.getvalue().split(",")[0]
        'demo: 2/4 steps (50%)'
    """

    def __init__(self, total: int, desc: str, *, every: float = 20.0, disable: bool = False,
                 stream=None):
        if not every >= 0:
            raise ValueError(f"every must be a non-negative number of seconds, got {every!r}")
        self.total, self.desc, self.every, self.disable = int(total), desc, float(every), disable
        self.stream = stream if stream is not None else sys.stderr
        self.done = self._skipped = 0
        self._printed = -1  # the count of the last line printed
        self._t0 = self._last = time.monotonic()
        self._bar = None
        if not disable and self.stream.isatty():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=self.total, desc=desc, file=self.stream, dynamic_ncols=True)

    def skip(self, n: int) -> None:
        """Count ``n`` units done earlier (a resumed run's finished work)."""
        self.done += n
        self._skipped += n
        if self._bar is not None:
            self._bar.update(n)

    def update(self, n: int = 1) -> None:
        """Count ``n`` units done now."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.disable and time.monotonic() - self._last >= self.every:
            self._print()

    def line(self) -> str:
        """The progress line."""
        elapsed = time.monotonic() - self._t0
        fresh = self.done - self._skipped
        eta = (_clock(elapsed / fresh * max(self.total - self.done, 0)) if fresh > 0
               else "unknown")
        share = f"{self.done / self.total:.0%}" if self.total else "-"
        return (f"{self.desc}: {self.done}/{self.total} steps ({share}), "
                f"elapsed {_clock(elapsed)}, ETA {eta}")

    def _print(self) -> None:
        self._last, self._printed = time.monotonic(), self.done
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif not self.disable and self._printed != self.done:
            self._print()


def _summary_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError("--tensorboard needs the tensorboard package: pip install tensorboard"
                          ) from exc
    return SummaryWriter(log_dir=str(log_dir))


# --------------------------------------------------------------------------------------------
# The run context and the training loop
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FitResult:
    """What :meth:`Run.fit` did."""

    start_step: int
    steps: int
    seconds: float
    """Training time (inside ``step_fn``) summed over the original run and any resumes."""
    resumed: bool


class Run:
    """Everything an experiment needs while it runs: config, folder, device, ranks, logging.

    Created by :func:`experiment_main` (or directly, for tests and notebooks).

    Args:
        cfg: Config dataclass instance.
        dir: The run folder (created by :func:`make_run_dir`, or an existing one to resume).
        device: Device to train on.
        dist: Rank information (defaults to a single process).
        resume: Continue from checkpoints found in ``dir/checkpoints``.
        quiet: No progress bars.
        tensorboard: Also log scalars to ``dir/tensorboard``.
        progress_every: Seconds between progress lines when stderr is not a terminal.
    """

    def __init__(self, cfg: Any, dir: str | os.PathLike, device: torch.device | str = "cpu", *,
                 dist: DistInfo | None = None, resume: bool = False, quiet: bool = False,
                 tensorboard: bool = False, progress_every: float = 20.0):
        self.cfg = cfg
        self.dir = Path(dir)
        self.device = torch.device(device)
        self.dist = dist or DistInfo()
        self.resume = resume
        self.quiet = quiet
        self.checkpoint_dir = self.dir / "checkpoints"
        self.seed = int(getattr(cfg, "seed", 0))
        self.progress_every = progress_every
        self._metrics = None
        self._tb = None
        self._plan: ProgressMeter | None = None  # counts the steps of every fit
        self._outer = False  # a progress() loop is the run's progress
        if self.is_main:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            self._metrics = MetricsLogger(self.dir / "metrics.csv")
            if tensorboard:
                self._tb = _summary_writer(self.dir / "tensorboard")

    # -- ranks ---------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """True on the rank that writes files (rank 0)."""
        return self.dist.is_main

    def barrier(self) -> None:
        if self.dist.distributed:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the run's device and wrap it in DDP when launched on several ranks."""
        model = model.to(self.device)
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    def shard(self, batch: Any) -> Any:
        """This rank's slice of a global batch (identity on one process)."""
        return shard_batch(batch, self.dist) if self.dist.distributed else batch

    def mean_across_ranks(self, value: torch.Tensor | float) -> float:
        """Average a scalar over ranks (for logging); returns a Python float."""
        t = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(value)
        if self.dist.distributed:
            import torch.distributed as dist

            t = t.to(self.device if self.dist.backend == "nccl" else "cpu", torch.float64)
            dist.all_reduce(t)
            t = t / self.dist.world_size
        return float(t)

    def step_generator(self, step: int, stream: int = 0) -> torch.Generator:
        """CPU generator from ``(cfg.seed, step, stream)``: the same on every rank and resume."""
        return step_generator(self.seed, step, stream)

    # -- files ---------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """A path inside the run folder."""
        return self.dir / name

    def log(self, tag: str, step: int, **metrics: float) -> None:
        """Append metrics to ``metrics.csv`` (and TensorBoard); no-op off rank 0."""
        if not self.is_main:
            return
        self._metrics.log(tag, step, **metrics)
        if self._tb is not None:
            for name, value in metrics.items():
                self._tb.add_scalar(f"{tag}/{name}", float(value), step)

    def read_metrics(self, tag: str | None = None) -> dict:
        """``{tag: {metric: (steps, values)}}`` from ``metrics.csv`` (one tag's dict if given)."""
        path = self.dir / "metrics.csv"
        data = read_metrics(path) if path.exists() else {}
        return data.get(tag, {}) if tag is not None else data

    def checkpoint_path(self, tag: str) -> Path:
        return self.checkpoint_dir / f"{tag}.pt"

    def meter(self, total: int, desc: str) -> ProgressMeter:
        """A :class:`ProgressMeter`, silent off rank 0 and with ``--quiet``."""
        return ProgressMeter(total, desc, every=self.progress_every,
                             disable=self.quiet or not self.is_main)

    def plan(self, total_steps: int, desc: str | None = None) -> None:
        """Announce the steps of all the run's :meth:`fit` phases: one progress with an ETA for
        the whole run instead of one per phase."""
        self._plan = self.meter(total_steps, desc or self.dir.parent.name)

    def progress(self, iterable: Iterable, *, total: int | None = None, desc: str = ""):
        """Iterate ``iterable`` showing it as the run's progress (the phases inside stay
        silent)."""
        meter = self.meter(len(iterable) if total is None else total, desc)
        self._outer = True
        try:
            for item in iterable:
                yield item
                meter.update(1)
        finally:
            self._outer = False
            meter.close()

    # -- training --------------------------------------------------------------------------------
    def fit(self, model: nn.Module, optimizer: torch.optim.Optimizer | None,
            step_fn: Callable[[int], Mapping[str, float] | None], *, steps: int,
            tag: str = "train", scheduler: Any = None, checkpoint_every: int = 0,
            eval_fn: Callable[[int], Mapping[str, float] | None] | None = None,
            eval_every: int = 0, generators: Mapping[str, Any] | None = None,
            desc: str | None = None) -> FitResult:
        """Run ``step_fn(i)`` for ``i in range(start, steps)`` with logging and checkpoints.

        ``step_fn`` does one whole optimisation step (forward, backward, ``optimizer.step``) and
        returns metrics to log at the completed-step count ``i + 1``. ``eval_fn(s)`` is called at
        ``s = 0`` and every ``eval_every`` completed steps and at the end. A checkpoint
        ``checkpoints/<tag>.pt`` is written every ``checkpoint_every`` steps and at the end. When
        the run is resumed, ``fit`` loads that checkpoint (model, optimizer, scheduler, RNG) and
        continues from its step, or returns at once if that phase had finished, so experiments
        with several phases resume phase by phase.

        Args:
            model: Model being trained (possibly DDP-wrapped).
            optimizer: Its optimizer (or ``None`` for optimizer-free loops).
            step_fn: One training step; returns ``{"loss": ...}``-style metrics or ``None``.
            steps: Total number of steps of this phase.
            tag: Phase name; names the checkpoint and the metrics rows.
            scheduler: Optional LR scheduler stepped by ``step_fn`` and checkpointed here.
            checkpoint_every: Steps between checkpoints (0: only at the end).
            eval_fn: Optional evaluation returning metrics.
            eval_every: Steps between evaluations (0: only at start and end).
            generators: Extra generators saved with the checkpoint.
            desc: Progress-bar label (defaults to ``tag``).

        Returns:
            A :class:`FitResult`.
        """
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        if not isinstance(tag, str) or not tag or "/" in tag:
            raise ValueError(f"tag must be a plain non-empty name, got {tag!r}")
        ckpt_path = self.checkpoint_path(tag)
        start, elapsed, resumed = 0, 0.0, False
        if self.resume and ckpt_path.is_file():
            ckpt = load_checkpoint(ckpt_path, model, optimizer, scheduler, generators=generators,
                                   restore_rng=True, map_location=self.device)
            start, elapsed, resumed = ckpt["step"], float(ckpt["extra"].get("seconds", 0.0)), True
            if not isinstance(start, int) or not 0 <= start <= steps:
                raise CheckpointError(f"checkpoint {ckpt_path} is at step {start!r}, outside the "
                                      f"{steps} steps of phase '{tag}' in this run's config")
        if self.resume and self.is_main:
            # Rows logged after the checkpoint (or all rows, if none was written) are redone.
            self._metrics.truncate(tag, start if resumed else -1)

        def save(step: int) -> None:
            if self.is_main:
                self._metrics.sync()  # the rows up to the checkpoint survive a power cut too
                save_checkpoint(ckpt_path, model, optimizer, scheduler, step=step,
                                config=self.cfg, generators=generators,
                                extra={"seconds": elapsed, "tag": tag})
            self.barrier()

        def evaluate(step: int) -> None:
            if eval_fn is not None:
                out = eval_fn(step)
                if out:
                    self.log(tag, step, **out)

        if start == 0:
            evaluate(0)
        meter = self._plan
        if meter is None:
            meter = self.meter(steps, desc or tag)
            meter.disable |= self._outer
        meter.skip(start)
        for i in range(start, steps):
            t0 = time.perf_counter()
            out = step_fn(i)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            elapsed += time.perf_counter() - t0
            done = i + 1
            if out:
                self.log(tag, done, **out)
            meter.update(1)
            if eval_every and done % eval_every == 0 and done != steps:
                evaluate(done)
            if done == steps:
                evaluate(done)
            if done == steps or (checkpoint_every and done % checkpoint_every == 0):
                save(done)
        if meter is not self._plan:
            meter.close()
        if start == steps and not ckpt_path.is_file():
            save(steps)  # zero-step phase: still leave a checkpoint
        return FitResult(start_step=start, steps=steps, seconds=elapsed, resumed=resumed)

    def close(self) -> None:
        if self._plan is not None:
            self._plan.close()
            self._plan = None
        if self._metrics is not None:
            self._metrics.close()
        if self._tb is not None:
            self._tb.close()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _resume_dir(path: str) -> Path:
    p = Path(path)
    if p.is_file() and p.suffix == ".pt":
        p = p.parent.parent
    if not (p / "config.yaml").is_file():
        raise FileNotFoundError(f"--resume {path}: not a run folder (no config.yaml in {p})")
    return p


def _git_commit(folder: Path) -> str | None:
    """The commit checked out in the clone holding ``folder`` (``+dirty`` when edited), or None."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def run_record(argv: Sequence[str], device: torch.device, source: str | os.PathLike) -> dict:
    """What a run folder records about how it was made (written to ``run_info.yaml``).

    Args:
        argv: The command line arguments.
        device: The training device.
        source: A file of the experiment; its clone's git commit is recorded (None when
            installed).

    Returns:
        ``command`` (this process's), ``arguments`` (the experiment's), ``versions`` (python, torch, numpy, cnnconv), ``git_commit``, ``device``,
        ``threads``, ``started`` (UTC).
    """
    import platform

    import cnnconv

    return {
        "command": [sys.executable, *sys.argv],
        "arguments": list(argv),
        "versions": {"python": platform.python_version(), "torch": str(torch.__version__),
                     "numpy": np.__version__, "cnnconv": cnnconv.__version__},
        "git_commit": _git_commit(Path(source).resolve().parent),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})"
                                 if device.type == "cuda" else ""),
        "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def experiment_main(name: str, config_cls: type, run_fn: Callable[[Any, Run], Any],
                    argv: Sequence[str] | None = None, *, description: str | None = None,
                    finished_marker: str | None = "report.md") -> Path:
    """The standard command line of a cnnconv experiment.

    Options: ``--config FILE``, ``--set key=value`` (repeatable), ``--out ROOT`` (default
    ``runs``), ``--name RUN``, ``--overwrite``, ``--resume RUN_DIR_OR_CHECKPOINT``,
    ``--device auto|cpu|cuda``, ``--tensorboard``, ``--quiet``. The config and device are
    validated before anything else happens (an error is one line on stderr, exit status 2, and
    no run folder is made); then the run folder is made and locked (rank 0, see
    :class:`RunLock`), the resolved config written to ``config.yaml``, seeds set from
    ``cfg.seed`` and ``run_fn(cfg, run)`` called. Under ``torchrun`` every rank runs ``run_fn``
    and only rank 0 writes.

    ``--resume`` locks the folder, deletes temporary files left by a killed write and runs
    ``run_fn`` again: finished phases return at once from their checkpoints, and every file
    derived from them (CSV tables, figures, the report) is written again. An unusable
    checkpoint (see :func:`load_checkpoint`) is a one-line error naming the file.

    Args:
        name: Experiment name (folder under ``--out``).
        config_cls: Config dataclass; every field must have a default.
        run_fn: ``run_fn(cfg, run)``.
        argv: Arguments (default ``sys.argv[1:]``).
        description: ``--help`` text (default: ``run_fn``'s module docstring).
        finished_marker: File whose presence marks a finished run: ``--resume`` on such a run
            reports it and returns without touching it. ``None`` for experiments that handle
            resuming a finished run themselves.

    Returns:
        The run folder.
    """
    if description is None:
        module = sys.modules.get(getattr(run_fn, "__module__", ""), None)
        description = (module.__doc__ or "").strip() if module else ""
    epilog = "config fields (set with --set key=value):\n" + "\n".join(config_help(config_cls))
    package = getattr(run_fn, "__module__", "").rpartition(".")[0]
    prog = f"cnnconv run {name}" if package.startswith("cnnconv.") else f"python -m {package}.{name}"
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: built-in)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config field; repeatable")
    parser.add_argument("--out", default="runs", metavar="ROOT",
                        help=f"runs root; the run goes to ROOT/{name}/RUN (default: runs)")
    parser.add_argument("--name", metavar="RUN", help="run folder name (default: a timestamp)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing run folder of the same --name")
    parser.add_argument("--resume", metavar="PATH",
                        help="continue the run in this folder (or from this checkpoint)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="training device (default: CUDA when present, else CPU)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also log scalars to RUN/tensorboard (needs tensorboard)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--progress-every", type=float, default=20.0, metavar="SECONDS",
                        help="seconds between progress lines when stderr is not a terminal "
                             "(default: 20)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not args.progress_every >= 0:
        parser.error(f"--progress-every must be >= 0 seconds, got {args.progress_every}")
    if args.resume:
        if args.name or args.overwrite:
            parser.error("--resume continues an existing run folder; drop --name/--overwrite")
        if args.config or args.overrides:
            parser.error("--resume continues with the run's own config.yaml; drop --config/--set")

    def fail(message: Any) -> typing.NoReturn:
        print(f"{parser.prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
        raise SystemExit(2)

    try:
        if args.resume:
            run_dir = _resume_dir(args.resume)
            cfg = load_config(config_cls, run_dir / "config.yaml")
            if finished_marker and (run_dir / finished_marker).is_file():
                # A finished run has nothing to continue; tidy what a kill may have left.
                if int(os.environ.get("RANK", "0")) == 0:
                    lock = RunLock(run_dir)
                    remove_stale_temporaries(run_dir)
                    lock.release()
                print(f"{name}: {run_dir} already finished; its report is "
                      f"{run_dir / finished_marker}. Nothing to resume.")
                return run_dir
        else:
            cfg = load_config(config_cls, args.config, args.overrides)
    except (ValueError, TypeError, FileNotFoundError, RunFolderInUse) as exc:
        fail(exc)
    if args.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            fail("--tensorboard needs the tensorboard package: pip install tensorboard")

    try:
        info, device = setup_distributed(args.device)
    except ValueError as exc:
        fail(exc)
    lock = None
    threads = torch.get_num_threads()
    try:
        run_dir_or_error: Any = None
        if info.is_main:
            try:
                if args.resume:
                    lock = RunLock(run_dir)
                    remove_stale_temporaries(run_dir)
                else:
                    run_dir, lock = claim_run_dir(args.out, name, args.name,
                                                  overwrite=args.overwrite)
                    atomic_write_text(run_dir / "config.yaml", _yaml_dump(config_to_dict(cfg)))
                run_dir_or_error = run_dir
            except (FileExistsError, ValueError, RunFolderInUse) as exc:
                run_dir_or_error = str(exc)
        if info.distributed:
            import torch.distributed as dist

            box = [run_dir_or_error]
            dist.broadcast_object_list(box, src=0)
            run_dir_or_error = box[0]
        if isinstance(run_dir_or_error, str):
            fail(run_dir_or_error)
        run_dir = Path(run_dir_or_error)
        if getattr(cfg, "num_threads", 0) and device.type == "cpu":
            torch.set_num_threads(cfg.num_threads)  # put back when the run ends
        if info.is_main:
            record = run_record(argv, device, sys.modules[run_fn.__module__].__file__)
            info_path = run_dir / "run_info.yaml"
            # A resumed run keeps how it was started and adds how it was resumed.
            runs = _read_config_file(info_path).get("runs", []) if args.resume and \
                info_path.is_file() else []
            atomic_write_text(info_path, _yaml_dump({"runs": [*runs, record]}))
        seed = int(getattr(cfg, "seed", 0))
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        run = Run(cfg, run_dir, device, dist=info, resume=bool(args.resume), quiet=args.quiet,
                  tensorboard=args.tensorboard, progress_every=args.progress_every)
        try:
            run_fn(cfg, run)
        except CheckpointError as exc:
            fail(f"{exc}. Delete it to redo that phase from its start, or restore a good copy.")
        finally:
            run.close()
        if info.is_main:
            report = run_dir / "report.md"
            where = report if report.exists() else run_dir
            print(f"{name}: results in {where}")
        return run_dir
    finally:
        if lock is not None:
            lock.release()
        torch.set_num_threads(threads)
        cleanup_distributed()
