"""The offline authorizer when time moves the wrong way, against a scripted client (no server): a
wall clock stepped back never stretches ``max_staleness`` (the monotonic clock bounds it too, and
a last heartbeat later than the clock's now is stale). (With real servers: ``test_offline_authorizer``.)
"""

from __future__ import annotations

import time
from datetime import timedelta

from .test_offline_authorizer import WAIT, ManualClock, ScriptedClient, _beat, scripted


def test_a_clock_stepped_back_behind_the_last_heartbeat_makes_the_view_stale() -> None:
    own = ManualClock()
    client = ScriptedClient(([_beat(0)], False))  # one heartbeat, then none
    with scripted(client, clock=own.now, max_staleness=timedelta(seconds=30)) as authorizer:
        before = authorizer.wait_current(timeout=WAIT)
        own.advance(timedelta(hours=-1))
        after = authorizer.is_current()

    assert before
    assert not after  # (it stayed current for the hour the clock went back)


def test_a_clock_stepped_back_does_not_stretch_max_staleness() -> None:
    own = ManualClock()
    client = ScriptedClient(([_beat(0)], False))  # one heartbeat, then none
    with scripted(client, clock=own.now, max_staleness=timedelta(seconds=2)) as authorizer:
        before = authorizer.wait_current(timeout=WAIT)
        time.sleep(1.2)
        own.advance(timedelta(seconds=-1))  # the view looks 0.2 s old on the clock, still after its heartbeat
        time.sleep(1.2)  # 2.4 s since the heartbeat; 1.4 s on the clock
        after = authorizer.is_current()

    assert before
    assert not after
