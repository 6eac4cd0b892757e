"""Whether each centre and each link is up, judged from heartbeats and link reports with enough
hysteresis that one lost packet never fails a hospital over (R-7.7c)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from medcloud.core.errors import FieldViolation, InvalidArgument, NotFound
from medcloud.monitoring.domain.events import LinkDown, LinkUp, SiteDown, SiteEvent, SiteUp

# Why a centre is down, as SiteDown.reason says it.
DOWN_BY_HEARTBEATS = "heartbeats"
DOWN_BY_LINKS = "links"


class SiteState(enum.Enum):
    UP = "up"
    DOWN = "down"


class LinkState(enum.Enum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class SiteHealthPolicy:
    """A centre is down once every node has been silent for `down_after_seconds`, and up again
    once one node sent `up_after_heartbeats` heartbeats in a row, none more than two intervals
    after the one before. A link changes state after that many consecutive contrary reports."""

    heartbeat_interval_seconds: float = 10
    down_after_seconds: float = 30
    up_after_heartbeats: int = 3
    link_down_after_reports: int = 3
    link_up_after_reports: int = 3

    def __post_init__(self) -> None:
        violations = []
        if self.heartbeat_interval_seconds <= 0:
            violations.append(
                FieldViolation(
                    "site_health.heartbeat_interval_seconds",
                    f"must be greater than 0, got {self.heartbeat_interval_seconds}",
                )
            )
        elif self.down_after_seconds < self.max_heartbeat_gap_seconds:
            violations.append(
                FieldViolation(
                    "site_health.down_after_seconds",
                    f"must be at least twice the heartbeat interval "
                    f"({self.max_heartbeat_gap_seconds} s) so that one lost heartbeat never "
                    f"takes a centre down, got {self.down_after_seconds}",
                )
            )
        if self.up_after_heartbeats < 1:
            violations.append(
                FieldViolation(
                    "site_health.up_after_heartbeats",
                    f"must be at least 1, got {self.up_after_heartbeats}",
                )
            )
        if self.link_down_after_reports < 2:
            violations.append(
                FieldViolation(
                    "site_health.link_down_after_reports",
                    f"must be at least 2 so that one lost report never takes a link down, "
                    f"got {self.link_down_after_reports}",
                )
            )
        if self.link_up_after_reports < 1:
            violations.append(
                FieldViolation(
                    "site_health.link_up_after_reports",
                    f"must be at least 1, got {self.link_up_after_reports}",
                )
            )
        if violations:
            raise InvalidArgument(violations)

    @property
    def max_heartbeat_gap_seconds(self) -> float:
        """The longest gap between two heartbeats that still counts them as consecutive."""
        return 2 * self.heartbeat_interval_seconds


@dataclass(frozen=True, slots=True)
class CentreHealth:
    """A centre as the last `evaluate` judged it. `since` is None while it has never changed
    state (up as far as anyone knows); `reason` is empty while it is up."""

    centre_id: str
    state: SiteState = SiteState.UP
    reason: str = ""
    since: float | None = None
    nodes_reporting: tuple[str, ...] = ()
    nodes_missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LinkHealth:
    """`since` is when the link took its state, or its first report while it never changed."""

    link_id: str
    centre_ids: tuple[str, str]
    state: LinkState
    since: float


@dataclass(frozen=True, slots=True)
class _Node:
    centre_id: str
    last_heartbeat_at: float | None = None
    # Heartbeats in a row up to the last, none more than two intervals after the one before.
    streak: int = 0
    streak_started_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Link:
    health: LinkHealth
    # Consecutive reports saying the opposite of `health.state`, and when the first was made.
    contrary_reports: int = 0
    contrary_since: float | None = None


def _required(field: str, value: str) -> list[FieldViolation]:
    return [] if value else [FieldViolation(field, "must not be empty")]


class SiteHealth:
    """Centres and links as heartbeats and link reports show them; `evaluate` turns what changed
    into events, one per transition.

    Nothing here is stored: heartbeats are volatile, and after a restart every centre starts
    unknown-up and is declared down only after a full window of silence following a heartbeat
    this process itself heard, so a restart can delay a SiteDown but never cause a false one. The
    price: a centre already silent when the service starts is declared down by its links only."""

    def __init__(self, policy: SiteHealthPolicy) -> None:
        self._policy = policy
        self._nodes: dict[str, _Node] = {}
        self._links: dict[str, _Link] = {}
        self._centres: dict[str, CentreHealth] = {}
        # Link transitions happen as reports arrive, so that none is lost between two
        # evaluations; the next `evaluate` hands them out.
        self._pending: list[SiteEvent] = []

    def expect_node(self, node_id: str, centre_id: str) -> None:
        """A node the centre should hear from (from inventory), heard from or not."""
        violations = _required("node_id", node_id) + _required("centre_id", centre_id)
        if violations:
            raise InvalidArgument(violations)
        node = self._nodes.get(node_id)
        self._nodes[node_id] = (
            _Node(centre_id) if node is None else replace(node, centre_id=centre_id)
        )
        self._centres.setdefault(centre_id, CentreHealth(centre_id))

    def heartbeat(self, node_id: str, centre_id: str, at: float) -> None:
        """`at` is when the centre received it, on the centre's clock: silence is judged on one
        clock, whatever the node's says. An unknown node becomes known."""
        violations = _required("node_id", node_id) + _required("centre_id", centre_id)
        if violations:
            raise InvalidArgument(violations)
        node = self._nodes.get(node_id, _Node(centre_id))
        last_at = node.last_heartbeat_at
        if last_at is not None and at <= last_at:
            return  # a duplicate or a late delivery says nothing new
        if last_at is not None and at - last_at <= self._policy.max_heartbeat_gap_seconds:
            streak, started_at = node.streak + 1, node.streak_started_at
        else:
            streak, started_at = 1, at
        self._nodes[node_id] = _Node(centre_id, at, streak, started_at)
        self._centres.setdefault(centre_id, CentreHealth(centre_id))

    def link_report(self, link_id: str, centre_ids: tuple[str, str], up: bool, at: float) -> None:
        """What a probe at either end of the link sees; reports from both ends count alike."""
        violations = _required("link_id", link_id)
        for index, centre_id in enumerate(centre_ids):
            violations += _required(f"centre_ids[{index}]", centre_id)
        if centre_ids[0] == centre_ids[1]:
            violations.append(FieldViolation("centre_ids", "must name two different centres"))
        if violations:
            raise InvalidArgument(violations)
        link = self._links.get(link_id) or _Link(LinkHealth(link_id, centre_ids, LinkState.UP, at))
        reported = LinkState.UP if up else LinkState.DOWN
        if reported is link.health.state:
            link = _Link(replace(link.health, centre_ids=centre_ids))
        else:
            contrary_reports = link.contrary_reports + 1
            since = at if link.contrary_since is None else link.contrary_since
            needed = (
                self._policy.link_up_after_reports if up else self._policy.link_down_after_reports
            )
            if contrary_reports >= needed:
                link = _Link(LinkHealth(link_id, centre_ids, reported, since))
                self._pending.append(LinkUp(link_id, since) if up else LinkDown(link_id, since))
            else:
                link = _Link(replace(link.health, centre_ids=centre_ids), contrary_reports, since)
        self._links[link_id] = link
        for centre_id in centre_ids:
            self._centres.setdefault(centre_id, CentreHealth(centre_id))

    def evaluate(self, now: float) -> list[SiteEvent]:
        """Link transitions since the last call, then every centre that went down or came back;
        calling it again at the same instant returns nothing."""
        events, self._pending = self._pending, []
        for centre_id in sorted(self._centres):
            events += self._evaluate_centre(centre_id, now)
        return events

    def centre_state(self, centre_id: str) -> CentreHealth:
        centre = self._centres.get(centre_id)
        if centre is None:
            raise NotFound("centre", centre_id)
        return centre

    def states(self) -> list[CentreHealth]:
        return [self._centres[centre_id] for centre_id in sorted(self._centres)]

    def nodes_of(self, centre_id: str) -> tuple[str, ...]:
        """The nodes known in the centre, heard from or only expected; none for a centre unknown."""
        return tuple(
            sorted(node_id for node_id, node in self._nodes.items() if node.centre_id == centre_id)
        )

    def link_state(self, link_id: str) -> LinkHealth:
        link = self._links.get(link_id)
        if link is None:
            raise NotFound("link", link_id)
        return link.health

    def _evaluate_centre(self, centre_id: str, now: float) -> list[SiteEvent]:
        nodes = {
            node_id: node for node_id, node in self._nodes.items() if node.centre_id == centre_id
        }
        links = [
            link.health for link in self._links.values() if centre_id in link.health.centre_ids
        ]
        missing = tuple(
            sorted(
                node_id
                for node_id, node in nodes.items()
                if node.last_heartbeat_at is None
                or now - node.last_heartbeat_at >= self._policy.down_after_seconds
            )
        )
        reporting = tuple(sorted(set(nodes) - set(missing)))
        centre = replace(self._centres[centre_id], nodes_reporting=reporting, nodes_missing=missing)
        events: list[SiteEvent] = []
        if centre.state is SiteState.UP:
            down = self._down(list(nodes.values()), len(missing), links)
            if down is not None:
                reason, since = down
                centre = replace(centre, state=SiteState.DOWN, reason=reason, since=since)
                events.append(SiteDown(centre_id, reason, since, missing))
        else:
            up_since = self._up_since(list(nodes.values()), links, now)
            if up_since is not None:
                centre = replace(centre, state=SiteState.UP, reason="", since=up_since)
                events.append(SiteUp(centre_id, up_since))
        self._centres[centre_id] = centre
        return events

    def _down(
        self, nodes: list[_Node], missing_count: int, links: list[LinkHealth]
    ) -> tuple[str, float] | None:
        """Why an up centre is down now and since when, or None while it is not."""
        heard_at = [node.last_heartbeat_at for node in nodes if node.last_heartbeat_at is not None]
        # A centre none of whose nodes was ever heard from is not declared down by heartbeats:
        # nothing shows it was ever up (a centre being commissioned, inventory ahead of the
        # agents), and failing hospitals over on no evidence does more harm than waiting.
        if heard_at and missing_count == len(nodes):
            return DOWN_BY_HEARTBEATS, max(heard_at)
        if links and all(link.state is LinkState.DOWN for link in links):
            return DOWN_BY_LINKS, max(link.since for link in links)
        return None

    def _up_since(self, nodes: list[_Node], links: list[LinkHealth], now: float) -> float | None:
        """When a down centre has been reachable again from, or None while it is not."""
        if links and all(link.state is LinkState.DOWN for link in links):
            return None
        instants = []
        if any(node.last_heartbeat_at is not None for node in nodes):
            streaks_started_at = [
                node.streak_started_at
                for node in nodes
                # A streak counts only while it lasts: its last heartbeat must be recent.
                if node.streak >= self._policy.up_after_heartbeats
                and now - node.last_heartbeat_at <= self._policy.max_heartbeat_gap_seconds
            ]
            if not streaks_started_at:
                return None
            instants.append(min(streaks_started_at))
        if links:
            instants.append(min(link.since for link in links if link.state is LinkState.UP))
        # Never empty: a centre down by heartbeats has nodes heard from, one down by links has
        # links, not all of them down.
        return max(instants)
