"""The NATS bus carries the same events as the in-process bus, between real connections."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest

from samizdat.bus.events import BusEvent, ChatChanged, DevicesRevoked, Push, decode, encode
from samizdat.bus.nats import NatsBus
from samizdat.protocol.errors import Unavailable


def test_events_survive_the_codec() -> None:
    events: list[BusEvent] = [
        Push(b'{"type":"typing"}', ((1, 5), (2, None)), 9),
        DevicesRevoked((1, 2)),
        ChatChanged(7),
    ]
    assert [decode(encode(e)) for e in events] == events


async def test_two_nodes_receive_each_others_events() -> None:
    received: list[BusEvent] = []
    subject = f"samizdat.test.{secrets.token_hex(4)}"
    a, b = NatsBus(subject=subject), NatsBus(subject=subject)
    try:
        await a.start(received.append)
        await b.start(received.append)
    except Unavailable:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("NATS is not running at 127.0.0.1:4222")
    try:
        await a.publish(ChatChanged(42))
        for _ in range(500):
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
        assert received == [ChatChanged(42), ChatChanged(42)]
    finally:
        await a.close()
        await b.close()
