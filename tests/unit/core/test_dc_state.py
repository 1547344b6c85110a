"""A DC's key state on one node: every legal move, and every other one refused."""

from __future__ import annotations

import itertools

import pytest

from samizdat.core.dc_state import TRANSITIONS, DcEvent, DcState, next_state
from samizdat.protocol.session import IllegalTransition


def test_a_node_unseals_only_through_an_attempt_that_succeeds() -> None:
    state = next_state(DcState.SEALED, DcEvent.ATTEMPT)
    assert state is DcState.UNSEALING
    assert next_state(state, DcEvent.FAILED) is DcState.SEALED
    assert next_state(state, DcEvent.SUCCEEDED) is DcState.UNSEALED
    assert next_state(DcState.UNSEALED, DcEvent.RESEAL) is DcState.SEALED


@pytest.mark.parametrize(
    ("state", "event"),
    [p for p in itertools.product(DcState, DcEvent) if p not in TRANSITIONS],
)
def test_every_move_the_table_does_not_list_is_refused(state: DcState, event: DcEvent) -> None:
    with pytest.raises(IllegalTransition):
        next_state(state, event)


def test_an_unsealed_node_cannot_skip_to_unsealed_again_or_attempt_twice() -> None:
    assert (DcState.UNSEALED, DcEvent.SUCCEEDED) not in TRANSITIONS
    assert (DcState.UNSEALING, DcEvent.ATTEMPT) not in TRANSITIONS
