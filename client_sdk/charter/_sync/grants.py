# Generated from charter/_async/grants.py by client_sdk/generate_sync.py; do not edit.
"""Signed grants: issuing, reading, listing, suspending, reinstating and revoking them (GrantService)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from charter import _requests
from charter._options import new_request_id
from charter._sync._transport import Transport
from charter.v1 import grant_pb2, grant_service_pb2, terms_pb2


class GrantCalls(Transport):
    """The lifecycle of grants."""

    def issue_grant(
        self,
        *,
        character_id: str,
        licensee_id: str,
        expire_time: dt.datetime,
        not_before: dt.datetime | None = None,
        narrowed_terms: terms_pb2.Terms | None = None,
        max_uses: int | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> grant_pb2.Grant:
        """Issues a signed grant: a licensee may use an opted-in character under its terms for a time.

        The grant carries its signed `envelope`; hand that to the licensee (its
        standard DSSE JSON form is `charter.envelope.to_json(grant.envelope)`).
        Allowed roles: admin.

        Args:
            character_id: The character (`chr_...`); it must be opted in.
            licensee_id: The licensee (`lic_...`); it must be active and allowed by the terms.
            expire_time: When the grant stops being valid; timezone-aware, after
                `not_before` and within the server's maximum grant lifetime.
            not_before: When the grant starts to be valid; timezone-aware. Now when omitted.
            narrowed_terms: Terms at most as permissive as the character's current
                terms in every field; the current terms as they are when omitted.
            max_uses: The most uses the grant allows over its whole validity, counted when
                `authorize` allows one (then `QUOTA_EXHAUSTED`); no cap when omitted.
            request_id: Makes the call idempotent: a second call with the same id
                returns the first grant. A fresh one is used when omitted.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The issued grant with its signed envelope.

        Raises:
            ValueError: If a time is naive.
            TypeError: If a time is not a datetime, `narrowed_terms` is not a `Terms` message or
                `max_uses` is not an int.
            InvalidArgumentError: If a field is invalid, for example an expiry beyond the
                maximum lifetime, or narrowed terms wider than the character's
                (`TERMS_WIDER_THAN_CHARACTER`, each wider field in `field_violations`).
            NotFoundError: If the character or licensee does not exist.
            FailedPreconditionError: If the character is not opted in
                (`CHARACTER_NOT_OPTED_IN`), the licensee is archived, or the terms
                exclude the licensee (`LICENSEE_NOT_PERMITTED_BY_TERMS`).
            CharterError: For any other failure.
        """
        request = grant_service_pb2.IssueGrantRequest(
            character_id=character_id,
            licensee_id=licensee_id,
            expire_time=_requests.timestamp(expire_time, what="expire_time"),
            request_id=request_id or new_request_id(),
        )
        if not_before is not None:
            request.not_before.CopyFrom(_requests.timestamp(not_before, what="not_before"))
        if narrowed_terms is not None:
            request.narrowed_terms.CopyFrom(_requests.check_terms(narrowed_terms))
        if max_uses is not None:
            if isinstance(max_uses, bool) or not isinstance(max_uses, int):
                raise TypeError(f"max_uses must be an int, not {type(max_uses).__name__}")
            request.max_uses = max_uses
        response: grant_service_pb2.IssueGrantResponse = self._unary(self._grants.IssueGrant, request, timeout)
        return response.grant

    def get_grant(self, id: str, *, timeout: float | None = None) -> grant_pb2.Grant:
        """Gets a grant with its envelope.

        Allowed roles: admin, auditor, a rights holder for grants of its own characters.

        Args:
            id: The grant's id (`grt_...`).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The grant.

        Raises:
            NotFoundError: If it does not exist (reason `GRANT_NOT_FOUND`).
            CharterError: For any other failure.
        """
        response: grant_service_pb2.GetGrantResponse = self._unary(
            self._grants.GetGrant, grant_service_pb2.GetGrantRequest(id=id), timeout
        )
        return response.grant

    def list_grants(
        self,
        *,
        character_id: str = "",
        licensee_id: str = "",
        rights_holder_id: str = "",
        state: int | str | None = None,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[grant_pb2.Grant]:
        """Lists grants, newest first, fetching further pages as it is iterated.

        Allowed roles: admin, auditor, and a rights holder, which sees only grants
        of its own characters.

        Args:
            character_id: Only grants for this character.
            licensee_id: Only grants for this licensee.
            rights_holder_id: Only grants for characters of this rights holder.
            state: Only grants in this state (`Grant.STATE_SUSPENDED`, `"revoked"`, ...);
                every state by default.
            page_size: Grants per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the matching grants. Calls happen during iteration,
            so errors are raised from the iteration too.

        Raises:
            ValueError: If `state` names no state (raised at once).
            CharterError: If a page cannot be fetched.
        """
        request = grant_service_pb2.ListGrantsRequest(
            character_id=character_id,
            licensee_id=licensee_id,
            rights_holder_id=rights_holder_id,
            page_size=page_size,
        )
        if state is not None:
            request.state = _requests.parse_grant_state(state)
        return self._paginate(self._grants.ListGrants, request, lambda r: r.grants, timeout)

    def suspend_grant(
        self, id: str, *, reason: str, timeout: float | None = None
    ) -> grant_service_pb2.SuspendGrantResponse:
        """Suspends an active grant; it verifies as SUSPENDED until reinstated. Allowed roles: admin.

        Args:
            id: The grant's id.
            reason: Why; required, at most 500 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the suspended `grant` and the revocation log's
            `sequence` number of the suspension.

        Raises:
            InvalidArgumentError: If `reason` is empty or too long.
            NotFoundError: If the grant does not exist.
            FailedPreconditionError: If it is already suspended
                (`GRANT_ALREADY_SUSPENDED`) or revoked (`GRANT_REVOKED`).
            CharterError: For any other failure.
        """
        response: grant_service_pb2.SuspendGrantResponse = self._unary(
            self._grants.SuspendGrant, grant_service_pb2.SuspendGrantRequest(id=id, reason=reason), timeout
        )
        return response

    def reinstate_grant(self, id: str, *, timeout: float | None = None) -> grant_service_pb2.ReinstateGrantResponse:
        """Lifts the suspension of a grant. Allowed roles: admin.

        Args:
            id: The grant's id.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the reinstated `grant` and the revocation log's
            `sequence` number of the reinstatement.

        Raises:
            NotFoundError: If the grant does not exist.
            FailedPreconditionError: If it is not suspended (`GRANT_NOT_SUSPENDED`)
                or is revoked (`GRANT_REVOKED`).
            CharterError: For any other failure.
        """
        response: grant_service_pb2.ReinstateGrantResponse = self._unary(
            self._grants.ReinstateGrant, grant_service_pb2.ReinstateGrantRequest(id=id), timeout
        )
        return response

    def revoke_grant(
        self, id: str, *, reason: str, timeout: float | None = None
    ) -> grant_service_pb2.RevokeGrantResponse:
        """Revokes a grant for good.

        Allowed roles: admin, a rights holder for grants of its own characters.

        Args:
            id: The grant's id.
            reason: Why; required, at most 500 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the revoked `grant` and the revocation log's
            `sequence` number of the revocation. An offline authorizer given this
            number refuses to decide offline until it has seen the revocation.

        Raises:
            InvalidArgumentError: If `reason` is empty or too long.
            NotFoundError: If the grant does not exist.
            FailedPreconditionError: If it is already revoked (`GRANT_REVOKED`).
            CharterError: For any other failure.
        """
        response: grant_service_pb2.RevokeGrantResponse = self._unary(
            self._grants.RevokeGrant, grant_service_pb2.RevokeGrantRequest(id=id, reason=reason), timeout
        )
        return response
