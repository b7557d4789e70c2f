"""Typed configs: dataclasses filled from YAML, with unknown keys rejected by name.

A typo in a config ("learning_rat") must stop the run before it starts, not be ignored for a week of
training. Nested dataclasses, tuples, Literals and Optionals are converted and checked here.

A config may start from another: `extends: other.yaml` (a path relative to the file) reads that one first
and lays this file's keys over it, section by section, so a stage that changes only how it trains says
only that and cannot drift from the model it continues.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from posedraw.errors import ConfigError

T = TypeVar("T")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking every key and value type; `where` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where or 'config'}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key; expected one of {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # a required field is missing, or __post_init__ validation
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {hint!r}")  # a bug in a config class, not user input


def read_yaml(path: str | os.PathLike[str]) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` laid over `base`: a mapping merges key by key, anything else (a list too) replaces."""
    out = dict(base)
    for key, value in extra.items():
        below = out.get(key)
        out[key] = merge_config(below if isinstance(below, dict) else {}, value) if isinstance(value, dict) else value
    return out


def read_config(path: str | os.PathLike[str], _within: frozenset[Path] = frozenset()) -> Any:
    """A config file's contents with its `extends:` chain resolved (see the module's docstring)."""
    data = read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    data = dict(data)
    parent = data.pop("extends")
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected the path of another config file, got {parent!r}")
    here = Path(path).resolve()
    base = Path(path).parent / parent
    if base.resolve() in _within | {here}:
        raise ConfigError(f"{path}: extends: {parent} is already in this chain of extends (a loop)")
    below = read_config(base, _within | {here})
    if below is not None and not isinstance(below, dict):
        raise ConfigError(f"{base}: expected a mapping of config sections to extend")
    return merge_config(below or {}, data)


def load_config(cls: type[T], path: str | os.PathLike[str]) -> T:
    """Load dataclass `cls` from a YAML file (and the files it extends); errors name the file and the key."""
    data = read_config(path)
    try:
        return from_dict(cls, {} if data is None else data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (tuples as lists) that `from_dict` reads back."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
