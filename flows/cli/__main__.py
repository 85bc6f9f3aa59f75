"""``python -m lmpipe.flows.cli``: the ``lmpipe`` command."""

from lmpipe.flows.cli import main

main()
