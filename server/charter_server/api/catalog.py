"""CatalogService servicer: convert, call the service, convert back."""

from __future__ import annotations

import grpc
from charter.v1 import catalog_service_pb2 as pb
from charter.v1 import catalog_service_pb2_grpc as pb_grpc

from charter_server.api import convert
from charter_server.api.context import current_principal
from charter_server.services.catalog import (
    LICENSEE_MUTABLE,
    RIGHTS_HOLDER_MUTABLE,
    CatalogService,
    LicenseeInput,
    RightsHolderInput,
)


class CatalogServicer(pb_grpc.CatalogServiceServicer):
    """Rights holders and licensees over gRPC."""

    def __init__(self, service: CatalogService) -> None:
        self._service = service

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
