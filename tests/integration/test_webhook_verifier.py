"""The webhook verifier and the code issuer against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from samizdat.core.login_codes import CodePolicy
from samizdat.core.phone import parse_phone
from samizdat.protocol.errors import AuthError, ErrorCode, Unavailable
from samizdat.server.verifier import CodeIssuer, WebhookVerifier

REAL = parse_phone("+1 650 253 0000")
TEST = parse_phone("+999661234567")


@dataclass
class Gateway:
    """A minimal HTTP/1.1 SMS gateway: records each request, answers with ``status``."""

    status: int = 200
    stall: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    abandoned: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self._answer(reader, writer)
        except ConnectionError:
            # The client gave up first (the timeout test): there is nobody left to answer.
            self.abandoned += 1
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((request_line, headers, body))
        if self.stall:
            await self.release.wait()
        answer = f"HTTP/1.1 {self.status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        writer.write(answer.encode() + b"ok")
        await writer.drain()

    def json_bodies(self) -> list[Any]:
        return [json.loads(body) for _, _, body in self.requests]


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    server = await asyncio.start_server(gw.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gw.url = f"http://127.0.0.1:{port}/sms"
    async with server:
        yield gw
        gw.release.set()  # let stalled handlers finish so no task outlives the test
        await asyncio.gather(*gw.handlers)


@pytest.fixture
async def verifier(gateway: Gateway) -> AsyncIterator[WebhookVerifier]:
    async with WebhookVerifier(gateway.url, timeout=2.0) as v:
        yield v


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_webhook_posts_phone_code_and_purpose_as_json(
    gateway: Gateway, verifier: WebhookVerifier
) -> None:
    await verifier.deliver(REAL, "04242")
    [(request_line, headers, _)] = gateway.requests
    assert request_line == "POST /sms HTTP/1.1"
    assert headers["content-type"] == "application/json"
    assert gateway.json_bodies() == [{"phone": "+16502530000", "code": "04242", "purpose": "login"}]


async def test_a_gateway_error_is_unavailable_without_the_code_or_phone(
    gateway: Gateway, verifier: WebhookVerifier
) -> None:
    gateway.status = 500
    with pytest.raises(Unavailable, match="did not accept the code") as info:
        await verifier.deliver(REAL, "04242")
    assert info.value.code is ErrorCode.UNAVAILABLE
    assert info.value.debug_context == {"status": 500}
    assert "04242" not in repr(info.value.to_wire())
    assert "6502530000" not in repr(info.value.to_wire())


async def test_a_redirect_is_not_followed_and_counts_as_failure(
    gateway: Gateway, verifier: WebhookVerifier
) -> None:
    gateway.status = 307
    with pytest.raises(Unavailable):
        await verifier.deliver(REAL, "04242")
    assert len(gateway.requests) == 1


async def test_a_closed_port_is_unavailable_raised_from_the_network_error() -> None:
    async with WebhookVerifier(f"http://127.0.0.1:{closed_port()}/sms") as verifier:
        with pytest.raises(Unavailable, match="try again later") as info:
            await verifier.deliver(REAL, "04242")
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_a_gateway_that_never_answers_times_out_as_unavailable(gateway: Gateway) -> None:
    gateway.stall = True
    async with WebhookVerifier(gateway.url, timeout=0.2) as verifier:
        with pytest.raises(Unavailable) as info:
            await verifier.deliver(REAL, "04242")
    assert isinstance(info.value.__cause__, httpx.TimeoutException)


async def test_a_shared_client_is_used_and_left_open(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as client:
        async with WebhookVerifier(gateway.url, client=client) as verifier:
            await verifier.deliver(REAL, "11111")
        assert not client.is_closed
    assert len(gateway.requests) == 1


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http or https"):
        WebhookVerifier("ftp://127.0.0.1/sms")


async def test_real_numbers_get_a_random_code_delivered_through_the_gateway(
    gateway: Gateway, verifier: WebhookVerifier
) -> None:
    issuer = CodeIssuer(verifier, dev_mode=False, policy=CodePolicy(length=6))
    code = await issuer.issue(REAL)
    assert len(code) == 6
    assert code.isdigit()
    assert gateway.json_bodies() == [{"phone": REAL.e164, "code": code, "purpose": "login"}]


async def test_issuer_uses_the_random_source_it_is_given(
    gateway: Gateway, verifier: WebhookVerifier
) -> None:
    issuer = CodeIssuer(verifier, dev_mode=True, randbelow=lambda bound: 7)
    assert await issuer.issue(REAL) == "00007"


async def test_test_numbers_in_dev_mode_get_their_fixed_code_and_nothing_is_sent(
    gateway: Gateway, verifier: WebhookVerifier
) -> None:
    issuer = CodeIssuer(verifier, dev_mode=True)
    assert await issuer.issue(TEST) == "11111"
    assert gateway.requests == []


async def test_test_numbers_need_no_verifier_in_dev_mode() -> None:
    assert await CodeIssuer(None, dev_mode=True).issue(TEST) == "11111"


async def test_test_numbers_are_refused_outside_dev_mode(
    gateway: Gateway, verifier: WebhookVerifier
) -> None:
    with pytest.raises(AuthError, match="only in dev mode") as info:
        await CodeIssuer(verifier, dev_mode=False).issue(TEST)
    assert info.value.code is ErrorCode.PHONE_NUMBER_REFUSED
    assert gateway.requests == []


@pytest.mark.parametrize("dev_mode", [True, False])
async def test_real_numbers_without_a_verifier_are_unavailable(dev_mode: bool) -> None:
    with pytest.raises(Unavailable, match=r"set verifier\.webhook_url"):
        await CodeIssuer(None, dev_mode=dev_mode).issue(REAL)


async def test_a_failed_delivery_propagates_so_no_code_is_stored(
    gateway: Gateway, verifier: WebhookVerifier
) -> None:
    gateway.status = 503
    with pytest.raises(Unavailable):
        await CodeIssuer(verifier, dev_mode=False).issue(REAL)
