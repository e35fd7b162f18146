r"""The YAML dialect of configs: scalars read as a person reads them, duplicate keys refused.

PyYAML is imported on first use (see :func:`cnnconv._utils.optional.require`).

Example:
    >>> load_yaml("a: 010\nb: 1:30\nc: no", "example")
    {'a': 10, 'b': '1:30', 'c': 'no'}
    >>> dump_yaml({"a": "010", "b": 10})
    "a: '010'\nb: 10\n"
"""

from __future__ import annotations

import functools
import os
import re
import typing
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from cnnconv._utils.optional import require

__all__ = ["dump_yaml", "load_yaml", "read_config_file"]


def _yaml() -> ModuleType:
    return require("yaml", "reading and writing configs")


@functools.cache
def _dialect() -> tuple[type, type]:
    """A YAML loader and dumper that read scalars as a person does.

    PyYAML follows YAML 1.1, where ``010`` is 8, ``1:30`` is 90 and ``no`` is false. Here
    integers are decimal (``010`` is 10), floats need a dot or an exponent, booleans are
    ``true``/``false``, anything else (``1:30``, ``yes``) stays a string, and a key given twice
    in one mapping is an error. The dumper quotes whatever the loader would not read back as it
    was written.
    """
    yaml: Any = _yaml()
    resolvers = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("tag:yaml.org,2002:int", r"^[-+]?[0-9][0-9_]*$", "-+0123456789"),
        (
            "tag:yaml.org,2002:float",
            r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*|[0-9][0-9_]*(?=[eE]))"
            r"(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            "-+0123456789.",
        ),
    ]
    replaced = {tag for tag, _, _ in resolvers}
    table = {
        first: [r for r in rs if r[0] not in replaced] for first, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

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
                            "while reading a mapping", node.start_mark, f"found key {key!r} twice", key_node.start_mark
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    class Dumper(yaml.SafeDumper):
        yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {k: list(v) for k, v in table.items()}

    for tag, regexp, first in resolvers:
        for cls in (Loader, Dumper):
            cls.add_implicit_resolver(tag, re.compile(regexp), list(first))
    Loader.add_constructor(
        "tag:yaml.org,2002:int", lambda loader, node: int(loader.construct_scalar(node).replace("_", ""))
    )
    return Loader, Dumper


def load_yaml(text: str, where: str) -> Any:
    """Parse ``text`` in the config dialect.

    Raises:
        ValueError: invalid YAML or a key given twice; one line naming ``where`` and the place.
    """
    yaml = _yaml()
    try:
        return yaml.load(text, Loader=_dialect()[0])
    except (yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"{where} is not valid YAML: {' '.join(str(exc).split())}") from None


def dump_yaml(data: Any) -> str:
    """``data`` as YAML that :func:`load_yaml` reads back unchanged, keys in their order."""
    return _yaml().dump(data, Dumper=_dialect()[1], sort_keys=False)


def read_config_file(path: str | os.PathLike) -> dict:
    """The top-level mapping of a YAML config file (``{}`` for an empty file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path} cannot be read: {exc}") from None
    loaded = load_yaml(text, f"config file {path}")
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise TypeError(f"config file {path} must hold a mapping at the top level, got {type(loaded).__name__}")
    return loaded
