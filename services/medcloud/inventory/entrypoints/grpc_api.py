"""The gRPC API `medcloud.inventory.v1.InventoryService`: it only translates requests into use
cases and results (or domain errors, mapped by the runtime) back into responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from medcloud.core import access
from medcloud.inventory.adapters.codecs import (
    KINDS,
    claim_from_proto,
    claim_to_proto,
    resources_to_proto,
)
from medcloud.inventory.app.capacity import Capacity
from medcloud.inventory.app.facts import Facts
from medcloud.inventory.app.records import Record
from medcloud.inventory.domain import model
from medcloud.inventory.domain.candidates import CandidateRequest, find_candidates
from medcloud.inventory.domain.topology import validate_topology
from medcloud.inventory.v1 import inventory_pb2 as pb
from medcloud.inventory.v1 import inventory_service_pb2 as api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as api_grpc
from medcloud.runtime.grpc_server import ServiceBinding
from medcloud.runtime.proto_enums import enum_from_proto
from medcloud.runtime.store import Mirror

SERVICE_NAME = api.DESCRIPTOR.services_by_name["InventoryService"].full_name

# Per kind: the plural in RPC names, and the list filter a request asks for.
_LIST_FILTERS: dict[str, tuple[str, Callable[[Any], Callable[[Any], bool]]]] = {
    "centre": (
        "Centres",
        lambda r: lambda c: not r.role or c.role.name == pb.CentreRole.Name(r.role)[12:],
    ),
    "node": ("NetworkNodes", lambda r: lambda n: not r.centre_id or n.centre_id == r.centre_id),
    "link": (
        "Links",
        lambda r: lambda link: not r.node_id or r.node_id in (link.a_node_id, link.b_node_id),
    ),
    "cluster": ("Clusters", lambda r: lambda c: not r.centre_id or c.centre_id == r.centre_id),
    "host": ("Hosts", lambda r: lambda h: not r.cluster_id or h.cluster_id == r.cluster_id),
    "pool": ("StoragePools", lambda r: lambda p: not r.centre_id or p.centre_id == r.centre_id),
    "flavor": ("Flavors", lambda r: lambda f: True),
}


def _role_filter(role_number: int) -> Callable[[model.Centre], bool]:
    if not role_number:
        return lambda centre: True
    role = enum_from_proto(role_number, pb.CentreRole, model.CentreRole, "role")
    return lambda centre: centre.role is role


def _crud_handlers(kind: str) -> dict[str, Callable[..., Any]]:
    """The Create, Get, List, Update and Delete handlers of one kind."""
    mapping = KINDS[kind]
    name = mapping.message.DESCRIPTOR.name
    plural, list_filter = _LIST_FILTERS[kind]

    def respond(response: str, record: Record[Any]) -> Any:
        return getattr(api, response)(**{mapping.field: mapping.to_proto(record)})

    async def create(self: InventoryApi, request: Any, context: grpc.aio.ServicerContext) -> Any:
        fact = mapping.from_proto(getattr(request, mapping.field))
        return respond(f"Create{name}Response", await self.facts.create(kind, fact))

    async def get(self: InventoryApi, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return respond(f"Get{name}Response", await self.facts.get(kind, request.id))

    async def list_(self: InventoryApi, request: Any, context: grpc.aio.ServicerContext) -> Any:
        records, next_token = await self.facts.list(
            kind, request.page_size, request.page_token, list_filter(request)
        )
        return getattr(api, f"List{plural}Response")(
            **{f"{mapping.field}s": [mapping.to_proto(r) for r in records]},
            next_page_token=next_token,
        )

    async def update(self: InventoryApi, request: Any, context: grpc.aio.ServicerContext) -> Any:
        message = getattr(request, mapping.field)
        record = await self.facts.update(kind, mapping.from_proto(message), message.generation)
        return respond(f"Update{name}Response", record)

    async def delete(self: InventoryApi, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.facts.delete(kind, request.id, request.generation)
        return getattr(api, f"Delete{name}Response")()

    return {
        f"Create{name}": create,
        f"Get{name}": get,
        f"List{plural}": list_,
        f"Update{name}": update,
        f"Delete{name}": delete,
    }


class InventoryApi(api_grpc.InventoryServiceServicer):
    """Serves InventoryService over the Facts and Capacity use cases."""

    def __init__(self, facts: Facts, capacity: Capacity, mirrors: dict[str, Mirror[Any]]) -> None:
        self.facts = facts
        self.capacity = capacity
        self._mirrors = mirrors

    async def PutClaim(self, request: api.PutClaimRequest, context: Any) -> api.PutClaimResponse:
        claim = await self.capacity.put_claim(claim_from_proto(request.claim))
        return api.PutClaimResponse(claim=claim_to_proto(claim))

    async def GetClaim(self, request: api.GetClaimRequest, context: Any) -> api.GetClaimResponse:
        return api.GetClaimResponse(
            claim=claim_to_proto(await self.capacity.get_claim(request.consumer_id))
        )

    async def ReleaseClaim(
        self, request: api.ReleaseClaimRequest, context: Any
    ) -> api.ReleaseClaimResponse:
        await self.capacity.release_claim(request.consumer_id)
        return api.ReleaseClaimResponse()

    async def ListAllocationCandidates(
        self, request: api.ListAllocationCandidatesRequest, context: Any
    ) -> api.ListAllocationCandidatesResponse:
        """Answered from mirrors kept by watches: fast at province scale, possibly a moment behind;
        PutClaim re-checks every figure in its transaction."""
        wanted = CandidateRequest(
            vcpu=request.vcpu,
            memory_gib=request.memory_gib,
            storage_class=(
                enum_from_proto(
                    request.storage_class, pb.StorageClass, model.StorageClass, "storage_class"
                )
                if request.storage_class
                else None
            ),
            storage_gib=request.storage_gib,
            required_traits=frozenset(request.required_traits),
            forbidden_traits=frozenset(request.forbidden_traits),
            excluded_host_ids=frozenset(request.excluded_host_ids),
            centre_ids=frozenset(request.centre_ids),
            cities=frozenset(request.cities),
            ownership=(
                enum_from_proto(request.ownership, pb.Ownership, model.Ownership, "ownership")
                if request.ownership
                else None
            ),
            limit=min(request.limit or 100, 1000),
        )
        facts = {kind: mirror.items for kind, mirror in self._mirrors.items()}
        found = find_candidates(
            wanted,
            {key: record.fact for key, record in facts["centre"].items()},
            {key: record.fact for key, record in facts["cluster"].items()},
            ((record.fact, record.used) for record in facts["host"].values()),
            ((record.fact, record.used) for record in facts["pool"].values()),
        )
        return api.ListAllocationCandidatesResponse(
            candidates=[
                api.AllocationCandidate(
                    centre_id=c.centre_id,
                    host_id=c.host_id,
                    pool_id=c.pool_id,
                    free=resources_to_proto(c.free),
                )
                for c in found
            ]
        )

    async def ValidateTopology(
        self, request: api.ValidateTopologyRequest, context: Any
    ) -> api.ValidateTopologyResponse:
        findings = validate_topology(await self.facts.region())
        return api.ValidateTopologyResponse(
            findings=[
                pb.Finding(requirement_id=f.requirement_id, subject=f.subject, message=f.message)
                for f in findings
            ]
        )


for _kind in KINDS:
    for _rpc, _handler in _crud_handlers(_kind).items():
        setattr(InventoryApi, _rpc, _handler)


def _action(method: str) -> str:
    if method in ("PutClaim", "ReleaseClaim"):
        return access.INVENTORY_CLAIM
    if method.startswith(("Create", "Update", "Delete")):
        return access.INVENTORY_WRITE
    return access.INVENTORY_READ


ACTIONS = {
    method: _action(method)
    for method in api.DESCRIPTOR.services_by_name["InventoryService"].methods_by_name
}


def binding(servicer: InventoryApi) -> ServiceBinding:
    return ServiceBinding(
        SERVICE_NAME,
        lambda server: api_grpc.add_InventoryServiceServicer_to_server(servicer, server),
        ACTIONS,
    )
