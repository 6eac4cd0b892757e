"""A centre is declared down only when all of it has been silent for the whole window, comes back
only after heartbeats in a row, and links change state only on consecutive reports."""

from __future__ import annotations

import pytest

from medcloud.core.errors import InvalidArgument, NotFound
from medcloud.monitoring.domain.events import LinkDown, LinkUp, SiteDown, SiteUp
from medcloud.monitoring.domain.site_health import (
    DOWN_BY_HEARTBEATS,
    DOWN_BY_LINKS,
    LinkState,
    SiteHealth,
    SiteHealthPolicy,
    SiteState,
)

CENTRE = "hospital-a"


def health(*nodes: str) -> SiteHealth:
    """Interval 10 s, down after 30 s, up after 3 heartbeats, links after 3 reports."""
    site_health = SiteHealth(SiteHealthPolicy())
    for node_id in nodes:
        site_health.expect_node(node_id, CENTRE)
    return site_health


def beat(site_health: SiteHealth, at: float, *nodes: str) -> list:
    """Heartbeats from `nodes` at `at`, then an evaluation at the same instant."""
    for node_id in nodes:
        site_health.heartbeat(node_id, CENTRE, at)
    return site_health.evaluate(at)


def run(site_health: SiteHealth, start: int, stop: int, *nodes: str) -> list:
    """Every node beats every 10 s from `start` to `stop` (excluded), evaluated every 5 s."""
    events = []
    for at in range(start, stop, 5):
        events += beat(site_health, at, *nodes) if at % 10 == 0 else site_health.evaluate(at)
    return events


def test_a_centre_whose_nodes_all_stop_is_down_after_the_window_and_says_since_when():
    site_health = health("node-1", "node-2")
    assert run(site_health, 0, 50, "node-1", "node-2") == []
    # Last heard at 40: not down at 69, down at 70.
    assert site_health.evaluate(69) == []
    assert site_health.evaluate(70) == [
        SiteDown(CENTRE, DOWN_BY_HEARTBEATS, since=40, nodes_missing=("node-1", "node-2"))
    ]
    state = site_health.centre_state(CENTRE)
    assert (state.state, state.reason, state.since) == (SiteState.DOWN, DOWN_BY_HEARTBEATS, 40)
    assert state.nodes_missing == ("node-1", "node-2")


def test_one_missed_heartbeat_does_not_take_a_centre_down():
    site_health = health("node-1")
    events = []
    for at in (0, 10, 30, 40):  # the heartbeat at 20 is lost
        events += beat(site_health, at, "node-1")
        events += site_health.evaluate(at + 9)
    assert events == []
    assert site_health.centre_state(CENTRE).state is SiteState.UP


def test_a_centre_is_up_while_one_of_three_nodes_still_beats():
    site_health = health("node-1", "node-2", "node-3")
    run(site_health, 0, 20, "node-1", "node-2", "node-3")
    assert run(site_health, 20, 300, "node-2") == []
    state = site_health.centre_state(CENTRE)
    assert state.state is SiteState.UP
    assert state.nodes_reporting == ("node-2",)
    assert state.nodes_missing == ("node-1", "node-3")


def test_a_node_expected_but_never_heard_counts_as_missing():
    site_health = health("node-1", "node-2")
    beat(site_health, 0, "node-1")
    (down,) = site_health.evaluate(30)
    assert down == SiteDown(CENTRE, DOWN_BY_HEARTBEATS, 0, ("node-1", "node-2"))


def test_a_centre_none_of_whose_nodes_was_ever_heard_is_not_declared_down():
    site_health = health("node-1", "node-2")
    assert site_health.evaluate(0) == []
    assert site_health.evaluate(10_000) == []
    assert site_health.centre_state(CENTRE).nodes_missing == ("node-1", "node-2")


def test_a_down_centre_comes_back_only_after_three_heartbeats_in_a_row():
    site_health = health("node-1")
    beat(site_health, 0, "node-1")
    (down,) = site_health.evaluate(30)
    assert isinstance(down, SiteDown)
    assert beat(site_health, 100, "node-1") == []
    assert beat(site_health, 110, "node-1") == []
    assert beat(site_health, 120, "node-1") == [SiteUp(CENTRE, since=100)]
    state = site_health.centre_state(CENTRE)
    assert (state.state, state.reason, state.since) == (SiteState.UP, "", 100)


