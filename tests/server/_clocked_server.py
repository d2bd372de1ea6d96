"""``python _clocked_server.py OFFSET_FILE <charter_server arguments>``: the ``charter_server``
command, whose clock (`charter_server.domain.clock.SystemClock`, which every service reads) runs
the number of seconds in OFFSET_FILE ahead of the system clock.

A test moves a server process's time this way (an hour in a moment), as the in-process tests
move theirs with a `TestClock`; the file is read when it changed, so a running process follows.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

from charter_server.domain import clock


class _Offset:
    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp = -1
        self.value = timedelta()

    def now(self) -> datetime:
        stamp = os.stat(self.path).st_mtime_ns
        if stamp != self.stamp:
            with open(self.path) as file:
                self.value = timedelta(seconds=float(file.read().strip() or 0))
            self.stamp = stamp
        return datetime.now(UTC) + self.value


if __name__ == "__main__":
    offset = _Offset(sys.argv[1])

    def _now(_self: clock.SystemClock) -> datetime:
        return offset.now()

    clock.SystemClock.now = _now  # type: ignore[method-assign]
    sys.argv = ["charter_server", *sys.argv[2:]]
    from charter_server.cli import main

    main()
