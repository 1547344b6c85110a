"""Bad input over the WebSocket: every mistake gets one typed error frame, nothing more.

Each refused request is answered with ``{"id": ..., "error": {"code", "message"}}`` (the id
echoed whenever the frame carried a readable one), the same socket then answers a valid
request, and nothing the refused request would have changed has changed.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from samizdat.client import Client
from samizdat.protocol.errors import WS_CLOSE_REVOKED, ErrorCode
from tests.harness import ServerProcess, second_device, signed_in
from tests.raw_socket import RawSocket, device_id_of, error_code, token_of, user_id_of

BIG = "x" * (70 * 1024)  # over the default 64 KiB frame limit, under the transport's 1 MiB


def _frame(obj: Any) -> str:
    return orjson.dumps(obj).decode()


# (label, frame as sent, expected error code, id the reply must echo)
BAD_FRAMES: list[tuple[str, str | bytes, ErrorCode, int | str | None]] = [
    ("not JSON", "hello, server", ErrorCode.BAD_FRAME, None),
    ("truncated JSON", '{"id": 1, "method": "users.me"', ErrorCode.BAD_FRAME, None),
    ("binary frame, not UTF-8", b"\xff\xfe\x00junk", ErrorCode.BAD_FRAME, None),
    ("JSON array", "[1, 2, 3]", ErrorCode.BAD_FRAME, None),
    ("JSON string", '"users.me"', ErrorCode.BAD_FRAME, None),
    ("JSON number", "42", ErrorCode.BAD_FRAME, None),
    ("JSON null", "null", ErrorCode.BAD_FRAME, None),
    ("missing id", _frame({"method": "users.me", "params": {}}), ErrorCode.BAD_FRAME, None),
    ("null id", _frame({"id": None, "method": "users.me"}), ErrorCode.BAD_FRAME, None),
    ("negative id", _frame({"id": -1, "method": "users.me"}), ErrorCode.BAD_FRAME, None),
    ("id of 2**53", _frame({"id": 2**53, "method": "users.me"}), ErrorCode.BAD_FRAME, None),
    ("boolean id", _frame({"id": True, "method": "users.me"}), ErrorCode.BAD_FRAME, None),
    ("float id", _frame({"id": 1.5, "method": "users.me"}), ErrorCode.BAD_FRAME, None),
    ("empty string id", _frame({"id": "", "method": "users.me"}), ErrorCode.BAD_FRAME, None),
    ("65-char id", _frame({"id": "i" * 65, "method": "users.me"}), ErrorCode.BAD_FRAME, None),
    ("list id", _frame({"id": [1], "method": "users.me"}), ErrorCode.BAD_FRAME, None),
    ("missing method", _frame({"id": 7, "params": {}}), ErrorCode.BAD_FRAME, 7),
    ("empty method", _frame({"id": "req-8", "method": ""}), ErrorCode.BAD_FRAME, "req-8"),
    ("method not a string", _frame({"id": 9, "method": ["users.me"]}), ErrorCode.BAD_FRAME, 9),
    (
        "params a list",
        _frame({"id": 10, "method": "users.me", "params": []}),
        ErrorCode.INVALID_PARAMS,
        10,
    ),
    (
        "params a string",
        _frame({"id": 11, "method": "users.me", "params": "{}"}),
        ErrorCode.INVALID_PARAMS,
        11,
    ),
    (
        "params null",
        _frame({"id": 12, "method": "users.me", "params": None}),
        ErrorCode.INVALID_PARAMS,
        12,
    ),
    (
        "extra frame key",
        _frame({"id": 13, "method": "users.me", "params": {}, "jsonrpc": "2.0"}),
        ErrorCode.BAD_FRAME,
        13,
    ),
    (
        "unknown method",
        _frame({"id": 14, "method": "users.delete_everyone"}),
        ErrorCode.UNKNOWN_METHOD,
        14,
    ),
    ("method with a typo", _frame({"id": 15, "method": "users.Me"}), ErrorCode.UNKNOWN_METHOD, 15),
    (
        "string for an int",
        _frame({"id": 16, "method": "users.get", "params": {"user_id": "5"}}),
        ErrorCode.INVALID_PARAMS,
        16,
    ),
    (
        "float for an int",
        _frame({"id": 17, "method": "users.get", "params": {"user_id": 5.0}}),
        ErrorCode.INVALID_PARAMS,
        17,
    ),
    (
        "bool for an int",
        _frame({"id": 18, "method": "users.get", "params": {"user_id": True}}),
        ErrorCode.INVALID_PARAMS,
        18,
    ),
    (
        "int for a string",
        _frame({"id": 19, "method": "users.resolve", "params": {"peer": 12345}}),
        ErrorCode.INVALID_PARAMS,
        19,
    ),
    (
        "id out of range",
        _frame({"id": 20, "method": "users.get", "params": {"user_id": 0}}),
        ErrorCode.INVALID_PARAMS,
        20,
    ),
    (
        "missing param",
        _frame({"id": 21, "method": "users.get", "params": {}}),
        ErrorCode.INVALID_PARAMS,
        21,
    ),
    (
        "extra param key",
        _frame({"id": 22, "method": "users.me", "params": {"verbose": True}}),
        ErrorCode.INVALID_PARAMS,
        22,
    ),
    (
        "seq beyond 64 bits",
        _frame({"id": 23, "method": "updates.difference", "params": {"since": 2**63}}),
        ErrorCode.INVALID_PARAMS,
        23,
    ),
    (
        "oversize frame",
        _frame({"id": 24, "method": "users.resolve", "params": {"peer": BIG}}),
        ErrorCode.PAYLOAD_TOO_LARGE,
        24,
    ),
    (
        "oversize binary frame",
        _frame({"id": "big", "method": "users.resolve", "params": {"peer": BIG}}).encode(),
        ErrorCode.PAYLOAD_TOO_LARGE,
        "big",
    ),
]


@pytest.fixture
async def alice_socket(server: ServerProcess, alice: Client) -> AsyncIterator[RawSocket]:
    async with RawSocket.open(server.url) as sock:
        await sock.authorize(token_of(alice))
        yield sock


@pytest.mark.parametrize(
    ("frame", "code", "echoed_id"),
    [pytest.param(frame, code, echoed, id=label) for label, frame, code, echoed in BAD_FRAMES],
)
async def test_a_bad_frame_gets_a_typed_error_and_the_socket_keeps_working(
    alice_socket: RawSocket,
    alice: Client,
    frame: str | bytes,
    code: ErrorCode,
    echoed_id: int | str | None,
) -> None:
    before = await alice_socket.result("updates.state")

    reply = await alice_socket.exchange(frame)

    assert set(reply) == {"id", "error"}
    assert reply["id"] == echoed_id
    assert error_code(reply) == code
    me = await alice_socket.result("users.me")
    assert me["id"] == user_id_of(alice)
    assert await alice_socket.result("updates.state") == before


async def test_pipelined_bad_and_good_frames_each_get_exactly_one_reply(
    alice_socket: RawSocket,
) -> None:
    frames: list[str | bytes] = []
    expected: dict[int, str] = {}
    for n in range(40):
        request_id = 500 + n
        if n % 3 == 0:
            frames.append(_frame({"id": request_id, "method": "users.me"}))
            expected[request_id] = "ok"
        elif n % 3 == 1:
            frames.append(_frame({"id": request_id, "method": "users.get", "params": {"x": 1}}))
            expected[request_id] = ErrorCode.INVALID_PARAMS
        else:
            frames.append(_frame({"id": request_id, "method": "no.such"}))
            expected[request_id] = ErrorCode.UNKNOWN_METHOD
    frames.insert(10, "garbage")
    for frame in frames:
        await alice_socket.send(frame)

    got: dict[int | None, list[str]] = {}
    for _ in frames:
        reply = await alice_socket.reply()
        outcome = "ok" if "result" in reply else error_code(reply)
        got.setdefault(reply["id"], []).append(outcome)

    assert got.pop(None) == [ErrorCode.BAD_FRAME]
    assert got == {request_id: [outcome] for request_id, outcome in expected.items()}
    await alice_socket.result("users.me")


async def test_every_method_but_auth_is_refused_before_authorize(
    server: ServerProcess, alice: Client
) -> None:
    async with RawSocket.open(server.url) as sock:
        for method, params in [
            ("users.me", {}),
            ("messages.send", {"chat_id": 1, "text": "sneaky", "random_id": 1}),
            ("devices.list", {}),
            ("updates.difference", {"since": 0}),
            # Refused for want of a device before its params are even looked at.
            ("users.get", {"user_id": "not even an int"}),
        ]:
            assert error_code(await sock.call(method, **params)) == ErrorCode.UNAUTHORIZED

        # auth.* needs no device; the socket is still usable, and authorising unlocks the rest.
        assert (await sock.result("auth.send_code", phone="+999661000000"))["code_length"] == 5
        await sock.authorize(token_of(alice))
        assert (await sock.result("users.me"))["id"] == user_id_of(alice)


@pytest.mark.parametrize(
    "token",
    [
        "forged",
        secrets.token_urlsafe(32),  # the right shape, but no device has it
        "x" * 128,
    ],
)
async def test_an_unknown_token_is_unauthorized_and_the_socket_can_still_authorize(
    server: ServerProcess, alice: Client, token: str
) -> None:
    async with RawSocket.open(server.url) as sock:
        assert error_code(await sock.call("auth.authorize", token=token)) == ErrorCode.UNAUTHORIZED
        assert error_code(await sock.call("users.me")) == ErrorCode.UNAUTHORIZED
        await sock.authorize(token_of(alice))
        assert (await sock.result("users.me"))["id"] == user_id_of(alice)


async def test_authorizing_twice_is_refused_and_keeps_the_first_identity(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    async with RawSocket.open(server.url) as sock:
        await sock.authorize(token_of(alice))
        assert error_code(await sock.call("auth.authorize", token=token_of(bob))) == (
            ErrorCode.BAD_FRAME
        )
        assert (await sock.result("users.me"))["id"] == user_id_of(alice)


async def test_a_revoked_token_gets_token_revoked_and_its_live_socket_is_closed(
    server: ServerProcess, alice: Client
) -> None:
    phone = alice.test_phone  # type: ignore[attr-defined]
    second = await second_device(server.url, phone)
    revoked_token = token_of(second)
    await second.close()
    async with RawSocket.open(server.url) as live:
        await live.authorize(revoked_token)

        await alice.revoke_device(device_id_of(second))

        async with asyncio.timeout(10):
            await live.ws.wait_closed()
        assert live.ws.close_code == WS_CLOSE_REVOKED

    async with RawSocket.open(server.url) as sock:
        reply = await sock.call("auth.authorize", token=revoked_token)
        assert error_code(reply) == ErrorCode.TOKEN_REVOKED
        assert error_code(await sock.call("users.me")) == ErrorCode.UNAUTHORIZED
        await sock.authorize(token_of(alice))
        assert (await sock.result("users.me"))["id"] == user_id_of(alice)


async def test_a_stranger_cannot_touch_a_chat_and_cannot_tell_it_exists(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    chat_id = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
    sent = await alice.call(
        "messages.send", chat_id=chat_id, text="for bob only", random_id=secrets.randbits(62)
    )
    message_id = sent["message"]["id"]
    history = await alice.call("messages.history", chat_id=chat_id)
    carol = await signed_in(server.url, "Carol")
    try:
        async with RawSocket.open(server.url) as sock:
            await sock.authorize(token_of(carol))
            attempts: list[tuple[str, dict[str, Any]]] = [
                ("chats.get", {"chat_id": chat_id}),
                ("chats.members", {"chat_id": chat_id}),
                ("messages.history", {"chat_id": chat_id}),
                ("messages.send", {"chat_id": chat_id, "text": "hi", "random_id": 1}),
                ("messages.edit", {"chat_id": chat_id, "message_id": message_id, "text": "x"}),
                ("messages.delete", {"chat_id": chat_id, "message_ids": [message_id]}),
                ("messages.react", {"chat_id": chat_id, "message_id": message_id, "emoji": "+"}),
                ("messages.read", {"chat_id": chat_id, "max_id": message_id}),
                ("messages.typing", {"chat_id": chat_id}),
                (
                    "messages.forward",
                    {
                        "from_chat_id": chat_id,
                        "message_ids": [message_id],
                        "to_chat_id": chat_id,
                        "random_id": 2,
                    },
                ),
                ("groups.add", {"chat_id": chat_id, "user_ids": [user_id_of(carol)]}),
                ("groups.leave", {"chat_id": chat_id}),
            ]
            for method, params in attempts:
                known = await sock.call(method, **params)
                elsewhere = {k: chat_id + 1 if v == chat_id else v for k, v in params.items()}
                unknown = await sock.call(method, **elsewhere)
                assert error_code(known) == ErrorCode.CHAT_NOT_FOUND, method
                # The same answer for a chat that does not exist: ids cannot be probed.
                assert known["error"] == unknown["error"], method
            assert (await sock.result("users.me"))["id"] == user_id_of(carol)
            assert (await sock.result("updates.state"))["seq"] == 0
    finally:
        await carol.close()
    assert await alice.call("messages.history", chat_id=chat_id) == history
    assert (await bob.call("chats.get", chat_id=chat_id))["member_count"] == 2


async def test_editing_or_deleting_another_users_message_is_refused_and_changes_nothing(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    chat_id = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
    sent = await alice.call(
        "messages.send", chat_id=chat_id, text="alice wrote this", random_id=secrets.randbits(62)
    )
    message_id = sent["message"]["id"]
    history = await alice.call("messages.history", chat_id=chat_id)
    alice_seq = (await alice.call("updates.state"))["seq"]

    async with RawSocket.open(server.url) as sock:
        await sock.authorize(token_of(bob))
        edit = await sock.call(
            "messages.edit", chat_id=chat_id, message_id=message_id, text="bob rewrote it"
        )
        delete = await sock.call(
            "messages.delete", chat_id=chat_id, message_ids=[message_id], for_everyone=True
        )
        assert error_code(edit) == ErrorCode.NOT_AUTHOR
        assert error_code(delete) == ErrorCode.NOT_AUTHOR
        assert (await sock.result("users.me"))["id"] == user_id_of(bob)

    assert await alice.call("messages.history", chat_id=chat_id) == history
    assert history["messages"][0]["text"] == "alice wrote this"
    assert history["messages"][0]["edit_date"] is None
    assert (await alice.call("updates.state"))["seq"] == alice_seq


async def test_a_refused_send_stores_nothing(server: ServerProcess, alice: Client) -> None:
    chat_id = (await alice.call("groups.create", title="quiet"))["id"]
    state = (await alice.call("updates.state"))["seq"]
    async with RawSocket.open(server.url) as sock:
        await sock.authorize(token_of(alice))
        for params in [
            {"chat_id": chat_id, "text": "typed", "random_id": "5"},
            {"chat_id": str(chat_id), "text": "typed", "random_id": 5},
            {"chat_id": chat_id, "text": "", "random_id": 5},
            {"chat_id": chat_id, "text": "x" * 4097, "random_id": 5},
            {"chat_id": chat_id, "text": "typed", "random_id": 2**63},
            {"chat_id": chat_id, "text": "typed", "random_id": 5, "silent": True},
        ]:
            reply = await sock.call("messages.send", **params)
            assert error_code(reply) == ErrorCode.INVALID_PARAMS, params
        blank = await sock.call("messages.send", chat_id=chat_id, text="   ", random_id=5)
        assert error_code(blank) == ErrorCode.TEXT_INVALID
    assert (await alice.call("messages.history", chat_id=chat_id))["messages"] == []
    assert (await alice.call("updates.state"))["seq"] == state


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("profile.update", {"display_name": "nul\x00byte"}),
        ("groups.create", {"title": "nul\x00byte"}),
    ],
)
async def test_text_the_database_cannot_hold_is_refused_as_invalid_params(
    server: ServerProcess, alice_socket: RawSocket, method: str, params: dict[str, Any]
) -> None:
    """PostgreSQL refuses NUL in text columns; SQLite would store it. Both answer alike."""
    reply = await alice_socket.call(method, **params)
    assert error_code(reply) == ErrorCode.INVALID_PARAMS
    assert (await alice_socket.result("users.me"))["display_name"] == "Alice"


async def test_a_nul_byte_in_a_message_text_is_stored_faithfully(
    server: ServerProcess, alice_socket: RawSocket
) -> None:
    """Message text is sealed before storage, so any Unicode text survives on both backends."""
    chat_id = (await alice_socket.result("groups.create", title="bytes"))["id"]
    text = "before\x00after \U0001f980 \u202e"
    await alice_socket.result("messages.send", chat_id=chat_id, text=text, random_id=77)
    history = await alice_socket.result("messages.history", chat_id=chat_id)
    assert [m["text"] for m in history["messages"]] == [text]


# --- flooding ---------------------------------------------------------------------------------
# Rate limits live in each node's memory, not in the database, so one backend is enough here.

FLOOD_LIMITS = """
[limits]
requests_per_second = 20
request_burst = 40
auth_per_ip_per_minute = 100000
codes_per_phone_per_hour = 1000
"""

AUTH_FLOOD_LIMITS = """
[limits]
auth_per_ip_per_minute = 6
codes_per_phone_per_hour = 1000
requests_per_second = 100000
request_burst = 100000
"""


@pytest.fixture(scope="module")
def flood_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("flood"), extra_config=FLOOD_LIMITS)
    proc.start()
    yield proc
    proc.cleanup()


@pytest.fixture(scope="module")
def auth_flood_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("auth-flood"), extra_config=AUTH_FLOOD_LIMITS)
    proc.start()
    yield proc
    proc.cleanup()


async def test_a_flooding_client_gets_flood_wait_while_others_are_served(
    flood_server: ServerProcess,
) -> None:
    flooder = await signed_in(flood_server.url, "Flooder")
    neighbour = await signed_in(flood_server.url, "Neighbour")
    try:
        async with RawSocket.open(flood_server.url) as sock:
            await sock.authorize(token_of(flooder))
            for n in range(200):
                await sock.send(_frame({"id": n, "method": "users.me"}))
            replies = [await sock.reply() for _ in range(200)]

            assert sorted(r["id"] for r in replies) == list(range(200))
            ok = [r for r in replies if "result" in r]
            refused = [r for r in replies if "error" in r]
            # A burst of 40 plus what refills while 200 frames arrive; far from all 200.
            assert 40 <= len(ok) < 120
            assert {error_code(r) for r in refused} == {ErrorCode.FLOOD_WAIT}
            retry_after = max(r["error"]["retry_after"] for r in refused)
            assert 0 < retry_after <= 1.0

            # Others are unaffected, and so is the server.
            for _ in range(30):
                assert (await neighbour.get_me()).id == user_id_of(neighbour)
            async with httpx.AsyncClient(base_url=flood_server.url, timeout=5) as http:
                assert (await http.get("/health")).status_code == 200

            # The flooder itself is served again once it waits as told.
            await asyncio.sleep(retry_after + 0.05)
            assert "result" in await sock.call("users.me")
            await asyncio.sleep(1.0)
            for _ in range(15):
                assert "result" in await sock.call("users.me")
    finally:
        await flooder.close()
        await neighbour.close()


async def test_the_request_limit_is_per_device_across_websocket_and_http(
    flood_server: ServerProcess,
) -> None:
    flooder = await signed_in(flood_server.url, "Flooder")
    try:
        headers = {"Authorization": f"Bearer {token_of(flooder)}"}
        async with (
            httpx.AsyncClient(base_url=flood_server.url, timeout=5) as http,
            RawSocket.open(flood_server.url) as sock,
        ):
            assert (await http.post("/api/users.me", headers=headers)).status_code == 200
            await sock.authorize(token_of(flooder))
            for n in range(100):
                await sock.send(_frame({"id": n, "method": "users.me"}))
            replies = [await sock.reply() for _ in range(100)]
            assert any("error" in r for r in replies)

            # The device's bucket is empty, whichever transport asks next.
            responses = await asyncio.gather(
                *(http.post("/api/users.me", headers=headers) for _ in range(10))
            )
            assert {r.status_code for r in responses} <= {200, 429}
            refused = [r for r in responses if r.status_code == 429]
            assert refused, "HTTP spends the same per-device budget as the WebSocket"
            error = refused[0].json()["error"]
            assert error["code"] == ErrorCode.FLOOD_WAIT
            assert error["retry_after"] > 0
            await asyncio.sleep(error["retry_after"] + 0.05)
            assert (await http.post("/api/users.me", headers=headers)).status_code == 200
    finally:
        await flooder.close()


def http_from(url: str, ip: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=ip)
    return httpx.AsyncClient(base_url=url, timeout=5, transport=transport)


async def test_login_attempts_from_one_address_are_limited(
    auth_flood_server: ServerProcess,
) -> None:
    url = auth_flood_server.url
    member = await signed_in(url, "Early")
    try:
        async with RawSocket.open(url, from_ip="127.0.0.2") as sock:
            outcomes = []
            for n in range(8):
                reply = await sock.call("auth.send_code", phone=f"+99966{n}1234567")
                outcomes.append("ok" if "result" in reply else error_code(reply))
            assert outcomes == ["ok"] * 6 + [ErrorCode.FLOOD_WAIT] * 2
            reply = await sock.call("auth.sign_in", phone="+999661234567", code="11111")
            assert error_code(reply) == ErrorCode.FLOOD_WAIT
            # About a minute's share of the budget to wait, told to the client.
            assert 1 < reply["error"]["retry_after"] <= 60
            # Signed-in devices are not held back by the login limit, even from this address.
            await sock.authorize(token_of(member))
            assert (await sock.result("users.me"))["id"] == user_id_of(member)
        assert (await member.get_me()).id == user_id_of(member)
        async with http_from(url, "127.0.0.2") as http:
            response = await http.post("/api/auth.send_code", json={"phone": "+999661234567"})
            assert response.status_code == 429
            assert response.json()["error"]["code"] == ErrorCode.FLOOD_WAIT
            assert (await http.get("/health")).status_code == 200
        # Other addresses are unaffected.
        async with http_from(url, "127.0.0.3") as http:
            response = await http.post("/api/auth.send_code", json={"phone": "+999661234567"})
            assert response.status_code == 200
    finally:
        await member.close()


async def test_guessing_device_tokens_spends_the_login_budget(
    auth_flood_server: ServerProcess,
) -> None:
    url = auth_flood_server.url
    member = await signed_in(url, "Member")
    try:
        async with RawSocket.open(url, from_ip="127.0.0.4") as sock:
            outcomes = []
            for _ in range(8):
                reply = await sock.call("auth.authorize", token=secrets.token_urlsafe(32))
                outcomes.append(error_code(reply))
            assert outcomes == [ErrorCode.UNAUTHORIZED] * 6 + [ErrorCode.FLOOD_WAIT] * 2
            # A good token still works from the same address: it spends nothing.
            await sock.authorize(token_of(member))
            assert (await sock.result("users.me"))["id"] == user_id_of(member)
        async with http_from(url, "127.0.0.4") as http:
            forged = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
            response = await http.post("/api/users.me", headers=forged)
            assert response.status_code == 429
            assert response.json()["error"]["code"] == ErrorCode.FLOOD_WAIT
            good = {"Authorization": f"Bearer {token_of(member)}"}
            assert (await http.post("/api/users.me", headers=good)).status_code == 200
    finally:
        await member.close()


async def test_a_frame_beyond_the_transport_limit_closes_only_that_socket(
    server: ServerProcess, alice_socket: RawSocket
) -> None:
    """Past 1 MiB the transport refuses to buffer the frame at all: close code 1009."""
    async with RawSocket.open(server.url) as sock:
        with pytest.raises(ConnectionClosed):
            await sock.exchange("x" * (2 * 1024 * 1024))
        assert sock.ws.close_code == 1009
    assert "result" in await alice_socket.call("users.me")
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        assert (await http.get("/health")).status_code == 200