def test_a_gap_of_more_than_two_intervals_starts_the_count_again():
    site_health = health("node-1")
    beat(site_health, 0, "node-1")
    site_health.evaluate(30)
    beat(site_health, 100, "node-1")
    beat(site_health, 110, "node-1")
    assert beat(site_health, 135, "node-1") == []  # 25 s after the last: a new streak
    assert beat(site_health, 145, "node-1") == []
    assert beat(site_health, 155, "node-1") == [SiteUp(CENTRE, since=135)]


def test_a_streak_that_stopped_does_not_bring_a_centre_back():
    site_health = health("node-1", "node-2")
    beat(site_health, 0, "node-1", "node-2")
    site_health.evaluate(30)
    # node-2 beat three times in a row long ago, then went quiet again.
    for at in (40, 50, 51):
        site_health.heartbeat("node-2", CENTRE, at)
    assert site_health.evaluate(100) == []
    assert site_health.centre_state(CENTRE).state is SiteState.DOWN


def test_evaluate_is_idempotent():
    site_health = health("node-1")
    beat(site_health, 0, "node-1")
    assert len(site_health.evaluate(30)) == 1
    assert site_health.evaluate(30) == []
    assert site_health.evaluate(31) == []
    for at in (100, 110, 120):
        site_health.heartbeat("node-1", CENTRE, at)
    assert len(site_health.evaluate(120)) == 1
    assert site_health.evaluate(120) == []


def test_a_duplicate_or_late_heartbeat_is_ignored():
    site_health = health("node-1")
    beat(site_health, 0, "node-1")
    site_health.evaluate(30)
    beat(site_health, 100, "node-1")
    site_health.heartbeat("node-1", CENTRE, 100)
    site_health.heartbeat("node-1", CENTRE, 90)
    assert beat(site_health, 110, "node-1") == []
    assert beat(site_health, 120, "node-1") == [SiteUp(CENTRE, since=100)]


def test_a_link_goes_down_after_three_consecutive_down_reports_not_two():
    site_health = health()
    ends = (CENTRE, "carrier-1")
    site_health.link_report("link-1", ends, up=False, at=0)
    site_health.link_report("link-1", ends, up=False, at=5)
    assert site_health.evaluate(5) == []
    site_health.link_report("link-1", ends, up=True, at=10)
    site_health.link_report("link-1", ends, up=False, at=15)
    site_health.link_report("link-1", ends, up=False, at=20)
    assert site_health.evaluate(20) == []
    assert site_health.link_state("link-1").state is LinkState.UP
    site_health.link_report("link-1", ends, up=False, at=25)
    events = site_health.evaluate(25)
    assert LinkDown("link-1", since=15) in events
    assert site_health.evaluate(25) == []
    assert site_health.link_state("link-1").state is LinkState.DOWN


def test_a_link_comes_back_after_three_consecutive_up_reports():
    site_health = health()
    ends = (CENTRE, "carrier-1")
    for at in (0, 5, 10):
        site_health.link_report("link-1", ends, up=False, at=at)
    site_health.evaluate(10)
    for at in (20, 25):
        site_health.link_report("link-1", ends, up=True, at=at)
    assert site_health.evaluate(25) == []
    site_health.link_report("link-1", ends, up=True, at=30)
    assert LinkUp("link-1", since=20) in site_health.evaluate(30)


def test_a_link_transition_between_evaluations_is_not_lost():
    site_health = health()
    ends = (CENTRE, "carrier-1")
    for at, up in [(0, False), (1, False), (2, False), (3, True), (4, True), (5, True)]:
        site_health.link_report("link-1", ends, up=up, at=at)
    assert site_health.evaluate(5)[:2] == [LinkDown("link-1", 0), LinkUp("link-1", 3)]


def test_a_centre_with_all_links_down_is_down():
    site_health = health("node-1")
    run(site_health, 0, 20, "node-1")
    for link_id in ("link-1", "link-2"):
        for at in (10, 11, 12):
            site_health.link_report(link_id, (CENTRE, "carrier-1"), up=False, at=at)
    site_health.link_report("link-2", (CENTRE, "carrier-1"), up=False, at=13)
    events = site_health.evaluate(15)
    assert [e for e in events if isinstance(e, SiteDown) and e.centre_id == CENTRE] == [
        SiteDown(CENTRE, DOWN_BY_LINKS, since=10, nodes_missing=())
    ]
    # The other end is down too: its only links are these.
    assert SiteDown("carrier-1", DOWN_BY_LINKS, since=10) in events


