# Generated from charter/_async/authorization.py by client_sdk/generate_sync.py; do not edit.
"""Generation time: authorizing a use, the license block, screening prompts, the revocation stream.

The calls of AuthorizationService that generation backends make (verifying grants is in
`verification`). A ``license(...)`` block reports its use through the usage calls, so these
calls build on them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterable, Sequence
from typing import Any

from charter._license import License, license_block
from charter._options import check_timeout, new_request_id, remaining, retry_delays
from charter._requests import UseRequest
from charter._sync.usage import UsageCalls
from charter._sync.watch import RevocationWatch
from charter.decisions import Decision, Detection
from charter.v1 import authorization_service_pb2, envelope_pb2, terms_pb2


class AuthorizationCalls(UsageCalls):
    """Asking whether a use is allowed, before rendering, and following revocations."""

    def authorize(
        self,
        *,
        character_ids: Sequence[str] = (),
        prompt: str = "",
        use_type: int,
        content_rating: int,
        categories: Iterable[int] = (),
        territory: str = "",
        commercial: bool = False,
        duration: dt.timedelta | None = None,
        grants: Sequence[envelope_pb2.Envelope | str] = (),
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Decision:
        """Asks, before rendering, whether the caller's licensee may use these characters this way.

        Every character declared in `character_ids` or named by `prompt` is decided; a denial is
        an answer (`Decision.allowed` is false, with reasons per character), not an error.
        Allowed roles: generator (the licensee is the API key's).

        Args:
            character_ids: The characters the content will show, at most 64, without duplicates.
            prompt: The prompt, at most 8000 characters; every character it names is decided too
                (a match of an ambiguous alias only if the character is declared).
            use_type: How the characters are used, a `charter.v1.UseType` value; required.
            content_rating: The audience rating, a `charter.v1.ContentRating` value; required.
            categories: `charter.v1.ContentCategory` values your own classifiers flagged.
            territory: The ISO 3166-1 alpha-2 code of where the content is served; empty when
                unknown, which fails any terms that restrict territories.
            commercial: Whether the use is commercial (advertising, paid products, monetised).
            duration: The length of the content, for usage records (0 to 24 hours).
            grants: Grant envelopes you hold, as `Envelope` messages or their DSSE JSON text; for
                a character with a presented grant only presented grants are considered.
            request_id: Makes a retry safe: the same id never counts a quota twice. A fresh one
                is used when omitted, so the client's own retries of this call resend it.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The decision, with its signed receipt (`Decision.receipt`) and the detections.

        Raises:
            MalformedEnvelope: If a grant given as text is not well-formed DSSE JSON (raised
                before any call).
            ValueError: If an enum value is unknown, or the server answered with a deny reason
                this SDK does not know (update the SDK).
            TypeError: If an argument has the wrong type.
            InvalidArgumentError: If the request is invalid (see `field_violations`).
            PermissionDeniedError: If the API key is not a generator's.
            CharterError: For any other failure.
        """
        use = UseRequest.of(
            character_ids=character_ids,
            prompt=prompt,
            use_type=use_type,
            content_rating=content_rating,
            categories=categories,
            territory=territory,
            commercial=commercial,
            duration=duration,
            grants=grants,
            request_id=request_id,
        )
        return self._authorize(use, timeout)

    def license(
        self,
        *,
        character_ids: Sequence[str] = (),
        prompt: str = "",
        use_type: int,
        content_rating: int,
        categories: Iterable[int] = (),
        territory: str = "",
        commercial: bool = False,
        duration: dt.timedelta | None = None,
        grants: Sequence[envelope_pb2.Envelope | str] = (),
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> contextlib.AbstractContextManager[License]:
        """Authorizes a use and runs the block only when it is allowed (`with`).

        Entering calls `authorize` with these arguments: a denial raises `LicenseDenied` (with
        the whole `decision` and its `reasons`) and the body never runs. An exception in the
        body records and reports nothing and propagates unchanged. A clean exit marks the
        `License` used, records it in `receipts` and reports the use: one record per allowed
        character, under the key `charter.usage.usage_key(receipt_id, character_id)`, with one
        use, `License.duration` (or the `duration` given here), the revenue given to
        `License.attribute_revenue`, and the exit time. The answers are in
        `License.usage_results`.

        Reporting never raises from the block, since the content was rendered: a report that
        cannot be delivered (the server unreachable after gRPC's retries of `UNAVAILABLE`, or
        the call failing; a block's report is not repeated after `DEADLINE_EXCEEDED`, so a hung
        server delays the exit by one deadline at most) is logged as a warning and waits in
        `pending_usage` for `flush_usage`. Flushing sends the same record under the same key,
        so a report that did reach the server is never counted twice. A record the server
        rejects is in `usage_results` and is not queued. A block that is retried after an
        error authorizes again and gets a new receipt: that is a new use, reported under its
        own key.

        Example:
            ```python
            with client.license(
                prompt=prompt,
                use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
                content_rating=terms_pb2.CONTENT_RATING_TEEN,
            ) as granted:
                image = render(prompt, obligations=granted.obligations)
                granted.attribute_revenue(120, "USD")       # optional, reported with the use
            store(image, receipt=granted.receipt)
            ```

        Args:
            character_ids: As in `authorize`.
            prompt: As in `authorize`.
            use_type: As in `authorize`; required.
            content_rating: As in `authorize`; required.
            categories: As in `authorize`.
            territory: As in `authorize`.
            commercial: As in `authorize`.
            duration: As in `authorize`; reported with the use unless `License.duration` is set.
            grants: As in `authorize`.
            request_id: As in `authorize`.
            timeout: As in `authorize`; also the deadline of the usage report.

        Returns:
            A context manager that yields the `License` (the allowing decision, its receipt
            and obligations).

        Raises:
            LicenseDenied: On entry, when any character is denied.
            MalformedEnvelope: On entry, if a grant given as text is not well-formed DSSE JSON.
            CharterError: On entry, if the call fails (as in `authorize`).
        """
        use = UseRequest.of(
            character_ids=character_ids,
            prompt=prompt,
            use_type=use_type,
            content_rating=content_rating,
            categories=categories,
            territory=territory,
            commercial=commercial,
            duration=duration,
            grants=grants,
            request_id=request_id,
        )
        return license_block(
            lambda: self._authorize(use, timeout),
            self.receipts.record,
            lambda granted: self._report_license(granted, timeout),
        )

    def screen_prompt(self, prompt: str, *, timeout: float | None = None) -> list[Detection]:
        """Finds the characters a prompt names, opted in or not, in every script. Allowed roles: all.

        Args:
            prompt: The prompt, at most 8000 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            Every detection, with its span in code points, ordered by start.

        Raises:
            TypeError: If the prompt is not a string.
            InvalidArgumentError: If the prompt is empty or too long.
            CharterError: For any other failure.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
        response: authorization_service_pb2.ScreenPromptResponse = self._unary(
            self._authorization.ScreenPrompt, authorization_service_pb2.ScreenPromptRequest(prompt=prompt), timeout
        )
        return [Detection.from_proto(detection) for detection in response.detections]

    def simulate_use(
        self,
        *,
        character_ids: Sequence[str] = (),
        prompt: str = "",
        use_type: int,
        content_rating: int,
        categories: Iterable[int] = (),
        territory: str = "",
        commercial: bool = False,
        duration: dt.timedelta | None = None,
        licensee_id: str = "",
        proposed_character_id: str = "",
        proposed_terms: terms_pb2.Terms | None = None,
        timeout: float | None = None,
    ) -> authorization_service_pb2.SimulateUseResponse:
        """What-if: what `authorize` would decide, optionally under proposed terms, counting,
        signing and recording nothing.

        With a licensee, its grants on record decide (for the proposed character, under the
        proposed terms); without one, a valid grant under the character's terms in force (or the
        proposed terms) is assumed. Quotas are not looked at. Allowed roles: admin, auditor;
        rights holder (its own characters only); generator (its own licensee only).

        Example:
            ```python
            answer = client.simulate_use(
                character_ids=[character_id],
                use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
                content_rating=terms_pb2.CONTENT_RATING_MATURE,
                territory="JP",
                proposed_character_id=character_id,
                proposed_terms=new_terms,
            )
            for decision in answer.decisions:
                print(decision.character_id, decision.allowed, list(decision.reasons))
            ```

        Args:
            character_ids: The characters the content would show, at most 64, without duplicates.
            prompt: A prompt to screen, at most 8000 characters; the characters it names are
                decided too (for a rights holder, only its own).
            use_type: A `charter.v1.UseType` value; required.
            content_rating: A `charter.v1.ContentRating` value; required.
            categories: `charter.v1.ContentCategory` values the content is flagged with.
            territory: An ISO 3166-1 alpha-2 code, or empty.
            commercial: Whether the use is commercial.
            duration: The length of the content (0 to 24 hours).
            licensee_id: The licensee whose grants decide; empty for none (a generator key's own
                licensee is used when empty).
            proposed_character_id: The character the proposed terms are for (decided even when
                not in `character_ids`); required with `proposed_terms`.
            proposed_terms: Terms to try instead of the character's, checked as `update_terms`
                checks them.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The `SimulateUseResponse`: `allowed`, `decisions` (per character, with every failed
            term; `terms_version` 0 under the proposed terms), `detections`, `licensee_id` and
            `decide_time`.

        Raises:
            ValueError: If an enum value is unknown, or only one of `proposed_character_id` and
                `proposed_terms` is given.
            TypeError: If an argument has the wrong type.
            InvalidArgumentError: If the request is invalid (see `field_violations`).
            PermissionDeniedError: If the role may not simulate, or a character or licensee is
                not the key's own.
            NotFoundError: If the licensee (or, for staff, the proposed character) does not exist.
            CharterError: For any other failure.
        """
        if (proposed_terms is None) != (not proposed_character_id):
            raise ValueError("give both proposed_character_id and proposed_terms, or neither")
        if not isinstance(licensee_id, str):
            raise TypeError(f"licensee_id must be a string, not {type(licensee_id).__name__}")
        use = UseRequest.of(
            character_ids=character_ids,
            prompt=prompt,
            use_type=use_type,
            content_rating=content_rating,
            categories=categories,
            territory=territory,
            commercial=commercial,
            duration=duration,
        )
        request = authorization_service_pb2.SimulateUseRequest(
            character_ids=use.character_ids, prompt=use.prompt, context=use.context, licensee_id=licensee_id
        )
        if proposed_terms is not None:
            request.proposed.character_id = proposed_character_id
            request.proposed.terms.CopyFrom(proposed_terms)
        response: authorization_service_pb2.SimulateUseResponse = self._unary(
            self._authorization.SimulateUse, request, timeout
        )
        return response

    def preview_terms(
        self, character_id: str, terms: terms_pb2.Terms, *, days: int = 0, timeout: float | None = None
    ) -> authorization_service_pb2.PreviewTermsResponse:
        """What-if over history: the character's decisions of the last `days` days replayed under
        proposed terms, before publishing them; counts, signs and changes nothing.

        Only decisions the character's terms made are replayed (allowed ones, and ones denied only
        for failed terms); quotas are not. Decisions are kept per hour (a validity window applies
        at the start of each hour) and the licensee's platform is taken as it is now. Allowed
        roles: admin, auditor; rights holder (its own characters only).

        Example:
            ```python
            preview = client.preview_terms(character_id, new_terms, days=30)
            print(preview.would_deny, "allowed uses would be denied;", preview.would_allow, "allowed")
            for change in preview.changes:
                print(change.licensee_display_name, change.decisions, change.reason)
            ```

        Args:
            character_id: The character the terms are proposed for.
            terms: The proposed terms, checked as `update_terms` checks them.
            days: How many days back to replay, 1 to 90; 0 for 30.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The `PreviewTermsResponse`: `replayed`, `allowed_then`, `would_deny`, `would_allow`,
            `not_replayed`, `changes` (by licensee and reason, the largest first) and the window
            (`start_time`, `end_time`).

        Raises:
            TypeError: If an argument has the wrong type.
            InvalidArgumentError: If the request is invalid (see `field_violations`).
            PermissionDeniedError: If the role may not preview terms, or the character is not the
                key's own.
            NotFoundError: If (for staff) the character does not exist.
            CharterError: For any other failure.
        """
        if not isinstance(character_id, str):
            raise TypeError(f"character_id must be a string, not {type(character_id).__name__}")
        if not isinstance(terms, terms_pb2.Terms):
            raise TypeError(f"terms must be a charter.v1.Terms, not {type(terms).__name__}")
        if type(days) is not int:
            raise TypeError(f"days must be an int, not {type(days).__name__}")
        request = authorization_service_pb2.PreviewTermsRequest(
            proposed=authorization_service_pb2.ProposedTerms(character_id=character_id, terms=terms), days=days
        )
        response: authorization_service_pb2.PreviewTermsResponse = self._unary(
            self._authorization.PreviewTerms, request, timeout
        )
        return response

    def watch_revocations(
        self, since_sequence: int = 0, *, timeout: float | None = None, registry: bool = False
    ) -> RevocationWatch:
        """Opens the revocation stream: the log's events after `since_sequence`, then live ones.

        The stream yields `charter.v1.grant_pb2.RevocationEvent` messages and, every few
        seconds, a `charter.v1.authorization_service_pb2.Heartbeat` carrying the newest sequence
        number and the server time. It runs until cancelled (`RevocationWatch.cancel`, or
        leaving its `with` block). Allowed roles: all.

        Example:
            ```python
            with client.watch_revocations(since_sequence=last_seen) as watch:
                for message in watch:
                    if isinstance(message, RevocationEvent):
                        last_seen = message.sequence
            ```

        Args:
            since_sequence: Send the events after this sequence number; 0 for the whole log.
            timeout: A deadline for the whole stream in seconds; None (the default) for none,
                not the client's default deadline, since a watch is meant to stay open.
            registry: Also receive ``KIND_REGISTRY_CHANGED`` events (the screening registry
                moved: time to fetch a registry snapshot delta); left out by default.

        Returns:
            The open stream, an iterator of events and heartbeats. Calls happen during
            iteration, so errors are raised from the iteration too.

        Raises:
            ValueError: If `since_sequence` is negative or `timeout` is not positive.
            TypeError: If `since_sequence` is not an int.
            CharterError: From the iteration, if the stream fails (a cancel by the caller is
                not a failure: the iteration just ends).
        """
        if isinstance(since_sequence, bool) or not isinstance(since_sequence, int):
            raise TypeError(f"since_sequence must be an int, not {type(since_sequence).__name__}")
        if since_sequence < 0:
            raise ValueError(f"since_sequence must not be negative, got {since_sequence}")
        check_timeout(timeout, allow_none=True)
        request = authorization_service_pb2.WatchRevocationsRequest(
            since_sequence=since_sequence, registry=bool(registry)
        )
        request_id = new_request_id()
        metadata = self._config.metadata(request_id)
        ends = None if timeout is None else time.monotonic() + timeout

        def start() -> Any:
            return self._watches.WatchRevocations(request, timeout=remaining(ends), metadata=metadata)

        return RevocationWatch(start(), request_id, start, retry_delays(self._config.retry), ends)

    def _authorize(self, use: UseRequest, timeout: float | None) -> Decision:
        response: authorization_service_pb2.AuthorizeResponse = self._unary(
            self._authorization.Authorize, use.to_proto(), timeout
        )
        return Decision.from_response(response)
