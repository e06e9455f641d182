"""Relevance methods by name: the registry, method specs, and rebuilding from a state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vecext.relevance.checks import RelevanceError
from vecext.relevance.state import RelevanceState

if TYPE_CHECKING:
    from vecext.relevance.base import RelevanceMethod

__all__ = ["make_relevance", "parse_method_spec", "register", "relevance_from_state"]

_REGISTRY: dict[str, type[RelevanceMethod]] = {}


def register(cls: type[RelevanceMethod]) -> type[RelevanceMethod]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise RelevanceError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def make_relevance(name: str, **params: Any) -> RelevanceMethod:
    """A new, unfitted method by registry name (``fixed``, ``platt``, ``cosine-adapter``).

    ``name`` may carry options as a spec, e.g. ``"cosine-adapter:features=top1+gap12"``
    (see :func:`parse_method_spec`); keyword ``params`` override them.
    """
    base, spec_params = parse_method_spec(name)
    if base not in _REGISTRY:
        raise RelevanceError(f"unknown relevance method {base!r}; known: {sorted(_REGISTRY)}")
    spec_params.update(params)
    return _REGISTRY[base](**spec_params)


def relevance_from_state(state: RelevanceState) -> RelevanceMethod:
    """Rebuild a trained method from its :class:`RelevanceState`."""
    if state.method not in _REGISTRY:
        raise RelevanceError(f"unknown relevance method {state.method!r} in state")
    return _REGISTRY[state.method].from_state(state)


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
