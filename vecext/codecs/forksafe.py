"""Fork safety of FAISS: a child forked after the parent ran OpenMP code must not use the
parent's thread pool.

GNU OpenMP (libgomp, which FAISS links) is not fork-safe: once a parent process has run
a parallel region, a forked child that enters one waits forever for pool threads that
were not copied (prefork web servers, ``multiprocessing`` with the ``fork`` start
method, backfill workers). vecext registers an ``os.register_at_fork`` hook, on import
of :mod:`vecext.codecs`, that sets FAISS to one OpenMP thread in every child, so
``codec.encode`` and search run there serially instead of hanging. A child that wants
more threads can call ``faiss.omp_set_num_threads(n)`` itself once it has started its
own pool in a fresh process (``spawn``/``forkserver``); the parent keeps its setting.
"""

from __future__ import annotations

import os

_registered = False


def _single_thread_in_child() -> None:
    import faiss

    faiss.omp_set_num_threads(1)


def register() -> None:
    """Install the after-fork hook once per process (idempotent)."""
    global _registered
    if _registered or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(after_in_child=_single_thread_in_child)
    _registered = True
