"""The ``vecext`` command: one module per command group.

* :mod:`~vecext.tools.cli.server`: ``info``, ``install``, ``stop``
* :mod:`~vecext.tools.cli.demo`: ``demo``
* :mod:`~vecext.tools.cli.bench`: ``bench``
* :mod:`~vecext.tools.cli.advise`: ``advise``
* :mod:`~vecext.tools.cli.relevance`: ``eval-relevance``

:mod:`~vecext.tools.cli.app` puts them together; :mod:`~vecext.tools.cli.common`
holds the consoles and options they share.
"""

from vecext.tools.cli.app import app, main
from vecext.tools.cli.relevance import EVAL_RESULT_KEYS, split_method_specs

__all__ = ["EVAL_RESULT_KEYS", "app", "main", "split_method_specs"]