def test_a_centre_down_by_links_comes_back_when_a_link_does():
    site_health = health("node-1")
    ends = (CENTRE, "carrier-1")
    run(site_health, 0, 20, "node-1")
    for at in (10, 11, 12):
        site_health.link_report("link-1", ends, up=False, at=at)
    run(site_health, 20, 60, "node-1")
    assert site_health.centre_state(CENTRE).state is SiteState.DOWN
    for at in (60, 61, 62):
        site_health.link_report("link-1", ends, up=True, at=at)
    events = site_health.evaluate(62)
    # node-1 never stopped beating, so the link decides when the centre is back.
    assert SiteUp(CENTRE, since=60) in events
    assert SiteUp("carrier-1", since=60) in events


def test_one_link_up_keeps_a_centre_up():
    site_health = health()
    for at in (0, 1, 2):
        site_health.link_report("link-1", (CENTRE, "carrier-1"), up=False, at=at)
    site_health.link_report("link-2", (CENTRE, "carrier-2"), up=True, at=0)
    events = site_health.evaluate(2)
    assert not [e for e in events if isinstance(e, SiteDown) and e.centre_id == CENTRE]


def test_a_centre_down_by_heartbeats_stays_down_while_its_links_are_down():
    site_health = health("node-1")
    ends = (CENTRE, "carrier-1")
    beat(site_health, 0, "node-1")
    for at in (0, 1, 2):
        site_health.link_report("link-1", ends, up=False, at=at)
    down = [e for e in site_health.evaluate(30) if isinstance(e, SiteDown)]
    assert SiteDown(CENTRE, DOWN_BY_HEARTBEATS, 0, ("node-1",)) in down
    for at in (100, 110, 120):
        site_health.heartbeat("node-1", CENTRE, at)
    assert site_health.evaluate(120) == []
    for at in (121, 122, 123):
        site_health.link_report("link-1", ends, up=True, at=at)
    assert SiteUp(CENTRE, since=121) in site_health.evaluate(123)


def test_a_heartbeat_from_an_unknown_node_makes_it_known():
    site_health = health()
    beat(site_health, 0, "node-9")
    assert site_health.centre_state(CENTRE).nodes_reporting == ("node-9",)
    assert [s.centre_id for s in site_health.states()] == [CENTRE]


def test_unknown_centres_and_links_are_not_found():
    with pytest.raises(NotFound):
        health().centre_state("nowhere")
    with pytest.raises(NotFound):
        health().link_state("nowhere")


def test_reports_name_what_they_are_about():
    with pytest.raises(InvalidArgument) as refused:
        health().link_report("", (CENTRE, CENTRE), up=True, at=0)
    assert {v.field for v in refused.value.violations} == {"link_id", "centre_ids"}
    with pytest.raises(InvalidArgument) as refused:
        health().heartbeat("node-1", "", at=0)
    assert [v.field for v in refused.value.violations] == ["centre_id"]


def test_the_policy_keeps_one_lost_packet_from_moving_a_hospital():
    with pytest.raises(InvalidArgument) as refused:
        SiteHealthPolicy(heartbeat_interval_seconds=10, down_after_seconds=15)
    assert [v.field for v in refused.value.violations] == ["site_health.down_after_seconds"]
    with pytest.raises(InvalidArgument) as refused:
        SiteHealthPolicy(
            heartbeat_interval_seconds=0,
            up_after_heartbeats=0,
            link_down_after_reports=1,
            link_up_after_reports=0,
        )
    assert {v.field for v in refused.value.violations} == {
        "site_health.heartbeat_interval_seconds",
        "site_health.up_after_heartbeats",
        "site_health.link_down_after_reports",
        "site_health.link_up_after_reports",
    }


def test_nodes_of_lists_expected_and_heard_nodes():
    site_health = health("node-2")
    beat(site_health, 0, "node-1")
    site_health.heartbeat("node-3", "hospital-b", 0)
    assert site_health.nodes_of(CENTRE) == ("node-1", "node-2")
    assert site_health.nodes_of("nowhere") == ()
