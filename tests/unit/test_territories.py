"""A territory code is two ASCII letters (or empty), in the SDK as on the server: ``it`` is ``IT``,
and a letter that only uppercases to an ASCII one (U+0131 the dotless i, U+017F the long s, the
Kelvin sign), U+0130 or fullwidth letters are refused with ``ValueError``, never folded into
another country's code: by `charter.territories.territory_code`, by `UseContext`, and by the
offline authorizer before it decides anything (the server refuses them with INVALID_ARGUMENT:
tests/api/test_territory_codes.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import pytest
from charter import Client
from charter.offline import OfflineAuthorizer
from charter.terms import UseContext
from charter.territories import territory_code
from charter.v1 import terms_pb2 as t

NOW: Final = datetime(2030, 1, 1, tzinfo=UTC)
LOOK_ALIKES: Final = {
    "dotless_i": "\u0131t",
    "dotless_i_upper_t": "\u0131T",
    "long_s": "\u017fe",
    "dotted_capital_i": "\u0130T",
    "full_width": "\uff29\uff34",
    "kelvin_sign": "\u212aN",
}
NOT_CODES: Final = {"one_letter": "I", "three_letters": "ITA", "digits": "39", "letter_and_digit": "I1", "space": "I "}


@pytest.mark.parametrize(("given", "code"), [("it", "IT"), ("IT", "IT"), ("iT", "IT"), ("", "")])
def test_ascii_letters_of_either_case_are_the_code(given: str, code: str) -> None:
    assert territory_code(given) == code
    assert UseContext(t.USE_TYPE_CAMEO, t.CONTENT_RATING_TEEN, NOW, territory=given).territory == code


@pytest.mark.parametrize("given", [*LOOK_ALIKES.values(), *NOT_CODES.values()], ids=[*LOOK_ALIKES, *NOT_CODES])
def test_anything_else_is_refused_not_folded(given: str) -> None:
    with pytest.raises(ValueError, match="ISO 3166-1 alpha-2") as code:
        territory_code(given)
    with pytest.raises(ValueError, match="ISO 3166-1 alpha-2") as use:
        UseContext(t.USE_TYPE_CAMEO, t.CONTENT_RATING_TEEN, NOW, territory=given)

    assert repr(given) in str(code.value)
    assert repr(given) in str(use.value)


def test_a_territory_is_a_string() -> None:
    with pytest.raises(TypeError):
        territory_code(39)  # type: ignore[arg-type]


@pytest.mark.parametrize("given", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_the_offline_authorizer_refuses_a_non_ascii_territory_before_deciding(given: str) -> None:
    # Nothing listens there: had it got past the check, it would deny SERVER_UNREACHABLE.
    with Client("127.0.0.1:1", api_key="key_" + "0" * 32 + ".secret", timeout=0.5) as client:
        authorizer = OfflineAuthorizer(client)
        with pytest.raises(ValueError, match="ISO 3166-1 alpha-2") as asked:
            authorizer.authorize(
                character_ids=["chr_" + "0" * 32],
                use_type=t.USE_TYPE_IMAGE_GENERATION,
                content_rating=t.CONTENT_RATING_TEEN,
                territory=given,
            )
        with pytest.raises(ValueError, match="ISO 3166-1 alpha-2") as built:
            authorizer.use_context(
                use_type=t.USE_TYPE_IMAGE_GENERATION, content_rating=t.CONTENT_RATING_TEEN, territory=given
            )

    assert repr(given) in str(asked.value)
    assert repr(given) in str(built.value)
