"""CatalogService servicer: convert, call the service, convert back."""

from __future__ import annotations

import grpc
from charter.v1 import catalog_service_pb2 as pb
from charter.v1 import catalog_service_pb2_grpc as pb_grpc
from charter.v1 import terms_pb2

from charter_server.api import convert
from charter_server.api.context import current_principal
from charter_server.services.catalog import (
    LICENSEE_MUTABLE,
    RIGHTS_HOLDER_MUTABLE,
    CatalogService,
    LicenseeInput,
    RightsHolderInput,
)
from charter_server.services.characters import CHARACTER_MUTABLE, CharacterService, ImportRowInput
from charter_server.services.readings import name_warnings

_OUTCOMES = {
    "created": pb.ImportRowResult.OUTCOME_CREATED,
    "updated": pb.ImportRowResult.OUTCOME_UPDATED,
    "unchanged": pb.ImportRowResult.OUTCOME_UNCHANGED,
    "failed": pb.ImportRowResult.OUTCOME_FAILED,
}


class CharacterServicerMixin:
    """Characters, terms, templates, import and collisions over gRPC (part of CatalogService)."""

    _characters: CharacterService

    def CreateCharacter(
        self, request: pb.CreateCharacterRequest, context: grpc.ServicerContext
    ) -> pb.CreateCharacterResponse:
        value = convert.character_input(request.character, "character")
        created = self._characters.create_character(current_principal(), value, request_id=request.request_id)
        warnings = [convert.name_warning(w) for w in name_warnings(created)]
        return pb.CreateCharacterResponse(character=convert.character(created), warnings=warnings)

    def GetCharacter(self, request: pb.GetCharacterRequest, context: grpc.ServicerContext) -> pb.GetCharacterResponse:
        found = self._characters.get_character(current_principal(), request.id)
        return pb.GetCharacterResponse(character=convert.character(found))

    def ListCharacters(
        self, request: pb.ListCharactersRequest, context: grpc.ServicerContext
    ) -> pb.ListCharactersResponse:
        page = self._characters.list_characters(
            current_principal(),
            rights_holder_id=request.rights_holder_id,
            state=convert.character_state(request.state, "state"),
            franchise=request.franchise,
            query=request.query,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListCharactersResponse(
            characters=[convert.character(c) for c in page.items], next_page_token=page.next_page_token
        )

    def UpdateCharacter(
        self, request: pb.UpdateCharacterRequest, context: grpc.ServicerContext
    ) -> pb.UpdateCharacterResponse:
        given = convert.character_input(request.character, "character")
        values = {name: getattr(given, name) for name in CHARACTER_MUTABLE}
        updated = self._characters.update_character(
            current_principal(), request.character.id, values, list(request.update_mask.paths)
        )
        # Warnings about the names this update set, not about names it left as they were.
        paths = set(request.update_mask.paths)
        touched: list[str] = []
        if not paths or paths & {"canonical_name", "canonical_name_ambiguous"}:
            touched.append("character.canonical_name")
        if not paths or "aliases" in paths:
            touched.append("character.aliases")
        warnings = [convert.name_warning(w) for w in name_warnings(updated) if w.field.startswith(tuple(touched))]
        return pb.UpdateCharacterResponse(character=convert.character(updated), warnings=warnings)

    def ArchiveCharacter(
        self, request: pb.ArchiveCharacterRequest, context: grpc.ServicerContext
    ) -> pb.ArchiveCharacterResponse:
        archived = self._characters.archive_character(current_principal(), request.id)
        return pb.ArchiveCharacterResponse(character=convert.character(archived))

    def SuspendCharacter(
        self, request: pb.SuspendCharacterRequest, context: grpc.ServicerContext
    ) -> pb.SuspendCharacterResponse:
        suspended = self._characters.suspend_character(current_principal(), request.id, request.reason)
        return pb.SuspendCharacterResponse(character=convert.character(suspended))

    def ReinstateCharacter(
        self, request: pb.ReinstateCharacterRequest, context: grpc.ServicerContext
    ) -> pb.ReinstateCharacterResponse:
        reinstated = self._characters.reinstate_character(current_principal(), request.id)
        return pb.ReinstateCharacterResponse(character=convert.character(reinstated))

    def OptIn(self, request: pb.OptInRequest, context: grpc.ServicerContext) -> pb.OptInResponse:
        character, terms = self._characters.opt_in(current_principal(), request.character_id, request.terms)
        return pb.OptInResponse(character=convert.character(character), terms=terms)

    def UpdateTerms(self, request: pb.UpdateTermsRequest, context: grpc.ServicerContext) -> pb.UpdateTermsResponse:
        terms = self._characters.update_terms(current_principal(), request.character_id, request.terms)
        return pb.UpdateTermsResponse(terms=terms)

    def OptOut(self, request: pb.OptOutRequest, context: grpc.ServicerContext) -> pb.OptOutResponse:
        character, revoked = self._characters.opt_out(current_principal(), request.character_id, request.reason)
        return pb.OptOutResponse(character=convert.character(character), revoked_grant_count=revoked)

    def GetTerms(self, request: pb.GetTermsRequest, context: grpc.ServicerContext) -> pb.GetTermsResponse:
        terms = self._characters.get_terms(current_principal(), request.character_id, request.version)
        return pb.GetTermsResponse(terms=terms)

    def ListTermsVersions(
        self, request: pb.ListTermsVersionsRequest, context: grpc.ServicerContext
    ) -> pb.ListTermsVersionsResponse:
        page = self._characters.list_terms_versions(
            current_principal(), request.character_id, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListTermsVersionsResponse(terms=page.items, next_page_token=page.next_page_token)

    def ListTermsTemplates(
        self, request: pb.ListTermsTemplatesRequest, context: grpc.ServicerContext
    ) -> pb.ListTermsTemplatesResponse:
        return pb.ListTermsTemplatesResponse(
            templates=[
                terms_pb2.TermsTemplate(name=t.name, description=t.description, terms=t.terms)
                for t in self._characters.list_templates()
            ]
        )

    def ImportCharacters(
        self, request: pb.ImportCharactersRequest, context: grpc.ServicerContext
    ) -> pb.ImportCharactersResponse:
        rows = [
            ImportRowInput(
                convert.character_input(row.character, "character", in_batch=True),
                row.terms if row.HasField("terms") else None,
            )
            for row in request.rows
        ]
        results = self._characters.import_characters(current_principal(), request.rights_holder_id, rows)
        return pb.ImportCharactersResponse(
            results=[
                pb.ImportRowResult(
                    index=r.index,
                    external_id=r.external_id,
                    outcome=_OUTCOMES[r.outcome],
                    character_id=r.character_id,
                    error_reason=r.error_reason,
                    field_violations=[pb.ImportFieldViolation(field=f, description=d) for f, d in r.violations],
                    warnings=[convert.name_warning(w) for w in r.warnings],
                )
                for r in results
            ]
        )

    def ListAliasCollisions(
        self, request: pb.ListAliasCollisionsRequest, context: grpc.ServicerContext
    ) -> pb.ListAliasCollisionsResponse:
        page = self._characters.list_alias_collisions(
            current_principal(), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListAliasCollisionsResponse(
            collisions=[
                pb.AliasCollision(
                    normalized=name,
                    character_ids=characters,
                    rights_holder_ids=holders,
                    kind=pb.AliasCollision.Kind.Value(f"KIND_{kind.upper()}"),
                )
                for name, characters, holders, kind in page.items
            ],
            next_page_token=page.next_page_token,
        )


class CatalogServicer(CharacterServicerMixin, pb_grpc.CatalogServiceServicer):
    """Rights holders and licensees over gRPC."""

    def __init__(self, service: CatalogService, characters: CharacterService) -> None:
        self._service = service
        self._characters = characters

    def CreateRightsHolder(
        self, request: pb.CreateRightsHolderRequest, context: grpc.ServicerContext
    ) -> pb.CreateRightsHolderResponse:
        given = request.rights_holder
        holder = self._service.create_rights_holder(
            current_principal(),
            RightsHolderInput(
                display_name=given.display_name,
                contact_email=given.contact_email,
                legal_name=given.legal_name,
                revenue_share_account=given.revenue_share_account,
            ),
            request_id=request.request_id,
        )
        return pb.CreateRightsHolderResponse(rights_holder=convert.rights_holder(holder))

    def GetRightsHolder(
        self, request: pb.GetRightsHolderRequest, context: grpc.ServicerContext
    ) -> pb.GetRightsHolderResponse:
        holder = self._service.get_rights_holder(current_principal(), request.id)
        return pb.GetRightsHolderResponse(rights_holder=convert.rights_holder(holder))

    def ListRightsHolders(
        self, request: pb.ListRightsHoldersRequest, context: grpc.ServicerContext
    ) -> pb.ListRightsHoldersResponse:
        page = self._service.list_rights_holders(
            current_principal(),
            state=convert.lifecycle(request.state, "state"),
            query=request.query,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListRightsHoldersResponse(
            rights_holders=[convert.rights_holder(h) for h in page.items], next_page_token=page.next_page_token
        )

    def UpdateRightsHolder(
        self, request: pb.UpdateRightsHolderRequest, context: grpc.ServicerContext
    ) -> pb.UpdateRightsHolderResponse:
        given = request.rights_holder
        values = {name: getattr(given, name) for name in RIGHTS_HOLDER_MUTABLE}
        holder = self._service.update_rights_holder(
            current_principal(), given.id, values, list(request.update_mask.paths)
        )
        return pb.UpdateRightsHolderResponse(rights_holder=convert.rights_holder(holder))

    def ArchiveRightsHolder(
        self, request: pb.ArchiveRightsHolderRequest, context: grpc.ServicerContext
    ) -> pb.ArchiveRightsHolderResponse:
        holder = self._service.archive_rights_holder(current_principal(), request.id)
        return pb.ArchiveRightsHolderResponse(rights_holder=convert.rights_holder(holder))

    def CreateLicensee(
        self, request: pb.CreateLicenseeRequest, context: grpc.ServicerContext
    ) -> pb.CreateLicenseeResponse:
        given = request.licensee
        licensee = self._service.create_licensee(
            current_principal(),
            LicenseeInput(
                display_name=given.display_name,
                contact_email=given.contact_email,
                platform=given.platform,
                legal_name=given.legal_name,
            ),
            request_id=request.request_id,
        )
        return pb.CreateLicenseeResponse(licensee=convert.licensee(licensee))

    def GetLicensee(self, request: pb.GetLicenseeRequest, context: grpc.ServicerContext) -> pb.GetLicenseeResponse:
        licensee = self._service.get_licensee(current_principal(), request.id)
        return pb.GetLicenseeResponse(licensee=convert.licensee(licensee))

    def ListLicensees(
        self, request: pb.ListLicenseesRequest, context: grpc.ServicerContext
    ) -> pb.ListLicenseesResponse:
        page = self._service.list_licensees(
            current_principal(),
            state=convert.lifecycle(request.state, "state"),
            query=request.query,
            platform=request.platform,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListLicenseesResponse(
            licensees=[convert.licensee(item) for item in page.items], next_page_token=page.next_page_token
        )

    def GetLicenseeProfile(
        self, request: pb.GetLicenseeProfileRequest, context: grpc.ServicerContext
    ) -> pb.GetLicenseeProfileResponse:
        licensee = self._service.get_licensee_profile(current_principal(), request.id)
        return pb.GetLicenseeProfileResponse(profile=convert.licensee_profile(licensee))

    def ListLicenseeProfiles(
        self, request: pb.ListLicenseeProfilesRequest, context: grpc.ServicerContext
    ) -> pb.ListLicenseeProfilesResponse:
        page = self._service.list_licensee_profiles(
            current_principal(),
            rights_holder_id=request.rights_holder_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListLicenseeProfilesResponse(
            profiles=[convert.licensee_profile(item) for item in page.items], next_page_token=page.next_page_token
        )

    def UpdateLicensee(
        self, request: pb.UpdateLicenseeRequest, context: grpc.ServicerContext
    ) -> pb.UpdateLicenseeResponse:
        given = request.licensee
        values = {name: getattr(given, name) for name in LICENSEE_MUTABLE}
        licensee = self._service.update_licensee(current_principal(), given.id, values, list(request.update_mask.paths))
        return pb.UpdateLicenseeResponse(licensee=convert.licensee(licensee))

    def ArchiveLicensee(
        self, request: pb.ArchiveLicenseeRequest, context: grpc.ServicerContext
    ) -> pb.ArchiveLicenseeResponse:
        licensee = self._service.archive_licensee(current_principal(), request.id)
        return pb.ArchiveLicenseeResponse(licensee=convert.licensee(licensee))
