"""The `charter` command line, for licensing staff and rights holders, and for trying out
generation-time calls (`charter authorize`, `charter screen`, `charter receipts verify`).

It needs the optional `cli` extra (Typer, Rich, and Babel for amounts): `pip install 'charter-sdk[cli]'`.
This module imports none of them until `main()` runs, so a missing extra gives a
one-line hint instead of a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_INSTALL_HINT = "error: the charter command needs its extra dependencies: pip install 'charter-sdk[cli]'"


def main() -> None:
    """Runs the `charter` command line (the console script's entry point).

    Raises:
        SystemExit: Always, with the command's exit status (1 when Typer, Rich or
            Babel is missing).
    """
    try:
        import babel  # noqa: F401
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ImportError:
        print(_INSTALL_HINT, file=sys.stderr)
        raise SystemExit(1) from None

    from charter.cli._app import app

    app()
