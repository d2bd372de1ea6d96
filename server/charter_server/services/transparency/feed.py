"""The log fed by the domain events: one entry per change to what may be rendered or what is owed.

`LogFeed.on_changes` subscribes to the unit of work's events *inside the transaction*
(``EventBus.subscribe_in_transaction``), so an entry is appended exactly when its change commits.
The events name what changed (ids only); the entry is built from the records as they stand in
that same transaction: names and aliases, terms, a grant's claims digest and reason, a key's role
and tenants. Contact e-mail addresses, payment accounts and secrets are never read into it.

Signing keys are logged by the key service itself (it knows the caller and the reason), decision
receipts by the receipt buffer (``receipts``), so their events are left out here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from charter.v1 import api_key_pb2, character_pb2, envelope_pb2, usage_pb2
from charter.v1 import transparency_pb2 as tp

from charter_server.domain import events as ev
from charter_server.domain.models import Character, CharacterState, GrantState, LifecycleState
from charter_server.services.statements import StatementTotal, statement_sums
from charter_server.services.transparency.appender import LogAppender
from charter_server.storage.uow import UnitOfWork

_GRANT_ACTIONS = {
    GrantState.SUSPENDED: tp.GrantLogged.ACTION_SUSPENDED,
    GrantState.REVOKED: tp.GrantLogged.ACTION_REVOKED,
    GrantState.ACTIVE: tp.GrantLogged.ACTION_REINSTATED,
}


_LEASE_ACTIONS = {
    "leased": tp.QuotaLeaseLogged.ACTION_LEASED,
    "renewed": tp.QuotaLeaseLogged.ACTION_RENEWED,
    "returned": tp.QuotaLeaseLogged.ACTION_RETURNED,
    "reclaimed": tp.QuotaLeaseLogged.ACTION_RECLAIMED,
}
_LICENSEE_KEY_ACTIONS = {
    "active": tp.LicenseeKeyLogged.ACTION_REGISTERED,
    "retired": tp.LicenseeKeyLogged.ACTION_RETIRED,
    "revoked": tp.LicenseeKeyLogged.ACTION_REVOKED,
}


def statement_total(total: StatementTotal) -> usage_pb2.StatementTotal:
    """The protobuf form of a statement's total in one currency (the log's entry and the API's
    statements carry the same message)."""
    return usage_pb2.StatementTotal(
        currency_code=total.currency,
        records=total.records,
        uses=total.uses,
        duration_milliseconds=total.duration_ms,
        revenue_minor_units=total.revenue_minor,
        revenue_share_minor_units=total.revenue_share_minor,
        fee_minor_units=total.fee_minor,
        owed_minor_units=total.owed_minor,
    )


def _aliases(character: Character) -> list[character_pb2.Alias]:
    return [
        character_pb2.Alias(
            value=alias.value,
            language=alias.language,
            kind=character_pb2.Alias.Kind.Value(f"KIND_{alias.kind.name}"),
            ambiguous=alias.ambiguous,
        )
        for alias in character.aliases
    ]


class LogFeed:
    """Turns committed changes into log entries, in their transaction."""

    def __init__(self, appender: LogAppender) -> None:
        self._appender = appender

    def on_changes(self, uow: UnitOfWork, events: Sequence[ev.DomainEvent]) -> None:
        """Append the entries of ``events`` (an in-transaction subscriber of the event bus)."""
        opted = {
            e.character_id
            for e in events
            if isinstance(e, ev.CharacterStateChanged)
            and CharacterState.OPTED_IN in (e.state_before, e.state_after)
            and CharacterState.OPTED_OUT in (e.state_before, e.state_after)
        }
        for event in events:
            if isinstance(event, ev.RightsHolderCreated | ev.RightsHolderChanged):
                self._rights_holder(uow, event)
            elif isinstance(event, ev.CharacterCreated):
                self._character(uow, event.character_id, tp.CharacterLogged.ACTION_CREATED)
            elif isinstance(event, ev.AliasesChanged):
                self._character(uow, event.character_id, tp.CharacterLogged.ACTION_RENAMED)
            elif isinstance(event, ev.CharacterStateChanged):
                self._character_state(uow, event)
            elif isinstance(event, ev.TermsChanged) and event.character_id not in opted:
                self._terms(uow, event.character_id, event.version, tp.TermsLogged.ACTION_UPDATED)
            elif isinstance(event, ev.GrantIssued | ev.GrantStateChanged):
                self._grant(uow, event)
            elif isinstance(event, ev.ApiKeyCreated | ev.ApiKeyRevoked):
                self._api_key(uow, event)
            elif isinstance(event, ev.LicenseeCreated | ev.LicenseeChanged):
                self._licensee(uow, event)
            elif isinstance(event, ev.LicenseeKeyChanged):
                self._licensee_key(uow, event)
            elif isinstance(event, ev.QuotaLeaseChanged):
                self._quota_lease(uow, event)
            elif isinstance(event, ev.StatementPeriodClosed):
                self._statement(uow, event)

    def _rights_holder(self, uow: UnitOfWork, event: ev.RightsHolderCreated | ev.RightsHolderChanged) -> None:
        holder = uow.rights_holders.get(event.rights_holder_id)
        if holder is None:
            return
        if isinstance(event, ev.RightsHolderCreated):
            action = tp.RightsHolderLogged.ACTION_CREATED
        elif event.state_after is LifecycleState.ARCHIVED and event.state_before is not LifecycleState.ARCHIVED:
            action = tp.RightsHolderLogged.ACTION_ARCHIVED
        else:
            action = tp.RightsHolderLogged.ACTION_RENAMED
        message = tp.RightsHolderLogged(
            action=action, rights_holder_id=holder.id, display_name=holder.display_name, legal_name=holder.legal_name
        )
        self._appender.append(uow, "rights_holder", message, rights_holder_id=holder.id)

    def _character(self, uow: UnitOfWork, character_id: str, action: int) -> None:
        character = uow.characters.get(character_id)
        if character is None:
            return
        message = tp.CharacterLogged(
            action=action,  # type: ignore[arg-type]
            character_id=character.id,
            rights_holder_id=character.rights_holder_id,
            canonical_name=character.canonical_name,
            aliases=_aliases(character),
        )
        self._appender.append(uow, "character", message, rights_holder_id=character.rights_holder_id)

    def _character_state(self, uow: UnitOfWork, event: ev.CharacterStateChanged) -> None:
        before, after = event.state_before, event.state_after
        if after is CharacterState.SUSPENDED:
            self._character(uow, event.character_id, tp.CharacterLogged.ACTION_SUSPENDED)
        elif after is CharacterState.ARCHIVED:
            self._character(uow, event.character_id, tp.CharacterLogged.ACTION_ARCHIVED)
        elif before is CharacterState.SUSPENDED:
            self._character(uow, event.character_id, tp.CharacterLogged.ACTION_REINSTATED)
        elif after is CharacterState.OPTED_IN and before is CharacterState.OPTED_OUT:
            character = uow.characters.get(event.character_id)
            version = character.terms_version if character is not None else 0
            self._terms(uow, event.character_id, version, tp.TermsLogged.ACTION_OPTED_IN)
        elif after is CharacterState.OPTED_OUT and before is CharacterState.OPTED_IN:
            character = uow.characters.get(event.character_id)
            version = character.terms_version if character is not None else 0
            self._terms(uow, event.character_id, version, tp.TermsLogged.ACTION_OPTED_OUT)

    def _terms(self, uow: UnitOfWork, character_id: str, version: int, action: int) -> None:
        character = uow.characters.get(character_id)
        if character is None:
            return
        message = tp.TermsLogged(
            action=action,  # type: ignore[arg-type]
            character_id=character_id,
            rights_holder_id=character.rights_holder_id,
            terms_version=version,
        )
        terms = uow.terms.get(character_id, version) if action != tp.TermsLogged.ACTION_OPTED_OUT else None
        if terms is not None:
            message.terms.CopyFrom(terms)
        self._appender.append(uow, "terms", message, rights_holder_id=character.rights_holder_id)

    def _grant(self, uow: UnitOfWork, event: ev.GrantIssued | ev.GrantStateChanged) -> None:
        grant = uow.grants.get(event.grant_id)
        if grant is None:
            return
        if isinstance(event, ev.GrantIssued):
            action, reason = tp.GrantLogged.ACTION_ISSUED, ""
        else:
            action, reason = _GRANT_ACTIONS[event.state_after], grant.state_reason
        message = tp.GrantLogged(
            action=action,
            grant_id=grant.id,
            character_id=grant.character_id,
            rights_holder_id=grant.rights_holder_id,
            licensee_id=grant.licensee_id,
            terms_version=grant.terms_version,
            claims_digest=hashlib.sha256(envelope_pb2.Envelope.FromString(grant.envelope).payload).digest(),
            reason=reason,
        )
        self._appender.append(
            uow, "grant", message, rights_holder_id=grant.rights_holder_id, licensee_id=grant.licensee_id
        )

    def _api_key(self, uow: UnitOfWork, event: ev.ApiKeyCreated | ev.ApiKeyRevoked) -> None:
        key = uow.api_keys.get(event.api_key_id)
        if key is None:
            return
        created = isinstance(event, ev.ApiKeyCreated)
        message = tp.ApiKeyLogged(
            action=tp.ApiKeyLogged.ACTION_CREATED if created else tp.ApiKeyLogged.ACTION_REVOKED,
            api_key_id=key.id,
            role=api_key_pb2.Role.Value(f"ROLE_{key.role.name}"),
            rights_holder_id=key.rights_holder_id or "",
            licensee_id=key.licensee_id or "",
        )
        if key.expire_time is not None:
            message.expire_time.FromDatetime(key.expire_time)
        self._appender.append(
            uow,
            "api_key",
            message,
            actor_key_id=key.creator_key_id if created else None,  # revoked: by the caller
            rights_holder_id=key.rights_holder_id or "",
            licensee_id=key.licensee_id or "",
        )

    def _licensee(self, uow: UnitOfWork, event: ev.LicenseeCreated | ev.LicenseeChanged) -> None:
        if isinstance(event, ev.LicenseeCreated):
            action = tp.LicenseeLogged.ACTION_CREATED
        elif event.state_after is LifecycleState.ARCHIVED and event.state_before is not LifecycleState.ARCHIVED:
            action = tp.LicenseeLogged.ACTION_ARCHIVED
        elif event.platform_changed:
            action = tp.LicenseeLogged.ACTION_PLATFORM_CHANGED
        else:
            return  # a new display name or contact changes nothing that may be rendered
        licensee = uow.licensees.get(event.licensee_id)
        if licensee is None:
            return
        message = tp.LicenseeLogged(
            action=action, licensee_id=licensee.id, display_name=licensee.display_name, platform=licensee.platform
        )
        self._appender.append(uow, "licensee", message, licensee_id=licensee.id)

    def _licensee_key(self, uow: UnitOfWork, event: ev.LicenseeKeyChanged) -> None:
        key = uow.licensee_keys.get(event.key_id)
        if key is None:
            return
        message = tp.LicenseeKeyLogged(
            action=_LICENSEE_KEY_ACTIONS[event.state],
            key_id=key.key_id,
            licensee_id=key.licensee_id,
            public_key=key.public_key,
            reason=event.reason,
        )
        self._appender.append(uow, "licensee_key", message, licensee_id=key.licensee_id)

    def _statement(self, uow: UnitOfWork, event: ev.StatementPeriodClosed) -> None:
        # The totals as the closed statement states them (its UsageLogged entries add up to them).
        _, totals = statement_sums(
            uow.statements.period_sums([(event.rights_holder_id, event.period)]), with_lines=False
        )
        message = tp.StatementLogged(
            rights_holder_id=event.rights_holder_id,
            period=event.period,
            totals=[statement_total(total) for total in totals],
        )
        self._appender.append(uow, "statement", message, rights_holder_id=event.rights_holder_id)

    def _quota_lease(self, uow: UnitOfWork, event: ev.QuotaLeaseChanged) -> None:
        lease = uow.leases.get(event.lease_id)
        grant = uow.grants.get(lease.grant_id) if lease is not None else None
        if lease is None or grant is None:
            return
        message = tp.QuotaLeaseLogged(
            action=_LEASE_ACTIONS[event.action],
            lease_id=lease.lease_id,
            licensee_id=lease.licensee_id,
            character_id=lease.character_id,
            rights_holder_id=grant.rights_holder_id,
            grant_id=lease.grant_id,
            uses=lease.uses,
            reported_uses=lease.reported,
        )
        message.expire_time.FromDatetime(lease.expire_time)
        self._appender.append(
            uow, "quota_lease", message, rights_holder_id=grant.rights_holder_id, licensee_id=lease.licensee_id
        )
