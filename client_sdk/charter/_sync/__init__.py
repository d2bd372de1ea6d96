# Generated from charter/_async/__init__.py by client_sdk/generate_sync.py; do not edit.
"""The calls of the Charter clients, one module per service area (`charter.client` and `charter.aio`
make them public).

The asyncio package is the one place where a call is written: its signature, docstring, request
building and response handling. The synchronous package is generated from it by
``client_sdk/generate_sync.py``; never edit that one by hand.
"""

from __future__ import annotations

from charter._sync.access import AccessCalls
from charter._sync.authorization import AuthorizationCalls
from charter._sync.character_terms import TermsCalls
from charter._sync.characters import CharacterCalls
from charter._sync.grants import GrantCalls
from charter._sync.keys import KeyCalls
from charter._sync.licensees import LicenseeCalls
from charter._sync.offline import OfflineCalls
from charter._sync.rights_holders import RightsHolderCalls
from charter._sync.transparency import TransparencyCalls
from charter._sync.usage import UsageCalls
from charter._sync.verification import VerificationCalls
from charter._sync.watch import RevocationWatch

__all__ = ["Calls", "RevocationWatch"]


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
