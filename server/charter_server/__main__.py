"""Run the ``charter-server`` command with ``python -m charter_server``."""

from charter_server.cli import main

main()
