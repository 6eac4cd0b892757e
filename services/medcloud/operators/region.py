"""A Region as the operator reads it: the region's centres, network nodes, links and carrier
clusters, which inventory registers and backup checks DR plans against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RegionCentre:
    id: str
    display_name: str
    role: str
    city: str
    province: str


@dataclass(frozen=True)
class Link:
    id: str
    a_node: str
    b_node: str
    purpose: str
    medium: str
    distance_km: float
    pairs: tuple[tuple[str, float, float], ...]  # (conduit, up Gbps, down Gbps)

    @property
    def capacity_gbps(self) -> float:
        """What the link carries one way with every pair up: the slower direction of each."""
        return sum(min(up, down) for _, up, down in self.pairs)


@dataclass(frozen=True)
class RegionSpec:
    name: str
    centres: tuple[RegionCentre, ...]
    nodes: tuple[tuple[str, str, str], ...]  # (id, centre id, role)
    links: tuple[Link, ...]
    clusters: tuple[tuple[str, str, str, str], ...]  # (id, centre id, platform, ownership)
    backup_centre_id: str

    def centre_of(self, node_id: str) -> str | None:
        return next((centre for node, centre, _ in self.nodes if node == node_id), None)


def read_link(link: Mapping[str, Any]) -> Link:
    return Link(
        str(link.get("id", "")),
        str(link.get("aNode", "")),
        str(link.get("bNode", "")),
        str(link.get("purpose", "")),
        str(link.get("medium", "")),
        float(link.get("distanceKm") or 0),
        tuple(
            (str(p.get("conduit", "")), float(p.get("upGbps") or 0), float(p.get("downGbps") or 0))
            for p in link.get("pairs") or ()
        ),
    )


def read_region(manifest: Mapping[str, Any]) -> RegionSpec:
    spec = manifest.get("spec") or {}
    return RegionSpec(
        name=str((manifest.get("metadata") or {}).get("name", "")),
        centres=tuple(
            RegionCentre(
                str(c.get("id", "")),
                str(c.get("displayName", "")),
                str(c.get("role", "")),
                str(c.get("city", "")),
                str(c.get("province", "")),
            )
            for c in spec.get("centres") or ()
        ),
        nodes=tuple(
            (str(n.get("id", "")), str(n.get("centreId", "")), str(n.get("role", "")))
            for n in spec.get("nodes") or ()
        ),
        links=tuple(read_link(link) for link in spec.get("links") or ()),
        clusters=tuple(
            (
                str(c.get("id", "")),
                str(c.get("centreId", "")),
                str(c.get("platform", "")),
                str(c.get("ownership", "")),
            )
            for c in spec.get("clusters") or ()
        ),
        backup_centre_id=str(spec.get("backupCentreId", "")),
    )
