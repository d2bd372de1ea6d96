"""Rights holders and licensees: create, read, list, update by field mask, archive."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import FailedPrecondition, NotFound, PermissionDenied
from charter_server.domain.models import Licensee, LifecycleState, Page, Principal, RightsHolder, Role
from charter_server.services import pagination
from charter_server.services.idempotency import create_once
from charter_server.services.ownership import (
    not_owned,
    require_licensee,
    require_rights_holder,
    scoped_rights_holder,
)
from charter_server.services.validation import Checker, check_id
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

RIGHTS_HOLDER_MUTABLE = ("display_name", "legal_name", "contact_email", "revenue_share_account")
LICENSEE_MUTABLE = ("display_name", "legal_name", "contact_email", "platform")


@dataclass(frozen=True, slots=True)
class RightsHolderInput:
    """The caller-settable fields of a rights holder."""

    display_name: str
    contact_email: str
    legal_name: str = ""
    revenue_share_account: str = ""


@dataclass(frozen=True, slots=True)
class LicenseeInput:
    """The caller-settable fields of a licensee."""

    display_name: str
    contact_email: str
    platform: str
    legal_name: str = ""


def _check_rights_holder(checker: Checker, value: RightsHolderInput, fields: Sequence[str], prefix: str) -> None:
    if "display_name" in fields:
        checker.text(f"{prefix}.display_name", value.display_name, max_len=200, required=True)
    if "legal_name" in fields:
        checker.text(f"{prefix}.legal_name", value.legal_name, max_len=300)
    if "contact_email" in fields:
        checker.email(f"{prefix}.contact_email", value.contact_email)
    if "revenue_share_account" in fields:
        checker.text(f"{prefix}.revenue_share_account", value.revenue_share_account, max_len=200)


def _check_licensee(checker: Checker, value: LicenseeInput, fields: Sequence[str], prefix: str) -> None:
    if "display_name" in fields:
        checker.text(f"{prefix}.display_name", value.display_name, max_len=200, required=True)
    if "legal_name" in fields:
        checker.text(f"{prefix}.legal_name", value.legal_name, max_len=300)
    if "contact_email" in fields:
        checker.email(f"{prefix}.contact_email", value.contact_email)
    if "platform" in fields:
        checker.slug(f"{prefix}.platform", value.platform)


def _update_paths(
    checker: Checker, paths: Sequence[str], values: Mapping[str, str], mutable: Sequence[str]
) -> list[str]:
    """The fields an update touches: the mask's paths, or every non-empty mutable field."""
    if not paths:
        return [name for name in mutable if values.get(name)]
    chosen: list[str] = []
    for path in paths:
        if path not in mutable:
            checker.add("update_mask", f"unknown or immutable field {path!r}; allowed: {', '.join(mutable)}")
        elif path not in chosen:
            chosen.append(path)
    return chosen


def _require_profile_reader(principal: Principal) -> None:
    # The role table admits no generator; this keeps the service safe on its own.
    if principal.role is Role.GENERATOR:
        raise PermissionDenied("generator keys may not read licensee profiles", reason="ROLE_NOT_PERMITTED")


def _query(checker: Checker, query: str) -> None:
    checker.text("query", query, max_len=200)


