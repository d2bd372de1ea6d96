"""The calls of the Charter clients, one module per service area (`charter.client` and `charter.aio`
make them public).

The asyncio package is the one place where a call is written: its signature, docstring, request
building and response handling. The synchronous package is generated from it by
``client_sdk/generate_sync.py``; never edit that one by hand.
"""

from __future__ import annotations

from charter._async.access import AccessCalls
from charter._async.authorization import AuthorizationCalls
from charter._async.character_terms import TermsCalls
from charter._async.characters import CharacterCalls
from charter._async.grants import GrantCalls
from charter._async.keys import KeyCalls
from charter._async.licensees import LicenseeCalls
from charter._async.offline import OfflineCalls
from charter._async.rights_holders import RightsHolderCalls
from charter._async.transparency import TransparencyCalls
from charter._async.usage import UsageCalls
from charter._async.verification import VerificationCalls
from charter._async.watch import AsyncRevocationWatch

__all__ = ["AsyncRevocationWatch", "Calls"]


class Calls(
    RightsHolderCalls,
    LicenseeCalls,
    CharacterCalls,
    TermsCalls,
    AccessCalls,
    GrantCalls,
    KeyCalls,
    VerificationCalls,
    AuthorizationCalls,
    UsageCalls,
    TransparencyCalls,
    OfflineCalls,
):
    """Every call of the Charter API (the client classes add their own documentation)."""
