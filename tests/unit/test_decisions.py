"""`charter.decisions.Decision`: its constructor is written out for speed (the offline authorizer
builds one per request); it must stay the one dataclasses would make."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest
from charter.decisions import CharacterDecision, Decision
from charter.terms import DenyReason

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def test_decision_constructor_takes_the_fields_in_order() -> None:
    parameters = list(inspect.signature(Decision).parameters.values())
    fields = dataclasses.fields(Decision)
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, field in zip(parameters, fields, strict=True):
        if field.default is not dataclasses.MISSING:
            assert parameter.default == field.default, field.name
    denied = CharacterDecision("chr_a", False, (DenyReason.NO_GRANT,))
    made = Decision(False, (denied,), (), NOW, None, "", "lic_a", True, (), (DenyReason.SERVER_UNREACHABLE,))
    assert (made.allowed, made.characters, made.decide_time, made.licensee_id, made.offline) == (
        False,
        (denied,),
        NOW,
        "lic_a",
        True,
    )
    assert made.request_reasons == (DenyReason.SERVER_UNREACHABLE,)
    assert made.reasons == (DenyReason.NO_GRANT, DenyReason.SERVER_UNREACHABLE)


def test_decision_works_with_dataclass_helpers_and_stays_frozen() -> None:
    made = Decision(allowed=True, characters=(), decide_time=NOW, offline=True)
    assert dataclasses.replace(made, licensee_id="lic_b") == Decision(
        True, (), decide_time=NOW, licensee_id="lic_b", offline=True
    )
    assert hash(made) == hash(Decision(True, (), decide_time=NOW, offline=True))
    assert "offline=True" in repr(made)
    assert not hasattr(made, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.allowed = False  # type: ignore[misc]


def test_decision_without_a_time_is_made_now() -> None:
    before = datetime.now(UTC)
    made = Decision(True, ())
    assert made.decide_time.tzinfo is UTC
    assert before <= made.decide_time <= datetime.now(UTC)
