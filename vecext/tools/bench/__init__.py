"""``vecext bench``: vecext's methods against the baselines users would otherwise pick.

See :mod:`vecext.tools.bench.runner` for what is measured and :mod:`vecext.tools.bench.registry`
for how a method plugs in (``register_method(name, backend, factory)``, where
``factory(ctx: BenchContext) -> BenchMethod``).
"""

from vecext.tools.bench.context import BenchContext
from vecext.tools.bench.registry import (
    BACKENDS,
    BASELINE_METHODS,
    OUR_METHODS,
    BaseMethod,
    BenchError,
    BenchMethod,
    MethodFactory,
    MethodNotAvailable,
    available_methods,
    register_method,
)
from vecext.tools.bench.report import DOC_KEYS, RESULT_KEYS
from vecext.tools.bench.runner import BenchConfig, BenchRun, run_bench

__all__ = [
    "BACKENDS",
    "BASELINE_METHODS",
    "DOC_KEYS",
    "OUR_METHODS",
    "RESULT_KEYS",
    "BaseMethod",
    "BenchConfig",
    "BenchContext",
    "BenchError",
    "BenchMethod",
    "BenchRun",
    "MethodFactory",
    "MethodNotAvailable",
    "available_methods",
    "register_method",
    "run_bench",
]
