"""One convention for config dataclasses stored with a run or an index version: plain dicts out, strict in.

``config_to_dict`` gives a JSON-able dict (tuples become lists, nested dataclasses dicts);
``config_from_dict`` rebuilds the dataclass from such a dict, turning lists back into tuples and dicts back
into nested dataclasses where the field's type says so. Missing keys keep their defaults, so dicts saved
before a field was added still load; unknown keys are refused (a typo in a setting or a file from another
version must not be silently dropped), except the ones a config lists as retired (fields it no longer has).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    C = TypeVar("C", bound=DataclassInstance)
else:
    C = TypeVar("C")


def config_to_dict(cfg: DataclassInstance) -> dict[str, Any]:
    """JSON-able dict of a config dataclass (tuples as lists, nested dataclasses as dicts)."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def config_from_dict(cls: type[C], data: Mapping[str, Any], *, retired: Collection[str] = ()) -> C:
    """Rebuild ``cls`` from ``config_to_dict`` output; unknown keys not in ``retired`` raise ValueError."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__} must be a dict, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names - set(retired))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(map(str, unknown))}")
    return cls(**{k: _typed(hints[k], v) for k, v in data.items() if k in names})


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(hint: Any, value: Any) -> Any:
    """``value`` as the field's type wants it: lists to tuples, dicts to nested config dataclasses."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    for option in options:
        if isinstance(value, list) and typing.get_origin(option) is tuple:
            return tuple(value)
        if isinstance(value, Mapping) and isinstance(option, type) and dataclasses.is_dataclass(option):
            return config_from_dict(option, value)
    return value


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)
