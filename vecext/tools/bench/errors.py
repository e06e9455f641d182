"""The benchmark's error (its own module, so the filter parser needs no registry)."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A benchmark cannot run as asked (unknown method, wrong backend, bad data)."""
