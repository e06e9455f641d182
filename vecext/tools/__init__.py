"""Tools built on the adapters: the ``vecext`` command, benchmarks, the demo and advice.

Nothing below ``vecext.tools`` imports from here: it is the top layer.
"""