class CatalogService:
    """Rights holders and licensees."""

    def __init__(self, db: Database, clock: Clock) -> None:
        # Licensee changes announce themselves (``LicenseeChanged``, see ``storage.uow``).
        self._db = db
        self._clock = clock

    # Rights holders -------------------------------------------------------------------------

    def create_rights_holder(
        self, principal: Principal, value: RightsHolderInput, *, request_id: str = ""
    ) -> RightsHolder:
        """Create a rights holder (idempotent per ``request_id``)."""
        checker = Checker()
        _check_rights_holder(checker, value, RIGHTS_HOLDER_MUTABLE, "rights_holder")
        checker.request_id(request_id)
        checker.done()

        def create(uow: UnitOfWork) -> str:
            now = self._clock.now()
            holder = RightsHolder(
                id=ids.new_id("rights_holder"),
                display_name=value.display_name.strip(),
                legal_name=value.legal_name.strip(),
                contact_email=value.contact_email,
                revenue_share_account=value.revenue_share_account.strip(),
                state=LifecycleState.ACTIVE,
                create_time=now,
                update_time=now,
                archive_time=None,
            )
            uow.rights_holders.add(holder)
            return holder.id

        holder, created = create_once(
            self._db, self._clock, principal, "CreateRightsHolder", request_id, value, create, self._load_rights_holder
        )
        if created:
            log.info("rights_holder.created", rights_holder_id=holder.id)
        return holder

    def get_rights_holder(self, principal: Principal, holder_id: str) -> RightsHolder:
        """One rights holder."""
        check_id("id", holder_id, "rights_holder")
        require_rights_holder(principal, holder_id)
        with self._db.uow() as uow:
            return self._load_rights_holder(uow, holder_id)

    def list_rights_holders(
        self,
        principal: Principal,
        *,
        state: LifecycleState | None,
        query: str,
        page_size: int,
        page_token: str,
    ) -> Page[RightsHolder]:
        """A page of rights holders; a rights-holder key sees only its own."""
        checker = Checker()
        _query(checker, query)
        checker.done()
        size = pagination.page_size(page_size)
        effective_state = state or LifecycleState.ACTIVE
        filters = f"rh|{effective_state}|{query}"
        after = pagination.decode(self._db.page_token_key(), page_token, filters)
        only = principal.rights_holder_id if principal.role is Role.RIGHTS_HOLDER else None
        with self._db.uow() as uow:
            items, more = uow.rights_holders.list(
                state=effective_state, query=query, only_id=only, after=after, limit=size
            )
        return Page(items, pagination.encode(self._db.page_token_key(), more, filters))

    def update_rights_holder(
        self, principal: Principal, holder_id: str, values: Mapping[str, str], paths: Sequence[str]
    ) -> RightsHolder:
        """Change the fields named in ``paths`` (or every non-empty one when ``paths`` is empty)."""
        checker = Checker()
        checker.resource_id("rights_holder.id", holder_id, "rights_holder")
        fields = _update_paths(checker, paths, values, RIGHTS_HOLDER_MUTABLE)
        if not fields and not checker.violations:
            checker.add("update_mask", "names no field to update")
        proposed = RightsHolderInput(**{name: values.get(name, "") for name in RIGHTS_HOLDER_MUTABLE})
        _check_rights_holder(checker, proposed, fields, "rights_holder")
        checker.done()
        require_rights_holder(principal, holder_id)
        with self._db.uow(write=True) as uow:
            holder = self._load_rights_holder(uow, holder_id)
            if holder.state is LifecycleState.ARCHIVED:
                raise FailedPrecondition("the rights holder is archived", reason="RIGHTS_HOLDER_ARCHIVED")
            changes = {name: getattr(proposed, name).strip() for name in fields}
            holder = dataclasses.replace(holder, **changes, update_time=self._clock.now())
            uow.rights_holders.save(holder)
            uow.commit()
        log.info("rights_holder.updated", rights_holder_id=holder_id, fields=fields)
        return holder

    def archive_rights_holder(self, principal: Principal, holder_id: str) -> RightsHolder:
        """Archive a rights holder; archiving an archived one changes nothing."""
        check_id("id", holder_id, "rights_holder")
        require_rights_holder(principal, holder_id)
        with self._db.uow(write=True) as uow:
            holder = self._load_rights_holder(uow, holder_id)
            if holder.state is LifecycleState.ARCHIVED:
                return holder
            now = self._clock.now()
            holder = dataclasses.replace(holder, state=LifecycleState.ARCHIVED, update_time=now, archive_time=now)
            uow.rights_holders.save(holder)
            uow.commit()
        log.info("rights_holder.archived", rights_holder_id=holder_id)
        return holder

    @staticmethod
    def _load_rights_holder(uow: UnitOfWork, holder_id: str) -> RightsHolder:
        holder = uow.rights_holders.get(holder_id)
        if holder is None:
            raise NotFound("no such rights holder", reason="RIGHTS_HOLDER_NOT_FOUND", metadata={"id": holder_id})
        return holder

    # Licensees ------------------------------------------------------------------------------

    def create_licensee(self, principal: Principal, value: LicenseeInput, *, request_id: str = "") -> Licensee:
        """Create a licensee (idempotent per ``request_id``)."""
        checker = Checker()
        _check_licensee(checker, value, LICENSEE_MUTABLE, "licensee")
        checker.request_id(request_id)
        checker.done()

        def create(uow: UnitOfWork) -> str:
            now = self._clock.now()
            licensee = Licensee(
                id=ids.new_id("licensee"),
                display_name=value.display_name.strip(),
                legal_name=value.legal_name.strip(),
                contact_email=value.contact_email,
                platform=value.platform,
                state=LifecycleState.ACTIVE,
                create_time=now,
                update_time=now,
                archive_time=None,
            )
            uow.licensees.add(licensee)
            return licensee.id

        licensee, created = create_once(
            self._db, self._clock, principal, "CreateLicensee", request_id, value, create, self._load_licensee
        )
        if created:
            log.info("licensee.created", licensee_id=licensee.id)
        return licensee

    def get_licensee(self, principal: Principal, licensee_id: str) -> Licensee:
        """One licensee."""
        check_id("id", licensee_id, "licensee")
        require_licensee(principal, licensee_id)
        with self._db.uow() as uow:
            return self._load_licensee(uow, licensee_id)

    def list_licensees(
        self,
        principal: Principal,
        *,
        state: LifecycleState | None,
        query: str,
        platform: str,
        page_size: int,
        page_token: str,
    ) -> Page[Licensee]:
        """A page of licensees."""
        checker = Checker()
        _query(checker, query)
        if platform:
            checker.slug("platform", platform)
        checker.done()
        size = pagination.page_size(page_size)
        effective_state = state or LifecycleState.ACTIVE
        filters = f"lic|{effective_state}|{query}|{platform}"
        after = pagination.decode(self._db.page_token_key(), page_token, filters)
        with self._db.uow() as uow:
            items, more = uow.licensees.list(
                state=effective_state, query=query, platform=platform, after=after, limit=size
            )
        return Page(items, pagination.encode(self._db.page_token_key(), more, filters))

    def update_licensee(
        self, principal: Principal, licensee_id: str, values: Mapping[str, str], paths: Sequence[str]
    ) -> Licensee:
        """Change the fields named in ``paths`` (or every non-empty one when ``paths`` is empty)."""
        checker = Checker()
        checker.resource_id("licensee.id", licensee_id, "licensee")
        fields = _update_paths(checker, paths, values, LICENSEE_MUTABLE)
        if not fields and not checker.violations:
            checker.add("update_mask", "names no field to update")
        proposed = LicenseeInput(**{name: values.get(name, "") for name in LICENSEE_MUTABLE})
        _check_licensee(checker, proposed, fields, "licensee")
        checker.done()
        require_licensee(principal, licensee_id)
        with self._db.uow(write=True) as uow:
            licensee = self._load_licensee(uow, licensee_id)
            if licensee.state is LifecycleState.ARCHIVED:
                raise FailedPrecondition("the licensee is archived", reason="LICENSEE_ARCHIVED")
            changes = {name: getattr(proposed, name).strip() for name in fields}
            licensee = dataclasses.replace(licensee, **changes, update_time=self._clock.now())
            uow.licensees.save(licensee)
            uow.commit()
        log.info("licensee.updated", licensee_id=licensee_id, fields=fields)
        return licensee

    def archive_licensee(self, principal: Principal, licensee_id: str) -> Licensee:
        """Archive a licensee; archiving an archived one changes nothing."""
        check_id("id", licensee_id, "licensee")
        require_licensee(principal, licensee_id)
        with self._db.uow(write=True) as uow:
            licensee = self._load_licensee(uow, licensee_id)
            if licensee.state is LifecycleState.ARCHIVED:
                return licensee
            now = self._clock.now()
            licensee = dataclasses.replace(licensee, state=LifecycleState.ARCHIVED, update_time=now, archive_time=now)
            uow.licensees.save(licensee)
            uow.commit()
        log.info("licensee.archived", licensee_id=licensee_id)
        return licensee

    # Licensee profiles: what rights holders may read about their licensees ------------------

    def get_licensee_profile(self, principal: Principal, licensee_id: str) -> Licensee:
        """One licensee, for its public profile; a rights-holder key reaches only the licensees that
        hold or held a grant on its characters (any other, existing or not, is not owned)."""
        check_id("id", licensee_id, "licensee")
        _require_profile_reader(principal)
        with self._db.uow() as uow:
            if principal.role is Role.RIGHTS_HOLDER:
                licensee = uow.licensees.granted_by(principal.rights_holder_id or "", licensee_id)
                if licensee is None:
                    raise not_owned()
                return licensee
            return self._load_licensee(uow, licensee_id)

    def list_licensee_profiles(
        self, principal: Principal, *, rights_holder_id: str, page_size: int, page_token: str
    ) -> Page[Licensee]:
        """A page of licensees for their public profiles, in every state; a rights-holder key sees
        only the licensees that hold or held a grant on its characters."""
        checker = Checker()
        checker.resource_id("rights_holder_id", rights_holder_id, "rights_holder", required=False)
        checker.done()
        _require_profile_reader(principal)
        rights_holder_id = scoped_rights_holder(principal, rights_holder_id)
        size = pagination.page_size(page_size)
        filters = f"profiles|{rights_holder_id}"
        after = pagination.decode(self._db.page_token_key(), page_token, filters)
        with self._db.uow() as uow:
            items, more = uow.licensees.list_granted(rights_holder_id=rights_holder_id, after=after, limit=size)
        return Page(items, pagination.encode(self._db.page_token_key(), more, filters))

    @staticmethod
    def _load_licensee(uow: UnitOfWork, licensee_id: str) -> Licensee:
        licensee = uow.licensees.get(licensee_id)
        if licensee is None:
            raise NotFound("no such licensee", reason="LICENSEE_NOT_FOUND", metadata={"id": licensee_id})
        return licensee
