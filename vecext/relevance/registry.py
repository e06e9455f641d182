"""Relevance methods by name: the registry, method specs, and rebuilding from a state."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar

from vecext.relevance.checks import RelevanceError


class Registrable(Protocol):
    """What the registry needs of a method class: its name. (The methods are
    :class:`vecext.relevance.base.RelevanceMethod` subclasses; named structurally here so
    that base and registry do not import each other.)"""

    name: ClassVar[str]


_M = TypeVar("_M", bound=type[Registrable])

__all__ = ["method_class", "parse_method_spec", "register"]

_REGISTRY: dict[str, type[Registrable]] = {}


def register(cls: _M) -> _M:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise RelevanceError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def method_class(name: str, *, where: str = "") -> type[Registrable]:
    """The class registered as ``name`` (a :class:`RelevanceError` naming the known ones)."""
    if name not in _REGISTRY:
        raise RelevanceError(
            f"unknown relevance method {name!r}{where}; known: {sorted(_REGISTRY)}"
        )
    return _REGISTRY[name]


def _parse_value(v: str) -> Any:
    if "+" in v or v == "":
        return tuple(x for x in v.split("+") if x)
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def parse_method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"cosine-adapter:features=top1+gap12,lam=0.01"`` -> ``("cosine-adapter", {...})``.

    Options are ``key=value`` separated by ``,``; ``+`` joins list items (a value with
    a ``+`` is a tuple; ``features=`` alone is the empty tuple); ``true``/``false``/
    ``none`` and numbers are converted.
    """
    base, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        k, sep, v = item.partition("=")
        if not sep:
            raise RelevanceError(f"bad option {item!r} in method spec {spec!r} (want key=value)")
        val = _parse_value(v.strip())
        if k.strip() == "features" and isinstance(val, str):
            val = (val,)
        params[k.strip()] = val
    return base.strip(), params
