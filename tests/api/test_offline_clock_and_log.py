"""The offline authorizer when time or the revocation log moves the wrong way, against a scripted
client (no server): a wall clock stepped back never stretches ``max_staleness`` (the monotonic
clock bounds it too, and a last heartbeat later than the clock's now is stale), and a log that
went backwards (a database restored, a lagging replica) is read again from 0, its view not current
until then. (With real servers: ``test_offline_authorizer``.)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import pytest
from charter.errors import FieldViolation, InvalidArgumentError
from charter.grants import GrantStatus
from charter.v1 import authorization_service_pb2, grant_pb2
from google.protobuf import timestamp_pb2

from .test_offline_authorizer import WAIT, ManualClock, ScriptedClient, _beat, _event, _until, scripted

_REVOKED: Final = grant_pb2.RevocationEvent.KIND_REVOKED
# A log as the view saw it (1 to 5), then restored to 2 and grown again: its new history revokes
# another grant at 3 and goes on to 7.
_OLD_HISTORY: Final = [_event(n) for n in range(1, 6)]
_VICTIM: Final = "grt_" + "f" * 32
_NEW_HISTORY: Final = [
    _event(1),
    _event(2),
    grant_pb2.RevocationEvent(sequence=3, grant_id=_VICTIM, kind=_REVOKED),
    *(grant_pb2.RevocationEvent(sequence=n, grant_id=f"grt_{n + 100:032x}", kind=_REVOKED) for n in range(4, 8)),
]


def test_a_heartbeat_behind_the_events_seen_drops_the_view_and_reads_the_log_again_from_0() -> None:
    client = ScriptedClient(([*_OLD_HISTORY, _beat(5), _beat(2)], False), ([*_NEW_HISTORY, _beat(7)], False))
    with scripted(client) as authorizer:
        current = authorizer.wait_current(min_sequence=7, timeout=WAIT)
        victim, dropped = authorizer.grant_status(_VICTIM), authorizer.grant_status(f"grt_{5:032x}")

    assert current
    assert client.opened == [0, 0]
    assert victim is GrantStatus.REVOKED  # the new history's event at 3 (below the old position) applied
    assert dropped is GrantStatus.ACTIVE  # the old history's event at 5 forgotten with it


def test_a_watch_refused_as_beyond_the_log_reads_it_again_from_0() -> None:
    beyond = InvalidArgumentError(
        "beyond the log", field_violations=[FieldViolation("since_sequence", "is beyond the log")]
    )
    client = ScriptedClient(([*_OLD_HISTORY, _beat(5)], True), beyond, ([*_NEW_HISTORY, _beat(7)], False))
    with scripted(client) as authorizer:
        current = authorizer.wait_current(min_sequence=7, timeout=WAIT)
        victim = authorizer.grant_status(_VICTIM)

    assert current
    assert client.opened == [0, 5, 0]
    assert victim is GrantStatus.REVOKED


def test_a_view_dropped_for_a_log_that_went_backwards_is_not_current_until_read_again() -> None:
    client = ScriptedClient(([*_OLD_HISTORY, _beat(5), _beat(2)], False), ([_event(1)], False))
    with scripted(client) as authorizer:
        reread = _until(lambda: client.opened == [0, 0] and authorizer.sequence == 1)
        current, fresh = authorizer.is_current(), authorizer.fresh_as_of
        dropped = authorizer.grant_status(f"grt_{5:032x}")

    assert reread
    assert not current
    assert fresh is None
    assert dropped is GrantStatus.ACTIVE


def test_a_clock_stepped_back_behind_the_last_heartbeat_makes_the_view_stale() -> None:
    own = ManualClock()
    client = ScriptedClient(([_beat(0)], False))  # one heartbeat, then none
    with scripted(client, clock=own.now, max_staleness=timedelta(seconds=30)) as authorizer:
        before = authorizer.wait_current(timeout=WAIT)
        own.advance(timedelta(hours=-1))
        after = authorizer.is_current()

    assert before
    assert not after  # (it stayed current for the hour the clock went back)


class _Monotonic:
    """The authorizer's monotonic clock: it moves only when the test says."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def test_a_clock_stepped_back_does_not_stretch_max_staleness() -> None:
    own, monotonic = ManualClock(), _Monotonic()
    client = ScriptedClient(([_beat(0)], False))  # one heartbeat, then none
    with scripted(client, clock=own.now, monotonic=monotonic, max_staleness=timedelta(seconds=30)) as authorizer:
        before = authorizer.wait_current(timeout=WAIT)
        monotonic.seconds += 12
        own.advance(timedelta(seconds=12 - 10))  # stepped back 10 s meanwhile: still after its heartbeat
        within = authorizer.is_current()
        monotonic.seconds += 19
        own.advance(timedelta(seconds=19))  # 31 s since the heartbeat; 21 s on the clock
        after = authorizer.is_current()

    assert before
    assert within
    assert not after


def _beat_from(sequence: int, server_time: datetime) -> authorization_service_pb2.Heartbeat:
    return authorization_service_pb2.Heartbeat(
        sequence=sequence,
        server_time=timestamp_pb2.Timestamp(seconds=int(server_time.timestamp()), nanos=server_time.microsecond * 1000),
    )


# Where Charter's clock is, as the heartbeat says, against this one: too far for a 60 s skew, and
# close enough. Ahead, a heartbeat is read a little after the server's time in it, which the second
# of transit (`HEARTBEAT_TRANSIT`) allows for.
CLOCK_OFF = {
    "this clock behind": (timedelta(seconds=90), timedelta(seconds=50)),
    "this clock ahead": (timedelta(seconds=-62), timedelta(seconds=-50)),
}


@pytest.mark.parametrize("case", CLOCK_OFF)
def test_a_clock_more_than_the_skew_from_the_servers_is_never_current(case: str) -> None:
    """Validity windows are judged on this clock: one that lags Charter's by more than ``skew`` would
    honour a grant offline after the server deems it expired, one that runs ahead before its
    ``not_before`` (by as much as it is off). So no such heartbeat makes the view current (it is
    decided by the server, or denied)."""
    too_far, close = CLOCK_OFF[case]
    own = ManualClock()
    now = own.now()
    off = ScriptedClient(([_event(1), _beat_from(1, now + too_far)], True), ([], False))
    within = ScriptedClient(([_event(1), _beat_from(1, now + close)], True), ([], False))
    with scripted(off, clock=own.now, skew=timedelta(seconds=60)) as off_clock:
        read = _until(lambda: off.opened == [0, 1])  # the first stream played to its end
        off_current = off_clock.is_current()
    with scripted(within, clock=own.now, skew=timedelta(seconds=60)) as close_enough:
        close_enough_current = close_enough.wait_current(timeout=WAIT)

    assert read
    assert not off_current
    assert close_enough_current
