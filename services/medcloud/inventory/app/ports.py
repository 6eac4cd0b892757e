"""What inventory's use cases need from the outside, as protocols the adapters implement."""

from __future__ import annotations

from typing import Any, Protocol

from medcloud.inventory.app.records import Record
from medcloud.inventory.domain.claims import Claim


class ChangeEvents(Protocol):
    """Builds the event payload announcing a change (the outbox publishes it after commit)."""

    def registered(self, kind: str, record: Record[Any]) -> Any: ...

    def changed(self, kind: str, record: Record[Any], previous: Record[Any]) -> list[Any]: ...

    def removed(self, kind: str, record: Record[Any]) -> Any: ...

    def claim_changed(self, claim: Claim) -> Any: ...

    def claim_released(self, consumer_id: str) -> Any: ...
