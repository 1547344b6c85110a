"""A DC's key state on one node, as a transition table.

Theory of operation: a node starts SEALED (no DC key in memory, every request gets a typed
UNAVAILABLE). It ATTEMPTs to gather k custodians' shares (UNSEALING); success makes it
UNSEALED, failure returns it to SEALED and it tries again later. RESEAL forgets the keys
(shutdown, or an operator's order). Any other event in a state is a bug and raises.
"""

from __future__ import annotations

from enum import StrEnum

from samizdat.protocol.session import transition


class DcState(StrEnum):
    SEALED = "sealed"
    UNSEALING = "unsealing"
    UNSEALED = "unsealed"


class DcEvent(StrEnum):
    ATTEMPT = "attempt"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RESEAL = "reseal"


TRANSITIONS: dict[tuple[DcState, DcEvent], DcState] = {
    (DcState.SEALED, DcEvent.ATTEMPT): DcState.UNSEALING,
    (DcState.SEALED, DcEvent.RESEAL): DcState.SEALED,
    (DcState.UNSEALING, DcEvent.SUCCEEDED): DcState.UNSEALED,
    (DcState.UNSEALING, DcEvent.FAILED): DcState.SEALED,
    (DcState.UNSEALING, DcEvent.RESEAL): DcState.SEALED,
    (DcState.UNSEALED, DcEvent.RESEAL): DcState.SEALED,
}


def next_state(state: DcState, event: DcEvent) -> DcState:
    return transition(TRANSITIONS, state, event)


__all__ = ["TRANSITIONS", "DcEvent", "DcState", "next_state"]
