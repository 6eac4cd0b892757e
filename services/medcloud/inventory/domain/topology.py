"""The topology rules of clause 7 and annex A: what a region's rooms, links, storage and flavors must
show, each rule a small function tagged with the requirement it checks."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from medcloud.inventory.domain.model import (
    Centre,
    CentreRole,
    Link,
    LinkMedium,
    LinkPurpose,
    NetworkNode,
    NodeRole,
    Region,
    StorageClass,
)
from medcloud.inventory.domain.validation import MAX_INSTANCE_MEMORY_GIB, MAX_INSTANCE_VCPU


@dataclass(frozen=True)
class Finding:
    """One way a region falls short of one requirement."""

    requirement_id: str
    subject: str
    message: str


# A rule yields (subject, message) for each breach; the requirement ID comes from its tag.
Rule = Callable[[Region], Iterable[tuple[str, str]]]

RULES: list[tuple[str, Rule]] = []


def rule(requirement_id: str) -> Callable[[Rule], Rule]:
    """Registers a rule under the requirement it checks; rules run in the order they are defined."""

    def register(check: Rule) -> Rule:
        RULES.append((requirement_id, check))
        return check

    return register


def validate_topology(region: Region) -> list[Finding]:
    """Every way the region falls short, in the order of RULES and, within a rule, in the order the
    region lists its facts; an empty list means the region is compliant."""
    return [
        Finding(requirement_id, subject, message)
        for requirement_id, check in RULES
        for subject, message in check(region)
    ]


_ROOM_NAME = {
    CentreRole.HOSPITAL_ROOM: "hospital room",
    CentreRole.CARRIER_PRODUCTION: "carrier production room",
    CentreRole.CARRIER_STANDBY: "carrier standby room",
    CentreRole.BACKUP_CENTRE: "backup centre",
    CentreRole.BRANCH_HOSPITAL: "branch hospital",
}

_NODE_NAME = {
    NodeRole.CORE_A: "core node A",
    NodeRole.CORE_B: "core node B",
    NodeRole.CORE: "core node",
    NodeRole.BRANCH_ACCESS: "branch access node",
}

# The nodes each kind of room holds in "three centres, four nodes, one backup"; annex A counts the
# backup centre outside the four nodes and names no node for it, so it needs none.
_NODES_OF_ROOM = {
    CentreRole.HOSPITAL_ROOM: (NodeRole.CORE_A, NodeRole.CORE_B),
    CentreRole.CARRIER_PRODUCTION: (NodeRole.CORE,),
    CentreRole.CARRIER_STANDBY: (NodeRole.CORE,),
    CentreRole.BACKUP_CENTRE: (),
}


def _centres(region: Region, role: CentreRole) -> list[Centre]:
    return [centre for centre in region.centres if centre.role is role]


def _same_place(name: str, other: str) -> bool:
    # Cities and provinces are typed by people: "Guangzhou" and "guangzhou " are one city.
    return name.strip().casefold() == other.strip().casefold()


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sentence_start(text: str) -> str:
    # str.capitalize() would also lower "core node A" to "core node a".
    return text[:1].upper() + text[1:]


def _pairs(count: int) -> str:
    return "1 pair" if count == 1 else f"{count} pairs"


@rule("R-A.2")
def three_centres_four_nodes_one_backup(region: Region) -> Iterator[tuple[str, str]]:
    """Every kind of room exists, and every hospital room holds core nodes A and B and every
    carrier room a core node."""
    for role, node_roles in _NODES_OF_ROOM.items():
        rooms = _centres(region, role)
        if not rooms:
            yield (
                "region",
                f'The region has no {_ROOM_NAME[role]}; "three centres, four nodes, one backup" '
                "needs one.",
            )
        for room in rooms:
            held = {node.role for node in region.nodes if node.centre_id == room.id}
            for node_role in node_roles:
                if node_role not in held:
                    yield (
                        f"centre/{room.id}",
                        f"{_sentence_start(_ROOM_NAME[role])} '{room.id}' has no "
                        f"{_NODE_NAME[node_role]}.",
                    )


@rule("R-7.2.2")
def hospital_rooms_share_a_city_with_carrier_production(
    region: Region,
) -> Iterator[tuple[str, str]]:
    """Same-city active-active: each hospital room has a carrier production room in its city."""
    production_rooms = _centres(region, CentreRole.CARRIER_PRODUCTION)
    production_cities = sorted({room.city for room in production_rooms})
    for hospital in _centres(region, CentreRole.HOSPITAL_ROOM):
        if any(_same_place(hospital.city, room.city) for room in production_rooms):
            continue
        elsewhere = (
            f"the carrier production rooms are in {_and_list(production_cities)}"
            if production_cities
            else "the region has no carrier production room"
        )
        yield (
            f"centre/{hospital.id}",
            f"Hospital room '{hospital.id}' is in {hospital.city} but {elsewhere}; same-city "
            f"active-active needs a carrier production room in {hospital.city}.",
        )


@rule("R-7.2.5")
def backup_centre_is_out_of_province(region: Region) -> Iterator[tuple[str, str]]:
    """Every backup centre is in a province with no hospital room and no carrier production room."""
    guarded_roles = (CentreRole.HOSPITAL_ROOM, CentreRole.CARRIER_PRODUCTION)
    for backup in _centres(region, CentreRole.BACKUP_CENTRE):
        neighbours = [
            f"{_ROOM_NAME[centre.role]} '{centre.id}'"
            for centre in region.centres
            if centre.role in guarded_roles and _same_place(centre.province, backup.province)
        ]
        if neighbours:
            yield (
                f"centre/{backup.id}",
                f"Backup centre '{backup.id}' is in {backup.province}, the same province as "
                f"{_and_list(neighbours)}; data-level disaster recovery needs it in another province.",
            )


@dataclass(frozen=True)
class _End:
    """One end of a link: the node and its machine room, None when the node stands outside the
    region's rooms (a branch hospital's access node)."""

    node: NetworkNode
    room: Centre | None

    def is_in(self, role: CentreRole) -> bool:
        return self.room is not None and self.room.role is role

    def is_node(self, node_role: NodeRole, room_role: CentreRole) -> bool:
        return self.node.role is node_role and self.is_in(room_role)


_EndTest = Callable[[_End], bool]


def _ends(region: Region) -> list[_End]:
    rooms = {centre.id: centre for centre in region.centres}
    return [_End(node, rooms.get(node.centre_id)) for node in region.nodes]


def _links_between(
    region: Region, purpose: LinkPurpose, near: _EndTest, far: _EndTest
) -> list[tuple[Link, _End, _End]]:
    """The links of `purpose` joining a `near` end to a `far` end, each as (link, near, far); a link
    is undirected, so either of its ends may be the near one. Links naming unknown nodes join
    nothing."""
    ends = {end.node.id: end for end in _ends(region)}
    joined = []
    for link in region.links:
        a_end, b_end = ends.get(link.a_node_id), ends.get(link.b_node_id)
        if link.purpose is not purpose or a_end is None or b_end is None:
            continue
        if near(a_end) and far(b_end):
            joined.append((link, a_end, b_end))
        elif near(b_end) and far(a_end):
            joined.append((link, b_end, a_end))
    return joined


def _slower_direction_gbps(link: Link) -> float:
    # A link is only as fast as its slower direction; dark fibre is the same both ways anyway.
    return min(link.up_gbps, link.down_gbps)


@dataclass(frozen=True)
class _LinkSize:
    """What annex A asks of one link: at least `pairs` pairs carrying `gbps` in total."""

    pairs: int
    gbps: float

    def describe(self) -> str:
        return f"at least {_pairs(self.pairs)} carrying {self.gbps:g} Gbit/s"


# R-A.2.1-R-A.2.3 name 2 pairs x 10G; R-A.2.4 names 4 x 10G, where we ask for the bandwidth and at
# least 2 pairs, so a cut conduit (R-A.2.6) never takes the link down, but not for 10G optics.
_UPLINK_SIZE = _LinkSize(pairs=2, gbps=20)
_INTERCONNECT_SIZE = _LinkSize(pairs=2, gbps=40)


@dataclass(frozen=True)
class _Anchor:
    """What must have a link: reported as `subject`, named `wording`, and joined when a link's near
    end is one of `node_ids`."""

    subject: str
    wording: str
    node_ids: frozenset[str]


def _required_link(
    *,
    anchors: list[_Anchor],
    links: list[tuple[Link, _End, _End]],
    missing: str,
    link_name: str,
    size: _LinkSize,
) -> Iterator[tuple[str, str]]:
    """Each anchor is joined by at least one of `links`, and each of `links` has the size; `missing`
    names the link an anchor lacks, `link_name` what each of `links` is."""
    for anchor in anchors:
        if not any(near.node.id in anchor.node_ids for _, near, _ in links):
            yield (
                anchor.subject,
                f"{anchor.wording} has no {missing}; it needs one of {size.describe()}.",
            )
    for link, _, _ in links:
        rate_gbps = _slower_direction_gbps(link)
        if len(link.pairs) < size.pairs or rate_gbps < size.gbps:
            yield (
                f"link/{link.id}",
                f"Link '{link.id}', the {link_name}, has {_pairs(len(link.pairs))} carrying "
                f"{rate_gbps:g} Gbit/s; it needs {size.describe()}.",
            )


def _is_core_a(end: _End) -> bool:
    return end.is_node(NodeRole.CORE_A, CentreRole.HOSPITAL_ROOM)


def _is_core_b(end: _End) -> bool:
    return end.is_node(NodeRole.CORE_B, CentreRole.HOSPITAL_ROOM)


def _is_production_core(end: _End) -> bool:
    return end.is_node(NodeRole.CORE, CentreRole.CARRIER_PRODUCTION)


def _is_standby_core(end: _End) -> bool:
    return end.is_node(NodeRole.CORE, CentreRole.CARRIER_STANDBY)


def _node_anchors(region: Region, test: _EndTest) -> list[_Anchor]:
    # A node's missing link is reported on its room, since findings name rooms, not nodes.
    return [
        _Anchor(
            f"centre/{end.node.centre_id}",
            _sentence_start(
                f"{_NODE_NAME[end.node.role]} '{end.node.id}' in "
                f"{_ROOM_NAME[end.room.role]} '{end.node.centre_id}'"
            ),
            frozenset({end.node.id}),
        )
        for end in _ends(region)
        if end.room is not None and test(end)
    ]


def _room_anchors(region: Region, role: CentreRole) -> list[_Anchor]:
    return [
        _Anchor(
            f"centre/{room.id}",
            _sentence_start(f"{_ROOM_NAME[role]} '{room.id}'"),
            frozenset(node.id for node in region.nodes if node.centre_id == room.id),
        )
        for room in _centres(region, role)
    ]


@rule("R-A.2.1")
def core_a_reaches_carrier_production(region: Region) -> Iterator[tuple[str, str]]:
    """Each core node A has an IP link to a carrier production core: 2 pairs, 20 Gbit/s."""
    return _required_link(
        anchors=_node_anchors(region, _is_core_a),
        links=_links_between(region, LinkPurpose.IP, _is_core_a, _is_production_core),
        missing="IP link to a carrier production core",
        link_name="IP link from core node A to carrier production",
        size=_UPLINK_SIZE,
    )


@rule("R-A.2.2")
def hospital_room_mirrors_storage_to_carrier_production(
    region: Region,
) -> Iterator[tuple[str, str]]:
    """Each hospital room has an FC-SAN link, from any of its nodes to any node of a carrier
    production room, for same-city storage active-active: 2 pairs, 20 Gbit/s."""
    return _required_link(
        anchors=_room_anchors(region, CentreRole.HOSPITAL_ROOM),
        links=_links_between(
            region,
            LinkPurpose.FC_SAN,
            lambda end: end.is_in(CentreRole.HOSPITAL_ROOM),
            lambda end: end.is_in(CentreRole.CARRIER_PRODUCTION),
        ),
        missing="FC-SAN link to a carrier production room",
        link_name="FC-SAN link from the hospital room to carrier production",
        size=_UPLINK_SIZE,
    )


@rule("R-A.2.3")
def core_b_reaches_carrier_standby(region: Region) -> Iterator[tuple[str, str]]:
    """Each core node B has an IP link to a carrier standby core: 2 pairs, 20 Gbit/s."""
    return _required_link(
        anchors=_node_anchors(region, _is_core_b),
        links=_links_between(region, LinkPurpose.IP, _is_core_b, _is_standby_core),
        missing="IP link to a carrier standby core",
        link_name="IP link from core node B to carrier standby",
        size=_UPLINK_SIZE,
    )


@rule("R-A.2.4")
def core_a_and_core_b_are_interconnected(region: Region) -> Iterator[tuple[str, str]]:
    """Core nodes A and B of one hospital room share a local link of 40 Gbit/s."""
    joined = _links_between(region, LinkPurpose.LOCAL, _is_core_a, _is_core_b)
    return _required_link(
        anchors=_node_anchors(region, _is_core_a),
        links=[(link, a, b) for link, a, b in joined if a.node.centre_id == b.node.centre_id],
        missing="local link to core node B of its room",
        link_name="local link between core nodes A and B",
        size=_INTERCONNECT_SIZE,
    )


@rule("R-A.2.4")
def carrier_rooms_are_interconnected(region: Region) -> Iterator[tuple[str, str]]:
    """Each carrier production core has a local link of 40 Gbit/s to a carrier standby core; the
    text calls it local dark fibre like the one between cores A and B, so its purpose is LOCAL."""
    return _required_link(
        anchors=_node_anchors(region, _is_production_core),
        links=_links_between(region, LinkPurpose.LOCAL, _is_production_core, _is_standby_core),
        missing="local link to a carrier standby core",
        link_name="local link between carrier production and carrier standby",
        size=_INTERCONNECT_SIZE,
    )


# The text's six 1000M lines per branch are the reference build, "provided as actually needed"; the
# least that keeps a branch working when either room or either line is lost is one line to the
# hospital room and one to carrier production, so that is the per-site minimum.
_BRANCH_LINE_GBPS = 1.0


@rule("R-A.2.5")
def branch_hospitals_reach_both_rooms(region: Region) -> Iterator[tuple[str, str]]:
    """Each branch access node has a branch line to a hospital room and one to a carrier production
    room, and every circuit of every branch line carries at least 1 Gbit/s."""
    branch_lines = _links_between(
        region,
        LinkPurpose.BRANCH_LINE,
        lambda end: end.node.role is NodeRole.BRANCH_ACCESS,
        lambda end: end.room is not None,
    )
    for branch in _ends(region):
        if branch.node.role is not NodeRole.BRANCH_ACCESS:
            continue
        for room_role in (CentreRole.HOSPITAL_ROOM, CentreRole.CARRIER_PRODUCTION):
            if not any(near == branch and far.is_in(room_role) for _, near, far in branch_lines):
                yield (
                    f"centre/{branch.node.centre_id}",
                    f"Branch access node '{branch.node.id}' has no branch line to a "
                    f"{_ROOM_NAME[room_role]}; branch lines come in pairs, one to the hospital "
                    f"room and one to carrier production, each of at least "
                    f"{_BRANCH_LINE_GBPS:g} Gbit/s.",
                )
    for link in region.links:
        if link.purpose is not LinkPurpose.BRANCH_LINE:
            continue
        slow_gbps = [
            min(pair.up_gbps, pair.down_gbps)
            for pair in link.pairs
            if min(pair.up_gbps, pair.down_gbps) < _BRANCH_LINE_GBPS
        ]
        if slow_gbps:
            yield (
                f"link/{link.id}",
                f"Branch line '{link.id}' has {len(slow_gbps)} of its {len(link.pairs)} circuits "
                f"below {_BRANCH_LINE_GBPS:g} Gbit/s (the slowest carries {min(slow_gbps):g} "
                "Gbit/s); each needs 1000M or more.",
            )


@rule("R-A.2.6")
def paired_resources_use_separate_conduits(region: Region) -> Iterator[tuple[str, str]]:
    """No conduit carries more than half the pairs of a link with two or more pairs, so one cut
    conduit never takes a whole link (and two pairs need two conduits)."""
    for link in region.links:
        if len(link.pairs) < 2:
            continue
        # Conduit names are typed by people: "Duct-7" and "duct-7 " are one conduit.
        per_conduit = Counter(pair.conduit.strip().casefold() for pair in link.pairs)
        busiest, carried = per_conduit.most_common(1)[0]
        allowed = len(link.pairs) // 2
        if carried > allowed:
            as_typed = next(
                pair.conduit.strip()
                for pair in link.pairs
                if pair.conduit.strip().casefold() == busiest
            )
            yield (
                f"link/{link.id}",
                f"Conduit '{as_typed}' carries {carried} of the {len(link.pairs)} pairs of link "
                f"'{link.id}'; one conduit may carry at most {allowed}, so that a single cut "
                "leaves at least half of the link standing.",
            )


_DARK_FIBRE_MIN_GBPS = 10.0


@rule("R-7.8a")
def dark_fibre_is_fast_and_symmetric(region: Region) -> Iterator[tuple[str, str]]:
    """Every dark-fibre pair carries at least 10 Gbit/s, the same up and down."""
    for link in region.links:
        if link.medium is not LinkMedium.DARK_FIBRE:
            continue
        for number, pair in enumerate(link.pairs, start=1):
            symmetric = math.isclose(pair.up_gbps, pair.down_gbps)
            if symmetric and min(pair.up_gbps, pair.down_gbps) >= _DARK_FIBRE_MIN_GBPS:
                continue
            yield (
                f"link/{link.id}",
                f"Pair {number} of dark-fibre link '{link.id}' runs {pair.up_gbps:g} Gbit/s up "
                f"and {pair.down_gbps:g} Gbit/s down; dark fibre carries at least "
                f"{_DARK_FIBRE_MIN_GBPS:g} Gbit/s, the same both ways.",
            )


# R-7.8b lists xPON's asymmetry as a property, not a fault, so asymmetric xPON is legal. What the
# text does rule out is xPON for traffic it cannot carry: table 1 gives GPON Ethernet, ATM and TDM
# (EPON Ethernet only), so no Fibre Channel, and annex A runs the local core interconnects over
# dark fibre, while table 1 names splitters between core switches a stability risk.
_XPON_CANNOT_CARRY = {
    LinkPurpose.FC_SAN: (
        "FC-SAN storage traffic, but xPON carries only Ethernet, ATM and TDM, so FC-SAN needs "
        "dark fibre"
    ),
    LinkPurpose.LOCAL: (
        "a local core interconnect, but xPON shares up to 2.48832 Gbit/s through splitters, "
        "so core interconnects need dark fibre"
    ),
}


@rule("R-7.8b")
def xpon_carries_no_san_or_interconnect(region: Region) -> Iterator[tuple[str, str]]:
    """No xPON link is used for FC-SAN or as a local interconnect."""
    for link in region.links:
        if link.medium is LinkMedium.XPON and link.purpose in _XPON_CANNOT_CARRY:
            yield (
                f"link/{link.id}",
                f"xPON link '{link.id}' is used for {_XPON_CANNOT_CARRY[link.purpose]}.",
            )


_REQUIRED_STORAGE = {
    StorageClass.BLOCK_FC_SAN: "block (FC-SAN)",
    StorageClass.OBJECT: "object",
    StorageClass.FILE_NAS: "file (NAS)",
}


@rule("R-7.4-0")
def block_object_and_file_storage_are_offered(region: Region) -> Iterator[tuple[str, str]]:
    """The region has at least one pool of block (FC-SAN), object and file (NAS) storage each."""
    offered = {pool.storage_class for pool in region.pools}
    for storage_class, name in _REQUIRED_STORAGE.items():
        if storage_class not in offered:
            yield (
                "region",
                f"The region has 0 {name} storage pools; block, object and file storage must all "
                "be offered.",
            )


@rule("R-7.3c")
def flavors_fit_the_largest_instance(region: Region) -> Iterator[tuple[str, str]]:
    """No flavor has more than 64 vCPU or 256 GiB memory."""
    for flavor in region.flavors:
        if flavor.vcpu > MAX_INSTANCE_VCPU or flavor.memory_gib > MAX_INSTANCE_MEMORY_GIB:
            yield (
                f"flavor/{flavor.id}",
                f"Flavor '{flavor.id}' has {flavor.vcpu} vCPU and {flavor.memory_gib} GiB memory; "
                f"the largest single instance is {MAX_INSTANCE_VCPU} vCPU and "
                f"{MAX_INSTANCE_MEMORY_GIB} GiB.",
            )
