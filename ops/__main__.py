"""``python -m ops``: the ``vigil`` command line (what the ``vigil`` script runs)."""

from ops.cli import main

main()
