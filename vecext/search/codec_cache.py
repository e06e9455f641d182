"""Catalog codecs rebuilt once per version in this process, for the searches that need them.

A search encodes its query with the column's codec (a PQ lookup table, the query's
bits) and probes IVF lists with the coarse quantizer; loading a codec from the catalog
rebuilds FAISS objects, which costs more than the search. A codec version is named by
its fingerprint (a hash of its arrays), so one entry serves every query of that version.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from vecext.codecs import Codec

__all__ = ["CodecCache"]


class CodecCache:
    """A least-recently-used cache of ``size`` codecs by key (name and fingerprint,
    plus whatever else tells databases apart)."""

    def __init__(self, size: int = 32) -> None:
        self.size = int(size)
        self._items: OrderedDict[Hashable, Codec] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], Codec]) -> Codec:
        """The codec under ``key``, loaded with ``load()`` the first time."""
        with self._lock:
            codec = self._items.get(key)
            if codec is not None:
                self._items.move_to_end(key)
                return codec
        codec = load()
        with self._lock:
            self._items[key] = codec
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return codec

    def clear(self) -> None:
        """Forget every codec (after a codec was replaced under the same fingerprint)."""
        with self._lock:
            self._items.clear()
