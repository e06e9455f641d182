"""``python -m vecext.tools.cli``: the ``vecext`` command."""

from vecext.tools.cli.app import main

main()
