"""The codec configurations ``vecext advise`` tries, and its error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vecext.codecs import make_codec

__all__ = ["AdviseError", "Candidate", "code_size", "default_candidates", "parse_candidate"]


class AdviseError(ValueError):
    """Bad input to :func:`advise_vectors` or the table readers (message names it)."""


@dataclass(frozen=True)
class Candidate:
    """A codec configuration to try: ``make_codec(kind, d, metric, **params)``."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        parts = [self.kind]
        for key, value in self.params.items():
            if key == "pretransform":
                parts.append(str(value))
            elif value is True:
                parts.append(key)
            else:
                parts.append(f"{key}={value}")
        return " ".join(parts)

    @property
    def spec(self) -> str:
        """The ``--candidate`` text that gives this candidate back."""
        if not self.params:
            return self.kind
        body = ",".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.params.items()
        )
        return f"{self.kind}:{body}"


def parse_candidate(spec: str) -> Candidate:
    """``"pq:m=32,opq=true"``, ``"int8:pretransform=pca:192"``, ``"binary"`` -> Candidate.

    Values are read as int, float or true/false where they look like one; the
    codec's own constructor checks names and ranges.
    """
    kind, _, body = spec.strip().partition(":")
    kind = kind.strip().lower()
    if not kind:
        raise AdviseError(f"empty candidate spec {spec!r}; expected e.g. 'pq:m=32'")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise AdviseError(
                f"bad item {item!r} in candidate {spec!r}; expected key=value, e.g. 'pq:m=32'"
            )
        params[key.strip()] = _value(raw.strip())
    return Candidate(kind, params)


def _value(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


def _pq_sizes(d: int, budget: int) -> list[int]:
    """Up to three PQ widths: the largest ``m`` within the budget, then about half and
    a quarter of it; ``m`` divides ``d`` with sub-vectors of 2 to 32 dimensions."""
    ok = [m for m in range(1, d + 1) if d % m == 0 and 2 <= d // m <= 32 and m <= budget]
    if not ok:
        return []
    top = max(ok)
    picks = [top]
    for frac in (2, 4):
        below = [m for m in ok if m <= top // frac]
        if below and max(below) not in picks:
            picks.append(max(below))
    return picks


def default_candidates(d: int, budget: int) -> list[Candidate]:
    """The codecs worth trying for dimension ``d`` within ``budget`` bytes per vector."""
    out: list[Candidate] = [Candidate("half"), Candidate("int8")]
    if d % 2 == 0 and d >= 32:
        out.append(Candidate("int8", {"pretransform": f"pca:{d // 2}"}))
    out += [Candidate("rbq", {"bits": 4}), Candidate("rbq", {"bits": 2})]
    # OPQ is left to --candidate pq:m=..,opq=true: its rotation takes minutes to train
    out += [Candidate("pq", {"m": m}) for m in _pq_sizes(d, budget)]
    out.append(Candidate("binary"))
    # twice the bits (the centred vector and one random rotation of it): Hamming ranks
    # closer to exact, so a shallower rerank and a smaller HNSW ef over the codes
    out.append(Candidate("binary", {"pretransform": f"expand:{2 * d}"}))
    return [c for c in out if code_size(c, d) <= budget]


def code_size(c: Candidate, d: int, metric: str = "cosine") -> int:
    return make_codec(c.kind, d, metric, **c.params).code_size
